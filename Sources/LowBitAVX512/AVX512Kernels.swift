import _Builtin_intrinsics.intel
import LowBitAVX2
import LowBitCore

/// The AVX-512 tier (F, DQ, BW, VL, VNNI, VBMI, VPOPCNTDQ: Intel Ice Lake, AMD Zen 4 and later).
/// Its own so far: the float vector loops and the memory-read baseline, 16 lanes with masked tails.
/// Kernels it does not declare (the three families' products above all) are the AVX2 tier's
/// (`AVX2Capable`).
package enum AVX512Kernels: AVX2Capable {
    package static var tier: SIMDTier { .avx512 }
}

extension AVX512Kernels {
    package static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        VectorsAVX512.dot(a, b, count: count)
    }

    package static func dot4(_ c: UnsafePointer<Float>, _ b: UnsafePointer<Float>, stride: Int,
                             count: Int) -> (Float, Float, Float, Float) {
        VectorsAVX512.dot4(c, b, stride: stride, count: count)
    }

    package static func multiplyHalf(_ h: UnsafePointer<Float16>, _ x: UnsafePointer<Float>,
                                     into out: UnsafeMutablePointer<Float>, count: Int) {
        VectorsAVX512.multiplyHalf(h, x, into: out, count: count)
    }

    package static func multiplyAddHalf(_ h: UnsafePointer<Float16>, _ p: UnsafePointer<Float>,
                                        into y: UnsafeMutablePointer<Float>, count: Int) {
        VectorsAVX512.multiplyAddHalf(h, p, into: y, count: count)
    }

    package static func readBytes(_ p: UnsafeRawPointer, bytes: Int) -> UInt64 { VectorsAVX512.readBytes(p,
        bytes: bytes) }
}
