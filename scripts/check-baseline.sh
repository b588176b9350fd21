#!/usr/bin/env bash
# Checks that the objects of every target but the instruction-set tiers hold no instruction the
# x86-64 baseline lacks (SSE2 is the newest it may use): no ymm/zmm/mask registers, no VEX-only
# or BMI/POPCNT/LZCNT instructions. The qemu run without AVX in scripts/test.sh is the proof on a
# real CPU model; this names the function when something leaks. Usage: check-baseline.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-.build/release}
[ "$(uname -m)" = x86_64 ] || { echo "baseline check: x86-64 only, skipped on $(uname -m)"; exit 0; }
# The target that compiles a source file: its folder under Sources/, except in a kernel family's
# folder (Sources/LowBit/Kernels/<Family>/), where the name decides as Package.swift says. Only the
# tree's files are checked: objects of files no longer in it are stale.
target_of() {
    case $1 in
        Sources/LowBit/Kernels/*/*AVX2.swift|Sources/LowBit/Kernels/*/*AVX512.swift) echo tier ;;
        Sources/LowBit/Kernels/*/*Layout.swift|Sources/LowBit/Kernels/*/*Tables.swift) echo LowBitCore ;;
        Sources/LowBit/Kernels/*/*Activations.swift) echo LowBitCore ;;
        Sources/LowBitAVX2/*|Sources/LowBitAVX512/*|Sources/LowBitCPU/*) echo tier ;;
        Sources/lowbit-cli/*) echo lowbit_cli ;;
        *) cut -d/ -f2 <<<"$1" ;;
    esac
}
pattern='%[yz]mm[0-9]|%k[0-7]\b|\b(v[a-z0-9]+|shlx|shrx|sarx|rorx|andn|bzhi|pdep|pext|mulx|popcnt|lzcnt|tzcnt)\s'
bad=0 checked=0 targets=()
for source in $(find Sources -name '*.swift' | sort); do
    target=$(target_of "$source")
    [ "$target" != tier ] || continue
    [[ " ${targets[*]} " == *" $target "* ]] || targets+=("$target")
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
[ "$bad" -eq 0 ] || exit 1
echo "baseline check: $checked objects of ${#targets[@]} targets use x86-64 baseline instructions only"
