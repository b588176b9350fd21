#!/usr/bin/env bash
# The installed library as its users meet it: scripts/install.sh into a temporary prefix (and
# staged through DESTDIR), the files and symbols a packager checks, then the C example built
# through pkg-config and the C++ examples through CMake's find_package(lowbit), against the
# prefix only. $LOWBIT_MODEL (a GGUF file) runs the chat examples too.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "install check FAILED: $*"; exit 1; }
version=$(scripts/version.sh)
major=${version%%.*}

prefix=$work/prefix
scripts/install.sh --prefix "$prefix"
lib=$prefix/lib/liblowbit.so.$version
for f in "$lib" "$prefix/lib/liblowbit.so.$major" "$prefix/lib/liblowbit.so" "$prefix/include/lowbit.h" \
         "$prefix/lib/pkgconfig/lowbit.pc" "$prefix/lib/cmake/lowbit/lowbitConfig.cmake" \
         "$prefix/lib/cmake/lowbit/lowbitConfigVersion.cmake" "$prefix/bin/lowbit" \
         "$prefix/share/doc/lowbit/LICENSE"; do
    [ -e "$f" ] || fail "$f is missing"
done
[ "$(readlink "$prefix/lib/liblowbit.so")" = "liblowbit.so.$major" ] || fail "the development link"
# Whole outputs, then grep: with pipefail, `grep -q` quitting at its first match can end the
# pipeline with readelf's SIGPIPE, a failure that depends on timing.
sections=$(readelf -S "$lib") debug_sections=$(readelf -S "$prefix/lib/.debug/liblowbit.so.$version.debug")
grep -q "Library soname: \[liblowbit.so.$major\]" <<<"$(readelf -d "$lib")" || fail "soname"
! grep -q '\.debug_info' <<<"$sections" || fail "the installed library is not stripped"
grep -q '\.debug_info' <<<"$debug_sections" || fail "no debug info file"
grep -q "liblowbit.so.$version.debug" <<<"$(readelf --string-dump=.gnu_debuglink "$lib")" || fail "no debug link"
others=$(readelf --dyn-syms -W "$lib" | awk '$5 == "GLOBAL" && $7 != "UND" && $8 !~ /^lowbit_/ {print $8}')
[ -z "$others" ] || fail "exports beyond lowbit_*: $others"
"$prefix/bin/lowbit" --version | grep -q "$version" || fail "the installed tool"
echo "ok: prefix install ($(du -sh "$lib" | cut -f1) stripped library, soname liblowbit.so.$major)"

DESTDIR=$work/stage scripts/install.sh --prefix /opt/lowbit >/dev/null
[ -f "$work/stage/opt/lowbit/lib/liblowbit.so.$version" ] || fail "DESTDIR staging"
grep -q '^prefix=/opt/lowbit$' "$work/stage/opt/lowbit/lib/pkgconfig/lowbit.pc" \
    || fail "pkg-config prefix under DESTDIR"
echo "ok: DESTDIR staging keeps the final prefix in lowbit.pc"

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
[ "$(pkg-config --modversion lowbit)" = "$version" ] || fail "pkg-config version"
for example in quantize_multiply chat_context; do
    # shellcheck disable=SC2046
    cc -std=c11 -O2 -Wall -Wextra -Werror Bindings/c/examples/$example.c -o "$work/$example" \
        $(pkg-config --cflags --libs lowbit) -lm -Wl,-rpath,"$prefix/lib"
done
"$work/quantize_multiply" | grep -q "^auto .* ok$" || fail "the C example built through pkg-config"
echo "ok: C examples built through pkg-config"

cmake -S Bindings/cpp -B "$work/cpp" -DCMAKE_PREFIX_PATH="$prefix" >"$work/cmake.log" 2>&1 \
    || { cat "$work/cmake.log"; fail "cmake configure"; }
cmake --build "$work/cpp" >"$work/cmake-build.log" 2>&1 || { cat "$work/cmake-build.log"; fail "cmake build"; }
"$work/cpp/product" | tee "$work/product.log"
grep -q "relative error .* ok" "$work/product.log" && grep -q "short activations refused" "$work/product.log"
echo "ok: C++ examples built through find_package(lowbit)"

if [ -n "${LOWBIT_MODEL:-}" ]; then
    "$work/chat_context" "$LOWBIT_MODEL" | tee "$work/chat_context.log"
    grep -q "chat context example ok" "$work/chat_context.log"
    "$work/cpp/chat" "$LOWBIT_MODEL" --say "What is the capital of France?" --say "And of Italy?" \
        --stop-after 4 | tee "$work/chat.log"
    [ "$(grep -c 'stopped after 4 tokens' "$work/chat.log")" -eq 2 ] || fail "the C++ chat did not stop when asked"
    echo "ok: chat examples against the installed library"
fi
