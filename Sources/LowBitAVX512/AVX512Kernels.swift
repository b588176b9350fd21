import _Builtin_intrinsics.intel
import LowBitAVX2
import LowBitCore

/// The AVX-512 tier (F, DQ, BW, VL, VNNI, VBMI, VPOPCNTDQ: Intel Ice Lake, AMD Zen 4 and later).
/// Its own: the float vector loops and the memory-read baseline (16 lanes with masked tails), the
/// dequant family's int8 products (VNNI), the LUT family's lookups from 2 to 4 bits, the
/// bit-serial family's sums. Kernels it does not declare are the AVX2 tier's (`AVX2Capable`).
package enum AVX512Kernels: AVX2Capable {
    package static var tier: SIMDTier { .avx512 }

    package static func note(family: String) -> String {
        switch family {
        case "dequant": return "avx512 vnni (vpdpbusd on 16 rows per register; n = 1: 64 rows at once, "
                               + "n > 2: 32x4 register tile); n = 2 and float activations: avx2"
        case "lut": return "avx512 (vpshufb on a row block per register) at 2 to 4 bits; "
                           + "1 bit and sign matrices: avx2"
        case "bitserial": return "avx512 for n > 1 (the avx2 kernel's lane steps on two 256-column chunks per "
                                 + "register); n = 1: avx2"
        default: return AVX2Kernels.note(family: family)
        }
    }

    package static func dequantMultiply(_ layout: DequantLayout, rows: Int, cols: Int, groupSize: Int,
                                        x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>,
                                        floatActivations: Bool) throws {
        // Two rows (the file's Q4_1 decoding one token with 16-bit activations) stream weights
        // faster on the AVX2 kernel's prefetched 2-row tile than on the padded 4-row one here.
        guard !floatActivations, n != 2 else {
            return try AVX2Kernels.dequantMultiply(layout, rows: rows, cols: cols, groupSize: groupSize, x: x, n: n,
                                                   y: y, floatActivations: floatActivations)
        }
        try DequantKernelAVX512.multiply(layout, rows: rows, cols: cols, groupSize: groupSize, x: x, n: n, y: y)
    }

    package static func bitSerialMultiply(_ layout: BitSerialLayout, groupSize: Int, acts: BitSerialActivations,
                                          x: UnsafePointer<Float>, n: Int, rows: Int,
                                          workspace: UnsafeMutableRawPointer, rowBytes: Int,
                                          y: UnsafeMutablePointer<Float>) {
        // One activation row, whose product streams the codes once: there the AVX-512 kernel,
        // ahead from cache, fell well behind the AVX2 one from DRAM at 3 and 4 bits.
        guard n > 1 else {
            return AVX2Kernels.bitSerialMultiply(layout, groupSize: groupSize, acts: acts, x: x, n: n, rows: rows,
                                                 workspace: workspace, rowBytes: rowBytes, y: y)
        }
        for i in 0..<n { BitSerialKernelAVX2.prepare(acts, x + i * acts.cols, into: workspace + i * rowBytes) }
        parallelRanges(rows) { range in
            BitSerialKernelAVX512.run(layout, groupSize: groupSize, acts: acts, n: n, rows: rows, actBase: workspace,
                                      actStride: rowBytes, y: y, rowRange: range)
        }
    }

    package static func lutMultiply(_ layout: LUTLayout, rows: Int, cols: Int, groupSize: Int, x: UnsafePointer<Float>,
                                    n: Int, y: UnsafeMutablePointer<Float>) throws {
        // At 1 bit a unit is 32 bytes, half a register: the AVX2 kernel reads it as well.
        if layout.bits == 1 {
            try LUTKernelAVX2.multiply(LUTKernelAVX2.self, layout, rows: rows, cols: cols, groupSize: groupSize, x: x,
                                       n: n, y: y)
        } else {
            try LUTKernelAVX2.multiply(LUTKernelAVX512.self, layout, rows: rows, cols: cols, groupSize: groupSize, x: x,
                                       n: n, y: y)
        }
    }
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
