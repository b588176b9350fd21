#!/usr/bin/env bash
# Prints the version MAJOR.MINOR.PATCH that Include/lowbit.h declares (the one source of it).
set -euo pipefail
cd "$(dirname "$0")/.."
part() { sed -n "s/^#define LOWBIT_VERSION_$1 \([0-9][0-9]*\)$/\1/p" Include/lowbit.h; }
echo "$(part MAJOR).$(part MINOR).$(part PATCH)"
