#!/usr/bin/env bash
# Bad input through the CLI: every case must exit with 1 or 2 (never a crash or signal) and
# say what is wrong on stderr, prefixed "lowbit:".
set -uo pipefail
cd "$(dirname "$0")/.."
lowbit=dist/bin/lowbit
model=${LOWBIT_MODEL:-.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}
failures=0
expect_error() {
    local what=$1; shift
    local err
    err=$("$lowbit" "$@" 2>&1 >/dev/null)
    local status=$?
    if [[ $status -ne 1 && $status -ne 2 ]] || [[ $err != lowbit:* ]]; then
        echo "FAIL $what: exit $status, stderr: $err"
        failures=$((failures + 1))
    else
        printf 'ok   %-40s %s\n' "$what" "${err%%$'\n'*}"
    fi
}
expect_error "unknown command" frobnicate
expect_error "unknown option" info --frobnicate 1
expect_error "bench: act-bits 3" bench --act-bits 3
expect_error "bench: 5-bit weights" bench --bits 5
expect_error "bench: bad shape" bench --shapes 12x
expect_error "gguf: missing file" gguf /nonexistent.gguf
expect_error "gguf: not a GGUF file" gguf /usr/share/common-licenses/GPL-3
expect_error "stack inspect: not a stack" stack inspect /usr/share/common-licenses/GPL-3
expect_error "run: no model" run --prompt hi
expect_error "run: calibration without bits" run --model "$model" --prompt hi --calibration-text /usr/share/common-licenses/Apache-2.0
expect_error "perplexity: bad bits" perplexity --model "$model" --text /usr/share/common-licenses/GPL-3 --bits 7
expect_error "perplexity: mixed 2-bit" perplexity --model "$model" --text /usr/share/common-licenses/GPL-3 --bits mixed2
expect_error "stack run: missing file" stack run /nonexistent.lbs --budget 1MB
tiny=$(mktemp --suffix=.lbs)
trap 'rm -f "$tiny" "$tiny.out"' EXIT
"$lowbit" stack build "$tiny" --random 64x64 --blocks 2 >/dev/null 2>&1
expect_error "stack run: budget too small" stack run "$tiny" --budget 1
expect_error "stack build: no tensors" stack build "$tiny.out"
expect_error "stack build: max lead 0" stack build "$tiny.out" --random 64x64 --max-lead 0
expect_error "stack build: bad sensitivity cache" stack build "$tiny.out" --random 64x64 --sensitivity-cache /usr/share/common-licenses/GPL-3
expect_error "run: act-bits on requantized" run --model "$model" --prompt hi --bits 4 --act-bits 16
if [[ $failures -ne 0 ]]; then echo "$failures CLI error case(s) failed"; exit 1; fi
echo "ok: every CLI error case reported cleanly"
