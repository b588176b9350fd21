#!/usr/bin/env bash
# Installs lowbit for C and C++ programs:
#   scripts/install.sh [--prefix DIR]      (default /usr/local; DESTDIR=STAGE stages it for packagers)
# puts under the prefix
#   lib/liblowbit.so.MAJOR.MINOR.PATCH (stripped), its soname link liblowbit.so.MAJOR and the
#   development link liblowbit.so; the debug info as lib/.debug/liblowbit.so.VERSION.debug (where
#   gdb looks for it); include/lowbit.h; lib/pkgconfig/lowbit.pc; lib/cmake/lowbit/ (the package
#   for find_package(lowbit), imported target lowbit::lowbit); bin/lowbit; share/doc/lowbit/.
# Builds first (scripts/build.sh) when dist/ is missing or older than the sources.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=/usr/local
while [ $# -gt 0 ]; do
    case $1 in
        --prefix) [ $# -ge 2 ] || { echo "install.sh: --prefix needs a folder" >&2; exit 2; }; prefix=$2; shift 2 ;;
        --prefix=*) prefix=${1#--prefix=}; shift ;;
        -h|--help) sed -n '2,9s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (use --prefix DIR)" >&2; exit 2 ;;
    esac
done
case $prefix in /*) ;; *) echo "install.sh: --prefix must be an absolute path" >&2; exit 2 ;; esac

version=$(scripts/version.sh)
major=${version%%.*}
library=dist/lib/liblowbit.so.$version
if [ ! -f "$library" ] || [ -n "$(find Sources Include Package.swift -newer "$library" -print -quit)" ]; then
    scripts/build.sh
fi

dest=${DESTDIR:-}$prefix
install -d "$dest/lib/.debug" "$dest/lib/pkgconfig" "$dest/lib/cmake/lowbit" "$dest/include" \
    "$dest/bin/.debug" "$dest/share/doc/lowbit"

# Stripped binaries, each linked to a file holding its debug info.
install_stripped() {  # $1: built file, $2: installed folder, $3: installed name
    objcopy --only-keep-debug "$1" "$2/.debug/$3.debug"
    chmod 644 "$2/.debug/$3.debug"
    objcopy --strip-unneeded --add-gnu-debuglink="$2/.debug/$3.debug" "$1" "$2/$3"
    chmod 755 "$2/$3"
}
install_stripped "$library" "$dest/lib" "liblowbit.so.$version"
ln -sfn "liblowbit.so.$version" "$dest/lib/liblowbit.so.$major"
ln -sfn "liblowbit.so.$major" "$dest/lib/liblowbit.so"
install_stripped dist/bin/lowbit "$dest/bin" lowbit
install -m 644 Include/lowbit.h "$dest/include/lowbit.h"
install -m 644 LICENSE README.md CHANGELOG.md "$dest/share/doc/lowbit/"

subst() { sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" -e "s|@MAJOR@|$major|g" "$1"; }
subst scripts/install/lowbit.pc.in > "$dest/lib/pkgconfig/lowbit.pc"
subst scripts/install/lowbitConfig.cmake.in > "$dest/lib/cmake/lowbit/lowbitConfig.cmake"
subst scripts/install/lowbitConfigVersion.cmake.in > "$dest/lib/cmake/lowbit/lowbitConfigVersion.cmake"
echo "installed lowbit $version under ${DESTDIR:+$DESTDIR}$prefix"
