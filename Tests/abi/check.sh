#!/usr/bin/env bash
# ABI discipline (docs/DESIGN.md), on the release build in dist/:
#  1. Include/lowbit.h agrees with the prototypes Swift emits for the shims;
#  2. the .so exports exactly the LOWBIT_API functions of the header, and nothing else of ours;
#  3. the .so loads without a Swift toolchain (no Swift runtime libraries in ldd);
#  4. the library's version equals the header's, and its soname is liblowbit.so.MAJOR.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "abi check FAILED: $*"; exit 1; }

swiftc -typecheck Sources/LowBitC/*.swift -I .build/release/Modules -I Sources/LowBitCPU/include -module-name LowBitC \
    -emit-clang-header-path "$work/LowBitC-Swift.h" -Xcc -mavx2 -Xcc -mfma -Xcc -mf16c
for f in $(grep -o 'lowbit_[a-z_0-9]*(' Include/lowbit.h | tr -d '(' | sort -u); do
    grep -q "SWIFT_EXTERN .* $f(" "$work/LowBitC-Swift.h" || fail "$f is declared in lowbit.h but has no @c shim"
done
clang -std=c11 -Wall -Werror -IInclude -I"$work" Tests/abi/header_sync.c -Ldist/lib -llowbit -o "$work/header_sync" \
    || fail "lowbit.h and the Swift shims disagree (see the compiler errors above)"
LD_LIBRARY_PATH=dist/lib "$work/header_sync" || fail "library version differs from LOWBIT_VERSION_NUMBER"
soname=$(readelf -d dist/lib/liblowbit.so | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = "liblowbit.so.$(scripts/version.sh | cut -d. -f1)" ] \
    || fail "soname $soname does not follow the header's major"
echo "ok: header and shims agree ($(grep -c 'SWIFT_EXTERN .* lowbit_' "$work/LowBitC-Swift.h") functions)"

# The option structs: the offsets the shims read them at are the C compiler's.
clang -std=c11 -Wall -Werror -IInclude Tests/abi/struct_layout.c -o "$work/struct_layout"
swift_layout() {  # the "static let name = offset" constants of one enum in ContextShims.swift, in order
    sed -n "/^enum $1 {/,/^}/p" Sources/LowBitC/ContextShims.swift | grep -E '^ +static let [a-zA-Z]+ = [0-9]' \
        | sed -E 's/ +static let //; s/, / /g; s/ = / /g' | tr '\n' ' ' | sed 's/ *$//'
}
c_layout=$("$work/struct_layout")
for table in ModelParams SamplerParams; do
    expected=$(grep "^$table " <<<"$c_layout" | cut -d' ' -f2-)
    [ "$(swift_layout "$table")" = "$expected" ] || fail "$table in ContextShims.swift is not the C layout: $expected"
done
grep -q "^ChatMessage size 16 role 0 content 8$" <<<"$c_layout" || fail "lowbit_chat_message is not two pointers"
echo "ok: the option structs' offsets agree with the C compiler's"

declared=$(grep -E '^LOWBIT_API' Include/lowbit.h | grep -o 'lowbit_[a-z_0-9]*(' | tr -d '(' | sort -u)
exported=$(nm -D --defined-only dist/lib/liblowbit.so | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sort -u)
[ "$declared" = "$exported" ] || fail "exports differ from the header:
$(diff <(echo "$declared") <(echo "$exported") || true)"
echo "ok: the .so exports exactly the $(echo "$declared" | wc -l) LOWBIT_API functions"

if ldd dist/lib/liblowbit.so | grep -Ei 'swift|dispatch|foundation'; then
    fail "liblowbit.so needs Swift runtime libraries"
fi
env -i /usr/bin/python3 -c "import ctypes; assert ctypes.CDLL('dist/lib/liblowbit.so').lowbit_version_number() > 0" \
    || fail "liblowbit.so does not load in a clean environment"
echo "ok: liblowbit.so needs no Swift toolchain: $(ldd dist/lib/liblowbit.so | awk '{print $1}' | tr '\n' ' ')"
