#!/usr/bin/env bash
# Builds the Python wheel into dist/wheels/: the lowbit package with liblowbit.so and the lowbit
# tool inside it (stripped), tagged for the platform the binaries truly run on: py3-none (ctypes,
# any Python 3), and the manylinux tag `auditwheel show` finds for them (glibc and libstdc++
# symbol versions), else linux_x86_64. Build tools come from PyPI into .cache/wheel-tools.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(scripts/version.sh)
[ -f "dist/lib/liblowbit.so.$version" ] && [ -f dist/bin/lowbit ] || scripts/build.sh
tools=.cache/wheel-tools
if [ ! -x "$tools/bin/auditwheel" ]; then
    python3 -m venv "$tools"
    "$tools/bin/python" -m pip install --quiet setuptools wheel auditwheel
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r Bindings/python "$work/package"
rm -rf "$work/package/tests" "$work/package/build" "$work/package"/*.egg-info "$work/package/lowbit/__pycache__"
mkdir -p "$work/package/lowbit/lib" "$work/package/lowbit/bin"
objcopy --strip-unneeded "dist/lib/liblowbit.so.$version" "$work/package/lowbit/lib/liblowbit.so"
objcopy --strip-unneeded dist/bin/lowbit "$work/package/lowbit/bin/lowbit"
chmod 755 "$work/package/lowbit/bin/lowbit"
cp LICENSE "$work/package/"
"$tools/bin/python" -m pip wheel --quiet --no-deps --no-build-isolation -w "$work/out" "$work/package"
wheel=$(ls "$work/out"/lowbit-"$version"-*.whl)
# A platform wheel: the binaries are the only part tied to a system, and no Python ABI is used.
"$tools/bin/python" -m wheel tags --remove --python-tag py3 --abi-tag none --platform-tag "linux_$(uname -m)" \
    "$wheel" >/dev/null
wheel=$(ls "$work/out"/lowbit-"$version"-py3-none-linux_*.whl)
policy=$("$tools/bin/auditwheel" show "$wheel" 2>&1 | tr -d '\n' | grep -oE '"manylinux_[0-9]+_[0-9]+_[a-z0-9_]+"' \
    | head -1 | tr -d '"' || true)
if [ -n "$policy" ]; then
    "$tools/bin/python" -m wheel tags --remove --platform-tag "$policy" "$wheel" >/dev/null
fi
mkdir -p dist/wheels
rm -f dist/wheels/lowbit-"$version"-*.whl
cp "$work/out"/lowbit-"$version"-*.whl dist/wheels/
ls dist/wheels/lowbit-"$version"-*.whl
