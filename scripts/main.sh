#!/usr/bin/env bash
# lowbit's main job on a fresh machine: build in release mode, then run the demo (quantize a
# 4096 x 4096 matrix at every bit width; size, error and time per kernel family).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
scripts/build.sh
dist/bin/lowbit info
echo
dist/bin/lowbit demo "$@"
