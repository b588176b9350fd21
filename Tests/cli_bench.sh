#!/usr/bin/env bash
# `lowbit bench` on small shapes, one cache-hot and one streamed from DRAM: every case is
# measured (7 to 200 timed runs); errors are within the bench's 5e-4 bound; the table has a
# verdict with auto per case; --calibrate writes a loadable file; dequant's float activations
# are cases of their own.
set -euo pipefail
cd "$(dirname "$0")/.."
lowbit=dist/bin/lowbit
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(--cases 48x256:hot,40x384:dram --bits 1,2,3,4,ternary --n 1,3 --threads 1,2 --group-size 64)
"$lowbit" bench "${common[@]}" --act-bits 2,8 --json --calibrate "$work/auto.txt" > "$work/bench.json"
python3 - "$work/bench.json" "$work/auto.txt" <<'PY'
import json, sys
cases = json.load(open(sys.argv[1]))["cases"]
# shapes x types x n x threads x (lut, bitserial a2/a8, dequant, auto)
assert len(cases) == 2 * 5 * 2 * 2 * 5, len(cases)
for c in cases:
    assert c["seconds"] and c["seconds"] > 0 and c["read_seconds"] > 0, c
    assert 7 <= c["runs"] <= 200, c
    bound = 5e-4 if c["act_bits"] == 8 else 1.0  # 2-bit activations: the cost of their rounding, large
    assert 0 <= c["error"] <= bound, c
    # Speed-ups over 1 thread come from the same rounds: every 2-thread case has one.
    assert (c["speed_up_over_1_thread"] is None) == (c["threads"] == 1), c
    assert c["threads"] == 1 or c["speed_up_over_1_thread"] > 0, c
    assert (c["read_speed_up_over_1_thread"] is None) == (c["threads"] == 1), c
    assert c["threads"] == 1 or c["read_speed_up_over_1_thread"] > 0, c
lines = [l.split() for l in open(sys.argv[2]) if not l.startswith("#")]
assert len(lines) == 2 * 5 * 2 * 2 and all(l[6] in ("lut", "dequant") for l in lines), lines
print(f"ok: bench measured {len(cases)} cases, calibration has {len(lines)} entries")
PY
# Dequant's float activations (act_bits 32) are cases of their own, exact to float rounding.
"$lowbit" bench --cases 48x256:hot --bits 2,4,mixed4 --n 1,5 --threads 1 --group-size 64 --families dequant \
    --act-bits 8,32 --json > "$work/float.json"
python3 - "$work/float.json" <<'PY'
import json, sys
cases = json.load(open(sys.argv[1]))["cases"]
assert len(cases) == 3 * 2 * 2 and sorted({c["act_bits"] for c in cases}) == [8, 32], cases
for c in cases:
    assert c["seconds"] > 0 and 7 <= c["runs"] <= 200, c
    assert 0 <= c["error"] <= (1e-10 if c["act_bits"] == 32 else 5e-4), c
print(f"ok: dequant with int8 and float activations, {len(cases)} cases")
PY
# --tiers runs every case at each tier this CPU has, in the same rounds: rows name their tier,
# and a "tiers" line gives each tier's speed over the first.
tiers=$("$lowbit" info | sed -n 's/^simd tiers this cpu runs: //p' | tr -d ' ')
count=$(echo "$tiers" | tr ',' '\n' | wc -l)
"$lowbit" bench --cases 48x256:hot --bits 2,4 --n 1,5 --threads 1 --group-size 64 --families dequant,lut \
    --tiers "$tiers" --json > "$work/tiers.json"
python3 - "$work/tiers.json" "$tiers" <<'PY'
import json, sys
cases, tiers = json.load(open(sys.argv[1]))["cases"], sys.argv[2].split(",")
assert sorted({c["tier"] for c in cases}) == sorted(tiers), (tiers, cases)
assert len(cases) == 2 * 2 * 2 * len(tiers), len(cases)
for c in cases:
    assert c["seconds"] > 0 and 0 <= c["error"] <= 5e-4, c
print(f"ok: bench at tiers {tiers}, {len(cases)} cases")
PY
if [ "$count" -gt 1 ]; then
    "$lowbit" bench --cases 48x256:hot --bits 4 --n 5 --threads 1 --group-size 64 --families dequant \
        --tiers "$tiers" > "$work/tiers.txt"
    lines=$(grep -cE '^  tiers 48x256 hot 4-bit n=5 t=1 dequant: speed over portable: ([a-z0-9]+ [0-9.]+x(, )?)+$' \
        "$work/tiers.txt")
    [ "$lines" -eq 1 ] || { echo "FAIL: no tiers line"; cat "$work/tiers.txt"; exit 1; }
fi
if "$lowbit" bench --cases 48x256:hot --tiers sse9 > "$work/bad.txt" 2>&1 \
    || ! grep -q "^lowbit: --tiers takes" "$work/bad.txt"; then
    echo "FAIL: an unknown tier should be refused"; cat "$work/bad.txt"; exit 1
fi
# A model timed as llama-bench times it: a prompt test and a generation test per thread count,
# each tok/s a mean ± sd, generation with its fraction of the memory roofline.
model=${LOWBIT_MODEL:-.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}
"$lowbit" bench --model "$model" --bits 4 --prompt-tokens 16 --gen-tokens 4 --repetitions 2 --threads 1,2 \
    > "$work/model.txt" 2>/dev/null
pp=$(grep -cE '^[12] +[a-z0-9]+ +pp16 +[0-9.]+ ± [0-9.]+ +-$' "$work/model.txt")
tg=$(grep -cE '^[12] +[a-z0-9]+ +tg4 +[0-9.]+ ± [0-9.]+ +[0-9]+\.[0-9]+$' "$work/model.txt")
[ "$pp" -eq 2 ] && [ "$tg" -eq 2 ] || { echo "FAIL: model bench lines"; cat "$work/model.txt"; exit 1; }
echo "ok: model bench times prompt and generation at 1 and 2 threads"
"$lowbit" run --model "$model" --bits 4 -n 8 --prompt "The capital of France is" > "$work/run.txt" 2>/dev/null
grep -qE 'generation: [0-9]+ tokens, [0-9.]+ tok/s \([0-9.]+ of the memory roofline\)' "$work/run.txt" \
    || { echo "FAIL: run prints no roofline"; cat "$work/run.txt"; exit 1; }
echo "ok: run prints generation's fraction of the memory roofline"
# A shape whose columns the group size does not divide runs with the largest one that does,
# and says so (as DESIGN's 3200x8640 at the default 128); a shape no group size fits is refused
# before anything runs.
"$lowbit" bench --cases 40x96:hot --bits 2 --n 1 --threads 1 --families lut --group-size 64 > "$work/g.txt"
grep -q '^40x96: group size 32 (96 columns are not a multiple of 64)$' "$work/g.txt" \
    || { echo "FAIL: no group size note"; cat "$work/g.txt"; exit 1; }
"$lowbit" bench --cases 40x96:hot --bits 2 --n 1 --threads 1 --families lut --group-size 64 --json \
    | python3 -c 'import json, sys; assert {c["group_size"] for c in json.load(sys.stdin)["cases"]} == {32}'
if "$lowbit" bench --cases 48x256:hot,40x100:hot --bits 2 --n 1 --threads 1 > "$work/bad.txt" 2>&1 \
    || ! grep -q "cols 100 is not a multiple of group size 128" "$work/bad.txt" \
    || grep -q "^48x256 " "$work/bad.txt"; then
    echo "FAIL: a shape no group size fits should be refused before anything runs"; cat "$work/bad.txt"; exit 1
fi
echo "ok: group sizes per shape"
# One shape both cache-hot and streamed: one calibration entry per key, chosen from both; a
# mixed 3-bit matrix is keyed by its 4-bit value codes, as `auto` keys it.
"$lowbit" bench --cases 48x256:hot,48x256:dram --bits 2,mixed3 --n 1 --threads 1 --group-size 64 \
    --calibrate "$work/both.txt" > /dev/null
[ "$(grep -v '^#' "$work/both.txt" | cut -d' ' -f1-6 | tr '\n' ';')" = "48 256 64 2 1 1;48 256 64 4 1 1;" ] \
    || { echo "FAIL: expected one entry each for 2-bit codes and 4-bit value codes"; cat "$work/both.txt"; exit 1; }
"$lowbit" bench "${common[@]}" > "$work/bench.txt"
pool_line='^thread pool: an empty job in 2 parts takes [0-9.]+ (ms|us) per call; '
pool_line+='the last part starts [0-9.]+ (ms|us) after the call \(median\)$'
grep -qE "$pool_line" "$work/bench.txt" \
    || { echo "FAIL: no thread pool line"; head -5 "$work/bench.txt"; exit 1; }
verdicts=$(grep -c '^  verdict .*fastest .*; auto [0-9.]*x the fastest$' "$work/bench.txt")
[ "$verdicts" -eq 40 ] \
    || { echo "FAIL: $verdicts verdict lines with auto, expected 40"; cat "$work/bench.txt"; exit 1; }
r='[0-9.]+x on 2 \(read [0-9.]+x\)'
head='^  threads [0-9]+x[0-9]+ (hot|dram) [^ ]+ n=[0-9]+ [a-z0-9]+: over 1 thread, side by side'
tail="\(memory read of the same bytes\): lut $r, bitserial $r, dequant $r, auto $r\$"
threads=$(grep -cE "$head $tail" "$work/bench.txt")
[ "$threads" -eq 20 ] || { echo "FAIL: $threads thread speed-up lines, expected 20"; cat "$work/bench.txt"; exit 1; }
echo "ok: bench table has a verdict with auto for each of the 40 cases and a thread speed-up line for each" \
    "of the 20; hot and streamed times share calibration entries"
