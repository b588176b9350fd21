#!/usr/bin/env bash
# `lowbit quantize`: a uniform model file scores the perplexity of the same requantization made
# at load, loads as it is in run, perplexity and gguf, and holds the weights it reports; wrong
# requests are refused before anything loads.
set -euo pipefail
cd "$(dirname "$0")/.."
lowbit=dist/bin/lowbit
model=${LOWBIT_MODEL:-.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gpl=/usr/share/common-licenses/GPL-3
"$lowbit" quantize --model "$model" -o "$work/m3.gguf" --bits 3 --group-size 32 > "$work/quantize.txt" 2>/dev/null
grep -qE "^wrote $work/m3.gguf in [0-9.]+ s; it loads in [0-9.]+ ms holding [0-9.]+ MiB of weights$" \
    "$work/quantize.txt" || { echo "FAIL: quantize output"; cat "$work/quantize.txt"; exit 1; }
# The same matrices on the same kernel: the same perplexity to the last digit.
made=$("$lowbit" perplexity --model "$model" --bits 3 --group-size 32 --kernel dequant --text "$gpl" --ctx 64 \
    --chunks 2 2>/dev/null | grep -oE '^perplexity [0-9.]+')
loaded=$("$lowbit" perplexity --model "$work/m3.gguf" --kernel dequant --text "$gpl" --ctx 64 --chunks 2 \
    2>/dev/null | grep -oE '^perplexity [0-9.]+')
[ -n "$made" ] && [ "$made" = "$loaded" ] || { echo "FAIL: made at load '$made', from the file '$loaded'"; exit 1; }
"$lowbit" run --model "$work/m3.gguf" --prompt "The capital of France is" -n 4 > "$work/run.txt" 2>&1
grep -q "the file's lowbit matrices (auto, 8-bit activations)" "$work/run.txt" \
    || { echo "FAIL: run of the model file"; cat "$work/run.txt"; exit 1; }
"$lowbit" gguf "$work/m3.gguf" | grep -q "blk.0.attn_q.lowbit" || { echo "FAIL: gguf lists no .lowbit tensor"; exit 1; }
echo "ok: a quantized model file loads as the requantization it holds ($loaded)"
# Memory is what a model file is for: the process's peak while loading and running stays within
# 1.25 x its weights + 32 MiB (the KV cache of a few tokens is a few hundred KiB).
python3 - "$lowbit" "$work/m3.gguf" <<'PY'
import re, resource, subprocess, sys
out = subprocess.run([sys.argv[1], "run", "--model", sys.argv[2], "--prompt", "The capital of France is", "-n", "8"],
                     capture_output=True, text=True, check=True).stdout
weights = float(re.search(r"weights ([0-9.]+) MiB", out).group(1))
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB -> MiB
assert peak <= 1.25 * weights + 32, f"peak RSS {peak:.1f} MiB for {weights} MiB of weights"
print(f"ok: peak RSS {peak:.1f} MiB for {weights} MiB of weights (bound {1.25 * weights + 32:.1f})")
PY
# The report's picture: its rows, the model file and the reference points, as SVG.
"$lowbit" report --model "$model" --text "$gpl" --chunks 1 --ctx 64 --decode 2 --models "$work/m3.gguf" \
    --plot "$work/plot.svg" --reference-points docs/llamacpp-smollm2-gpl3.csv > "$work/report.txt" 2>/dev/null
grep -q "^m3.gguf " "$work/report.txt" \
    || { echo "FAIL: no report row for the model file"; cat "$work/report.txt"; exit 1; }
python3 - "$work/plot.svg" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
text = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
for label in ["file's own blocks", "4-bit g64", "m3.gguf", "Q3_K_M", "float reference", "llama.cpp"]:
    assert label in text, (label, text)
print("ok: report --plot draws the rows, the model file and the reference points")
PY
refuse() {
    local what=$1; shift
    local status=0
    "$lowbit" quantize "$@" > "$work/bad.txt" 2>&1 || status=$?
    [ $status -eq 2 ] && grep -q "^lowbit: " "$work/bad.txt" \
        || { echo "FAIL: $what: exit $status"; cat "$work/bad.txt"; exit 1; }
}
refuse "no output" --model "$model" --bits 4
refuse "bits and target size" --model "$model" -o "$work/x.gguf" --bits 4 --target-size 60MB
refuse "target size without calibration" --model "$model" -o "$work/x.gguf" --target-size 60MB
refuse "group size with target size" --model "$model" -o "$work/x.gguf" --target-size 60MB --group-size 32 \
    --calibration-text "$gpl"
refuse "group size 48" --model "$model" -o "$work/x.gguf" --bits 4 --group-size 48
refuse "a lowbit file as the source" --model "$work/m3.gguf" -o "$work/x.gguf" --bits 4
if "$lowbit" report --model "$model" --text "$gpl" --plot "$work/x.svg" --reference-points "$gpl" > /dev/null 2>&1 \
    || [ -e "$work/x.svg" ]; then
    echo "FAIL: report with a malformed points file"; exit 1
fi
[ ! -e "$work/x.gguf" ] || { echo "FAIL: a refused request wrote a file"; exit 1; }
echo "ok: quantize refuses wrong requests"
# An elastic model of the fuzz corpus's one-layer model (seconds), and its elastic seed (three
# levels): --budget picks a level, a budget below the smallest is refused, and wrong requests are
# refused before anything is made.
tiny=Tests/Fuzz/Corpus/gguf/llama-complete.gguf
seed=Tests/Fuzz/Corpus/gguf/llama-elastic.gguf
python3 -c 'print("Hello, He said. Hell! " * 96)' > "$work/tiny.txt"
"$lowbit" quantize --model "$tiny" -o "$work/elastic.gguf" --elastic --min-size 9KB --max-size 14KB --levels 4 \
    --calibration-text "$work/tiny.txt" > "$work/elastic.txt" 2>/dev/null
levels=$(grep -oE "^wrote $work/elastic.gguf in [0-9.]+ s: [1-4] levels from " "$work/elastic.txt" \
    | grep -oE "[1-4] levels" | cut -d' ' -f1) \
    || { echo "FAIL: quantize --elastic output"; cat "$work/elastic.txt"; exit 1; }
"$lowbit" gguf "$work/elastic.gguf" | grep -q "elastic: $levels levels over 8 laddered tensors" \
    || { echo "FAIL: gguf does not list the levels"; exit 1; }
level() { "$lowbit" run --model "$seed" --prompt He -n 2 "$@" 2>&1 | grep -oE "level [0-9]+ of 3"; }
[ "$(level)" = "level 3 of 3" ] && [ "$(level --budget 17KiB)" = "level 2 of 3" ] \
    || { echo "FAIL: --budget levels '$(level)' and '$(level --budget 17KiB)'"; exit 1; }
status=0
"$lowbit" run --model "$seed" --prompt He -n 2 --budget 1KB > "$work/bad.txt" 2>&1 || status=$?
[ $status -eq 2 ] && grep -q "below the smallest level" "$work/bad.txt" \
    || { echo "FAIL: a budget below the smallest level: exit $status"; cat "$work/bad.txt"; exit 1; }
status=0
"$lowbit" run --model "$tiny" --prompt He -n 2 --budget 1MB > "$work/bad.txt" 2>&1 || status=$?
[ $status -eq 2 ] && grep -q "elastic model file" "$work/bad.txt" \
    || { echo "FAIL: a budget for a model that is not elastic: exit $status"; cat "$work/bad.txt"; exit 1; }
"$lowbit" report --model "$tiny" --text "$work/tiny.txt" --chunks 1 --ctx 64 --decode 2 \
    --models "$seed@17KiB,$seed@18KiB" --plot "$work/elastic.svg" > "$work/report.txt" 2>&1
python3 - "$work/elastic.svg" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
text = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
assert "elastic model as its budget moves" in text and "llama-elastic.gguf@17KiB" in text, text
assert any(p.get("stroke") == "#9467bd" for p in root.iter("{http://www.w3.org/2000/svg}polyline")), "no line"
print("ok: report --models FILE@SIZE draws an elastic model's budgets as one line")
PY
refuse "elastic without sizes" --model "$tiny" -o "$work/x.gguf" --elastic --calibration-text "$work/tiny.txt"
refuse "elastic with bits" --model "$tiny" -o "$work/x.gguf" --elastic --min-size 7KB --max-size 10KB --bits 4 \
    --calibration-text "$work/tiny.txt"
refuse "elastic min above max" --model "$tiny" -o "$work/x.gguf" --elastic --min-size 10KB --max-size 7KB \
    --calibration-text "$work/tiny.txt"
refuse "elastic without calibration" --model "$tiny" -o "$work/x.gguf" --elastic --min-size 7KB --max-size 10KB
refuse "min size without elastic" --model "$tiny" -o "$work/x.gguf" --bits 4 --min-size 7KB
[ ! -e "$work/x.gguf" ] || { echo "FAIL: a refused elastic request wrote a file"; exit 1; }
echo "ok: an elastic model file runs the level its budget allows"
