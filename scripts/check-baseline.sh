#!/usr/bin/env bash
# Checks that the objects of every target but the instruction-set tiers hold no instruction the
# x86-64 baseline lacks (SSE2 is the newest it may use): no ymm/zmm/mask registers, no VEX-only
# or BMI/POPCNT/LZCNT instructions. The qemu run without AVX in scripts/test.sh is the proof on a
# real CPU model; this names the function when something leaks. Usage: check-baseline.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-.build/release}
[ "$(uname -m)" = x86_64 ] || { echo "baseline check: x86-64 only, skipped on $(uname -m)"; exit 0; }
# Each target's build folder and sources: objects of files no longer in the tree are stale.
targets=(LowBitCore:Sources/LowBitCore LowBitPortable:Sources/LowBitPortable LowBit:Sources/LowBit
         LowBitModel:Sources/LowBitModel LowBitC:Sources/LowBitC lowbit_cli:Sources/lowbit-cli)
pattern='%[yz]mm[0-9]|%k[0-7]\b|\b(v[a-z0-9]+|shlx|shrx|sarx|rorx|andn|bzhi|pdep|pext|mulx|popcnt|lzcnt|tzcnt)\s'
bad=0 checked=0
for entry in "${targets[@]}"; do
    target=${entry%%:*} sources=${entry#*:}
    for source in $(find "$sources" -name '*.swift'); do
        object="$build/$target.build/$(basename "$source").o"
        [ -e "$object" ] || { echo "baseline check: $object is missing (build first)"; exit 1; }
        checked=$((checked + 1))
        # Disassembly with each function's name before its instructions: report the first hits.
        hits=$(objdump -d --no-show-raw-insn "$object" | awk -v pat="$pattern" '
            /^[0-9a-f]+ <.*>:$/ { fn = $2 }
            $0 ~ pat { print fn ": " $0; n++ } n >= 5 { exit }' || true)
        if [ -n "$hits" ]; then
            echo "$object uses instructions beyond the x86-64 baseline:"
            echo "$hits"
            bad=1
        fi
    done
done
[ "$bad" -eq 0 ] || exit 1
echo "baseline check: $checked objects of ${#targets[@]} targets use x86-64 baseline instructions only"
