#!/usr/bin/env bash
# Runs every code block of README.md, then those of docs/PYTHON.md, exactly as printed and in
# order, from the repository's root, as a reader pasting them would: the set-up block's main job
# (the test command is what runs this), the install into $HOME/.local and the wheel into .venv,
# the chats in Python, C++ and C, the matrix examples and the command-line tour. HOME is a
# temporary folder for everything but the main job; a .venv or build/ of your own is set aside and
# put back. Each block must succeed, and the ones named below must print what they promise.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d)
made=(.venv build example.c example)
restore() {
    for path in "${made[@]}"; do
        rm -rf "${root:?}/$path"
        [ ! -e "$work/saved/$path" ] || mv "$work/saved/$path" "$root/$path"
    done
    rm -rf "$work"
    rm -f /tmp/m4.gguf /tmp/smollm2-4bit.gguf /tmp/w2.lbm /tmp/model.lbs   # the files the blocks write
}
trap restore EXIT
mkdir -p "$work/saved" "$work/home" "$work/blocks"
for path in "${made[@]}"; do
    [ ! -e "$path" ] || mv "$path" "$work/saved/$path"
done

# Every fenced block as NNN.LANGUAGE, numbered in reading order across both files.
awk -v dir="$work/blocks" '
    /^```[a-z]*$/ && !on { on = 1; n++; lang = substr($0, 4); if (lang == "") lang = "text"
                            file = sprintf("%s/%03d.%s", dir, n, lang); printf "" > file; next }
    /^```$/ && on { on = 0; close(file); next }
    on { print > file }' README.md docs/PYTHON.md

# What a block must print, found by what it holds: "block pattern|output pattern" (extended regexes).
expectations=(
    'ctx\.chat\(|Paris'
    'ctx\.chat\(|Rome'
    'LowbitError|^error: INVALID_ARGUMENT'
    'build/cpp/chat |Paris'
    'build/chat_context |^chat context example ok$'
    '\./example$|^y\[0\] = '
    'lowbit run --model|Paris'
    'lowbit perplexity|perplexity'
    'Stack\.open|^blocks of q: 8 '
    'Model\.quantize\(|^next: '
)

count=0
for block in "$work"/blocks/*; do
    name=$(basename "$block")
    out=$work/$name.out
    case $name in
        *.python)
            (HOME=$work/home .venv/bin/python "$block") | tee "$out" ;;
        *.c)
            cp "$block" example.c
            : >"$out" ;;
        *.sh)
            if grep -q '^scripts/test\.sh' "$block"; then
                # The set-up block: its main job runs here (with the real HOME, where the toolchain's
                # caches are); its test command is the one running now.
                bash -euo pipefail -c "$(grep '^scripts/main\.sh' "$block")" | tee "$out"
                grep -q "Paris" "$out" || { echo "README: the main job gave no answer"; exit 1; }
            else
                (HOME=$work/home bash -euo pipefail "$block") | tee "$out"
            fi ;;
        *)
            echo "README: a block without a language ($name) cannot be run"; exit 1 ;;
    esac
    for expectation in "${expectations[@]}"; do
        if grep -qE "${expectation%%|*}" "$block" && ! grep -qE "${expectation#*|}" "$out"; then
            echo "README: block $name printed no match for '${expectation#*|}'"; exit 1
        fi
    done
    count=$((count + 1))
done
[ -x "$work/home/.local/bin/lowbit" ] || { echo "README: the install block installed nothing"; exit 1; }
echo "ok: $count code blocks of README.md and docs/PYTHON.md run as printed"
