#!/usr/bin/env bash
# Runs every test: Swift unit tests, the release build, ABI checks, the C examples and the
# Python tests (against the installed package). Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

section() { printf '\n== %s\n' "$*"; }

section "dependencies"
scripts/install-deps.sh

section "Swift tests"
swift test 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]|^Test Case .* (started|passed)'

section "release build"
scripts/build.sh

section "ABI checks"
Tests/abi/check.sh

section "C examples"
make -s -C Bindings/c/examples clean
make -s -C Bindings/c/examples check | tee "$root/.build/c-examples.log"
grep -q "all errors reported as expected" "$root/.build/c-examples.log"
grep -q "stack budget example ok" "$root/.build/c-examples.log"
[ "$(grep -c ' ok$' "$root/.build/c-examples.log")" -eq 5 ]

section "Python tests"
scripts/install-python.sh
cd /tmp && python3 -m pytest -q "$root/Bindings/python/tests"

section "README examples"
"$root/Tests/readme_examples.sh"
