#!/usr/bin/env bash
# Builds liblowbit and the lowbit tool in release mode, with the Swift runtime linked in statically
# (the library then needs only libc, libm, libstdc++ and libgcc_s), into dist/:
#   dist/lib/liblowbit.so.MAJOR.MINOR.PATCH, its soname link liblowbit.so.MAJOR and the
#   development link liblowbit.so; dist/bin/lowbit; dist/include/lowbit.h.
# scripts/install.sh installs them under a prefix; scripts/build-wheel.sh packs them for Python.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release -Xswiftc -static-stdlib --product lowbit
swift build -c release -Xswiftc -static-stdlib --product lowbit-cli
version=$(scripts/version.sh)
major=${version%%.*}
rm -rf dist/lib
mkdir -p dist/lib dist/bin dist/include
cp .build/release/liblowbit.so "dist/lib/liblowbit.so.$version"
ln -s "liblowbit.so.$version" "dist/lib/liblowbit.so.$major"
ln -s "liblowbit.so.$major" dist/lib/liblowbit.so
cp .build/release/lowbit-cli dist/bin/lowbit
cp Include/lowbit.h dist/include/
echo "built: dist/lib/liblowbit.so.$version dist/bin/lowbit dist/include/lowbit.h"
