#!/usr/bin/env bash
# Fails when a tracked text file has a line longer than 120 characters (characters, not bytes:
# the kernels' comments write their math in Unicode). Binary fixtures, fuzz corpora and pictures
# drawn by `lowbit report --plot` (SVG) are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
git ls-files -z | python3 -c '
import sys
long_lines = []
for path in sys.stdin.read().split("\0"):
    if not path or path.startswith(("Tests/Fixtures/", "Tests/Fuzz/Corpus/")) or path.endswith(".svg"):
        continue
    try:
        text = open(path, encoding="utf-8").read()
    except (UnicodeDecodeError, IsADirectoryError):
        continue
    long_lines += [f"{path}:{n}: {len(line)} characters" for n, line in enumerate(text.split("\n"), 1)
                   if len(line) > 120]
print("\n".join(long_lines) or "lines: none longer than 120 characters")
sys.exit(1 if long_lines else 0)
'
