#!/usr/bin/env bash
# Installs what building and testing need, if missing: make, C and C++ compilers, CMake and
# pkg-config (the install check builds the examples with them) and (on x86-64) qemu's user-mode
# emulator, which runs the C examples as a CPU without AVX (Debian packages); numpy and pytest
# (PyPI). The Swift toolchain (with clang) is expected on PATH.
set -euo pipefail
command -v swift >/dev/null || { echo "swift is not on PATH: install Swift 6.x first"; exit 1; }
missing=()
command -v make >/dev/null || missing+=(make)
command -v cc >/dev/null || missing+=(gcc)
command -v c++ >/dev/null || missing+=(g++)
command -v cmake >/dev/null || missing+=(cmake)
command -v pkg-config >/dev/null || missing+=(pkgconf)
command -v python3 >/dev/null || missing+=(python3 python3-pip)
[ "$(uname -m)" != x86_64 ] || command -v qemu-x86_64 >/dev/null || missing+=(qemu-user)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}"
fi
pip_install() { python3 -m pip install --quiet "$@" || python3 -m pip install --quiet --break-system-packages "$@"; }
python3 -c "import numpy" 2>/dev/null || pip_install numpy
python3 -c "import pytest" 2>/dev/null || pip_install pytest
python_versions=$(python3 -c 'import sys, numpy; print(sys.version.split()[0], "numpy", numpy.__version__)')
echo "dependencies ok: $(swift --version 2>&1 | head -1); python $python_versions"
