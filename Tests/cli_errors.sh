#!/usr/bin/env bash
# Bad input through the CLI: every case must end within a minute with the exit status it names
# (2: a usage error, the arguments are wrong; 1: a failure, such as a malformed or missing file),
# never a crash, signal or hang, and say what is wrong on stderr, prefixed "lowbit:".
set -uo pipefail
cd "$(dirname "$0")/.."
lowbit=dist/bin/lowbit
model=${LOWBIT_MODEL:-.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}
failures=0
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
expect_status() {
    local want=$1 what=$2; shift 2
    local err status
    err=$(timeout 60 "$lowbit" "$@" 2>&1 >/dev/null)
    status=$?
    if [[ $status -ne $want ]] || [[ $err != lowbit:* ]]; then
        echo "FAIL $what: exit $status (want $want), stderr: ${err:0:300}"
        failures=$((failures + 1))
    else
        printf 'ok   %-44s %s\n' "$what" "${err%%$'\n'*}"
    fi
}
expect_usage() { expect_status 2 "$@"; }
expect_failure() { expect_status 1 "$@"; }
expect_usage "unknown command" frobnicate
expect_usage "unknown option" info --frobnicate 1
expect_usage "bench: act-bits 3" bench --act-bits 3
expect_usage "bench: 5-bit weights" bench --bits 5
expect_usage "bench: bad shape" bench --shapes 12x
expect_usage "bench --model: 0 repetitions" bench --model "$model" --bits 4 --repetitions 0
expect_usage "bench --model: nothing to time" bench --model "$model" --bits 4 --prompt-tokens 0 --gen-tokens 0
expect_usage "bench --model: unknown tier" bench --model "$model" --bits 4 --tiers sse9
expect_usage "bench --model: kernel-bench option" bench --model "$model" --bits 4 --shapes 64x64
expect_usage "bench --model: prompt past the context" bench --model "$model" --bits 4 --prompt-tokens 100000
expect_failure "gguf: missing file" gguf /nonexistent.gguf
expect_failure "gguf: not a GGUF file" gguf /usr/share/common-licenses/GPL-3
expect_failure "stack inspect: not a stack" stack inspect /usr/share/common-licenses/GPL-3
expect_usage "run: no model" run --prompt hi
expect_usage "run: calibration without bits" run --model "$model" --prompt hi \
    --calibration-text /usr/share/common-licenses/Apache-2.0
expect_usage "perplexity: bad bits" perplexity --model "$model" --text /usr/share/common-licenses/GPL-3 --bits 7
expect_usage "perplexity: mixed 2-bit" perplexity --model "$model" --text /usr/share/common-licenses/GPL-3 --bits mixed2
expect_failure "stack run: missing file" stack run /nonexistent.lbs --budget 1MB
tiny=$scratch/tiny.lbs
"$lowbit" stack build "$tiny" --random 64x64 --blocks 2 >/dev/null 2>&1
expect_usage "stack run: budget too small" stack run "$tiny" --budget 1
expect_usage "stack build: no tensors" stack build "$tiny.out"
expect_usage "stack build: max lead 0" stack build "$tiny.out" --random 64x64 --max-lead 0
expect_usage "stack build: bad sensitivity cache" stack build "$tiny.out" --random 64x64 \
    --sensitivity-cache /usr/share/common-licenses/GPL-3
expect_usage "run: act-bits on requantized" run --model "$model" --prompt hi --bits 4 --act-bits 16

# Files of the wrong kind and malformed content.
mkfifo "$scratch/fifo"
expect_failure "gguf: a FIFO" gguf "$scratch/fifo"
expect_failure "gguf: a directory" gguf "$scratch"
expect_failure "run: a FIFO as the model" run --model "$scratch/fifo" --prompt hi
expect_failure "stack run: a FIFO" stack run "$scratch/fifo" --budget 1MB
expect_failure "perplexity: a FIFO as the text" perplexity --model "$model" --text "$scratch/fifo"
head -c 300 "$model" > "$scratch/truncated.gguf"
expect_failure "gguf: truncated file" gguf "$scratch/truncated.gguf"
expect_failure "run: a stack of other tensors" run --model "$model" --stack "$tiny" --budget 1GB --prompt hi
printf '\x93NUMPY\x01\x00\x46\x00{"descr": "<f4", "fortran_order": False, "shape": (99999999999, 99999999999), }' \
    > "$scratch/huge.npy"
expect_failure "stack build: .npy announcing a huge shape" stack build "$scratch/out.lbs" "w=$scratch/huge.npy"
python3 -c "import numpy; numpy.save('$scratch/w.npy', numpy.ones((8, 64), 'f4'))"
python3 -c "import numpy; numpy.save('$scratch/c.npy', numpy.ones((4, 32), 'f4'))"
expect_usage "stack build: calibration of other width" stack build "$scratch/out.lbs" "w=$scratch/w.npy" \
    --calibration "w=$scratch/c.npy"
expect_usage "stack build: calibration of no tensor" stack build "$scratch/out.lbs" "w=$scratch/w.npy" \
    --calibration "v=$scratch/c.npy"

# Arguments out of range.
expect_usage "gguf: group size 0" gguf "$model" --type-errors --group-size 0
expect_usage "gguf: group size 48" gguf "$model" --type-errors --group-size 48
expect_usage "stack build: shape overflowing" stack build "$scratch/out.lbs" --random 4294967296x4294967296
expect_usage "stack build: shape of 10^10 elements" stack build "$scratch/out.lbs" --random 100000x100000
expect_usage "stack build: shape with no columns" stack build "$scratch/out.lbs" --random 64x
expect_usage "bench: shape overflowing" bench --shapes 9223372036854775807x2
expect_usage "threads 0" info --threads 0
expect_usage "threads not a number" info --threads many
expect_usage "demo: group size 0" demo --group-size 0
expect_usage "run: option without a value" run --model
expect_failure "run: missing model file" run --model /nonexistent.gguf --prompt hi


# Options as people type them: refused with the nearest known option, all before anything loads
# (a missing model file would be exit 1: these are 2, so the model was never opened).
missing=/nonexistent.gguf
expect_usage "single-dash option" run --model "$missing" --prompt hi -t 1
expect_usage "misspelt option" run --model "$missing" --prompt hi --bugdet 5MB
expect_usage "run: -n not a number" run --model "$missing" --prompt hi -n abc
expect_usage "run: temperature not a number" run --model "$missing" --prompt hi --temp warm
expect_usage "run: top-p 0" run --model "$missing" --prompt hi --top-p 0
expect_usage "run: budget with requantized weights" run --model "$missing" --prompt hi --budget 64MB --bits 4
expect_usage "run: budget with reference weights" run --model "$missing" --prompt hi --budget 64MB \
    --weights reference
expect_usage "run: bits with weights" run --model "$missing" --prompt hi --bits 4 --weights reference
expect_usage "run: group size without bits" run --model "$missing" --prompt hi --group-size 32
expect_usage "run: kernel with reference weights" run --model "$missing" --prompt hi --weights reference --kernel lut
expect_usage "perplexity: ctx 4" perplexity --model "$missing" --text /usr/share/common-licenses/GPL-3 --ctx 4
expect_usage "stack: kernel with a stack" run --model "$missing" --prompt hi --stack "$tiny" --budget 1MB --kernel lut
for command in info demo bench stack gguf run perplexity report quantize; do
    for help in --help -h; do
        out=$(timeout 60 "$lowbit" $command $help 2>&1)
        status=$?
        if [[ $status -ne 0 ]] || [[ $out != *usage* ]]; then
            echo "FAIL $command $help: exit $status, output: ${out:0:200}"
            failures=$((failures + 1))
        fi
    done
done
echo "ok   --help and -h on every command"
# Progress into a file: plain lines, no carriage returns redrawing a bar.
"$lowbit" perplexity --model "$model" --text /usr/share/common-licenses/GPL-3 --ctx 64 --chunks 3 \
    2>"$scratch/progress.log" >/dev/null
if grep -q $'\r' "$scratch/progress.log" || ! grep -q "3/3" "$scratch/progress.log"; then
    echo "FAIL progress into a file: $(head -c 300 "$scratch/progress.log")"
    failures=$((failures + 1))
else
    echo "ok   progress into a file is plain lines"
fi

if [[ $failures -ne 0 ]]; then echo "$failures CLI error case(s) failed"; exit 1; fi
echo "ok: every CLI error case reported cleanly"
