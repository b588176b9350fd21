#!/usr/bin/env bash
# Installs the Python package with the freshly built liblowbit.so inside it (its own lib/).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/lib/liblowbit.so ] || scripts/build.sh
mkdir -p Bindings/python/lowbit/lib
cp dist/lib/liblowbit.so Bindings/python/lowbit/lib/
args=(--quiet --force-reinstall --no-deps)
python3 -c "import setuptools, wheel" 2>/dev/null && args+=(--no-build-isolation)
python3 -m pip install "${args[@]}" ./Bindings/python || python3 -m pip install "${args[@]}" --break-system-packages ./Bindings/python
# The copy served the install; a stale one would shadow the build folder for source checkouts.
rm -rf Bindings/python/build Bindings/python/*.egg-info Bindings/python/lowbit/lib
python3 -c "import lowbit; print('installed lowbit', lowbit.__version__, 'using', lowbit.library_path)"
