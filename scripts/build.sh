#!/usr/bin/env bash
# Builds liblowbit.so and the lowbit tool in release mode, with the Swift runtime linked in
# statically (the .so then needs only libc, libm, libstdc++ and libgcc_s), into dist/:
#   dist/lib/liblowbit.so  dist/bin/lowbit  dist/include/lowbit.h
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release -Xswiftc -static-stdlib --product lowbit
swift build -c release -Xswiftc -static-stdlib --product lowbit-cli
mkdir -p dist/lib dist/bin dist/include
cp .build/release/liblowbit.so dist/lib/
cp .build/release/lowbit-cli dist/bin/lowbit
cp Include/lowbit.h dist/include/
echo "built: dist/lib/liblowbit.so dist/bin/lowbit dist/include/lowbit.h"
