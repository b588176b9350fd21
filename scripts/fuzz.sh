#!/usr/bin/env bash
# Builds the fuzz targets (optimized) with libFuzzer and AddressSanitizer and runs each for a while:
#   scripts/fuzz.sh [seconds-per-target] [target ...]     (default 60 s, every target)
# Each target starts from its committed seeds (Tests/Fuzz/Corpus/TARGET) and keeps what it
# finds in .cache/fuzz/TARGET; a crash, timeout or out-of-memory input is written to
# .cache/fuzz/crashes/ and fails the run. Add such an input to Tests/Fuzz/Corpus/TARGET once
# it is fixed: the test suite replays every corpus file.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gguf matrix stack calibration npy tokenizer)

# libFuzzer's own main would clash with the driver's, which chooses the target and then calls
# LLVMFuzzerRunDriver: so coverage flags as -sanitize=fuzzer sets them, and the no-main runtime.
runtime=$(swiftc -print-target-info \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["paths"]["runtimeResourcePath"])')
runtime=$(dirname "$runtime")
fuzzer_lib=$(find "$runtime" -name 'libclang_rt.fuzzer_no_main-x86_64.a' | head -1)
[ -n "$fuzzer_lib" ] || { echo "fuzz.sh: libclang_rt.fuzzer_no_main not found under $runtime"; exit 1; }
LOWBIT_FUZZ=1 swift build -c release --product lowbit-fuzz --build-path .build-fuzz \
    -Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table \
    -Xlinker "$fuzzer_lib" -Xlinker -lstdc++ 2>&1 | grep -vE 'Cannot export local symbol|^\[[0-9]+/[0-9]+\]'
fuzzer=.build-fuzz/release/lowbit-fuzz

if [[ " ${targets[*]} " == *" tokenizer "* ]]; then
    LOWBIT_MODEL=${LOWBIT_MODEL:-$(pwd)/$(scripts/fetch-model.sh)}
    export LOWBIT_MODEL
fi
export SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
mkdir -p .cache/fuzz/crashes
status=0
for target in "${targets[@]}"; do
    mkdir -p ".cache/fuzz/$target"
    extra=()
    [ -f "Tests/Fuzz/$target.dict" ] && extra+=(-dict="Tests/Fuzz/$target.dict")
    # Text is tokenized piece by piece: 1 KiB inputs reach every path (the seeds hold a long word).
    [ "$target" = tokenizer ] && extra+=(-max_len=1024)
    log=".cache/fuzz/$target.log"
    # 2 GB of memory and 10 s per input at most: more is a bug of its own.
    if "$fuzzer" "$target" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 -artifact_prefix=.cache/fuzz/crashes/"$target"- "${extra[@]}" \
        ".cache/fuzz/$target" "Tests/Fuzz/Corpus/$target" >"$log" 2>&1; then
        runs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
        printf '%-12s %10s executions in %s s, no failure\n' "$target" "$runs" "$seconds"
    else
        echo "$target: FAILED (log: $log)"
        grep -E 'ERROR|SUMMARY|Fatal error|==[0-9]+==|Test unit written' "$log" | head -20
        status=1
    fi
done
exit $status
