#!/usr/bin/env bash
# Runs the README's Python and C examples exactly as printed ($PYTHON: the interpreter with the
# lowbit package, default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Each python block runs on its own.
awk -v dir="$work" '/^```python$/{on=1; n++; next} /^```$/{on=0} on {print > (dir "/example" n ".py")}' README.md
awk '/^```c$/{on=1; next} /^```$/{on=0} on' README.md > "$work/example.c"
compile=$(grep -E '^cc -IInclude example.c' README.md)
# The chat runs from the repository's root, where the README says (the model's path is relative).
"${PYTHON:-python3}" "$work/example1.py" | tee "$work/chat.out"
grep -q "Paris" "$work/chat.out" && grep -q "Rome" "$work/chat.out"
(cd /tmp && "${PYTHON:-python3}" "$work/example2.py") | tee "$work/py.out"
grep -q "error: INVALID_ARGUMENT" "$work/py.out"
(cd /tmp && "${PYTHON:-python3}" "$work/example3.py") | tee "$work/py2.out"
grep -q "^blocks of q: 8 " "$work/py2.out"
cp "$work/example.c" example.c
trap 'rm -rf "$work" example.c example' EXIT
eval "$compile" | tee "$work/c.out"
grep -q '^y\[0\] = ' "$work/c.out"
echo "ok: README examples run as printed"
