import _Builtin_intrinsics.intel
import LowBitAVX2
import LowBitCore

/// The AVX-512 tier (F, DQ, BW, VL, VNNI, VBMI, VPOPCNTDQ: Intel Ice Lake, AMD Zen 4 and later).
/// Kernels it does not declare are the AVX2 tier's (`AVX2Capable`).
package enum AVX512Kernels: AVX2Capable {
    package static var tier: SIMDTier { .avx512 }
}
