import _Builtin_intrinsics.intel
import LowBitCore
import LowBitCPU
import LowBitPortable

/// The AVX2 tier (AVX2, FMA, F16C, BMI2, POPCNT: Intel Haswell, AMD Zen and later).
package enum AVX2Kernels: AVX2Capable {
    package static var tier: SIMDTier { .avx2 }
}

extension AVX2Capable {
    package static func note(family: String) -> String {
        switch family {
        case "lut": return "avx2 (vpshufb tables), every type and shape"
        case "bitserial": return "avx2 (nibble-vpshufb popcount at 2 and 4 activation bits, masked sums at 8)"
        case "dequant": return "avx2 int8 (vpmaddubsw, 8-row interleave, 8x4 register tile for n > 1); "
                                + "float activations: codes to floats, FMA, same layout"
        default: return "avx2"
        }
    }
}

/// A tier whose CPUs have AVX2: it runs these kernels wherever it declares none of its own.
package protocol AVX2Capable: PackedTierKernels {}

extension AVX2Capable {
    package static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        VectorsAVX2.dot(a, b, count: count)
    }

    package static func dot4(_ c: UnsafePointer<Float>, _ b: UnsafePointer<Float>, stride: Int,
                             count: Int) -> (Float, Float, Float, Float) {
        VectorsAVX2.dot4(c, b, stride: stride, count: count)
    }

    package static func range(_ a: UnsafePointer<Float>, count: Int) -> (Float, Float) {
        VectorsAVX2.range(a, count: count)
    }

    package static func ternarySums(_ w: UnsafePointer<Float>, count: Int, d: Float) -> (wt: Float, tt: Float) {
        VectorsAVX2.ternarySums(w, count: count, d: d)
    }

    package static func multiplyHalf(_ h: UnsafePointer<Float16>, _ x: UnsafePointer<Float>,
                                     into out: UnsafeMutablePointer<Float>, count: Int) {
        VectorsAVX2.multiplyHalf(h, x, into: out, count: count)
    }

    package static func multiplyAddHalf(_ h: UnsafePointer<Float16>, _ p: UnsafePointer<Float>,
                                        into y: UnsafeMutablePointer<Float>, count: Int) {
        VectorsAVX2.multiplyAddHalf(h, p, into: y, count: count)
    }

    package static func readBytes(_ p: UnsafeRawPointer, bytes: Int) -> UInt64 { VectorsAVX2.readBytes(p,
        bytes: bytes) }

    /// 32 activations per step; group sizes that are not a multiple of 32 go one at a time.
    package static func quantize(_ acts: Int8Activations, _ x: UnsafePointer<Float>,
                                 into base: UnsafeMutableRawPointer) {
        if acts.groupSize % 32 == 0 { acts.quantizeAVX2(x, into: base) } else { acts.quantizeScalar(x, into: base) }
    }

    /// 8 k-groups per step; group sizes that are not a multiple of 32 go one entry at a time.
    package static func buildTables(_ tables: LUTTables, _ x: UnsafePointer<Float>,
                                    into base: UnsafeMutableRawPointer) {
        if tables.groupSize % 32 == 0 { tables.buildAVX2(x, into: base) } else { tables.buildScalar(x, into: base) }
    }

    package static func packPanels(_ w: UnsafePointer<Float>, rows: Int, cols: Int,
                                   into p: UnsafeMutablePointer<Float>) {
        FloatPanelsAVX2.packPanels(w, rows: rows, cols: cols, into: p)
    }

    package static func panelProduct(_ p: UnsafePointer<Float>, rows: Int, cols: Int, x: UnsafePointer<Float>, n: Int,
                                     y: UnsafeMutablePointer<Float>, yStride: Int) {
        FloatPanelsAVX2.panelProduct(p, rows: rows, cols: cols, x: x, n: n, y: y, yStride: yStride)
    }

    package static func addSignedRow(_ signs: LUTLayout, row: Int, u: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                     k: Int, cols: Int, into w: UnsafeMutablePointer<Float>) {
        SignedRowsAVX2.addSignedRow(signs, row: row, u: u, v: v, k: k, cols: cols, into: w)
    }

    /// Heads of a multiple of 8 floats on 8 lanes; others as the portable tier.
    package static func attend(_ q: UnsafePointer<Float>, queries: Int, keys: UnsafePointer<Float16>,
                               values: UnsafePointer<Float16>, stride: Int, length: Int, dim: Int, scale: Float,
                               scores: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        guard dim % 8 == 0 else {
            return PortableKernels.attend(q, queries: queries, keys: keys, values: values, stride: stride,
                                          length: length,
                                          dim: dim, scale: scale, scores: scores, into: out)
        }
        AttentionAVX2.attend(q, queries: queries, keys: keys, values: values, stride: stride, length: length, dim: dim,
                             scale: scale, scores: scores, into: out)
    }

    /// 8 at a time by `vcvtps2ph`, which rounds as the portable tier's `Float16(x)` does.
    package static func halves(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float16>, count: Int) {
        let low = _mm256_set1_ps(-HalfFloats.largest), high = _mm256_set1_ps(HalfFloats.largest)
        var i = 0
        while i + 8 <= count {
            // max(low, x) and min(high, ·) return x when it is NaN (their second operand), as
            // `HalfFloats.saturated` keeps it.
            let v = _mm256_min_ps(high, _mm256_max_ps(low, _mm256_loadu_ps(x + i)))
            _mm_storeu_si128(UnsafeMutableRawPointer(out + i).assumingMemoryBound(to: __m128i.self),
                             lowbit_halves8(v))
            i += 8
        }
        while i < count { out[i] = Float16(HalfFloats.saturated(x[i])); i += 1 }
    }

    /// 8 at a time with `ExponentialAVX2.exp8`.
    package static func swiGLU(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        let one = _mm256_set1_ps(1)
        var i = 0
        while i + 8 <= count {
            let g = _mm256_loadu_ps(gate + i)
            let e = ExponentialAVX2.exp8(_mm256_sub_ps(_mm256_setzero_ps(), g))
            _mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)))
            i += 8
        }
        PortableKernels.swiGLU(gate + i, up + i, count: count - i)
    }

    package static func q8_0Rows(_ m: GroupedBlockMatrix, x: UnsafePointer<Float>, n: Int,
                                 y: UnsafeMutablePointer<Float>, range: Range<Int>) {
        Q8_0AVX2.rows(m, x: x, n: n, y: y, range: range)
    }

    package static func groupedBlockWeights(_ type: GroupedBlockType, _ blocks: UnsafeRawPointer, count: Int,
                                            stride: Int, into out: UnsafeMutablePointer<Float>) {
        GroupedBlocksAVX2.weights(type, blocks, count: count, stride: stride, into: out)
    }

    package static func groupedBlockRows(_ m: GroupedBlockMatrix, acts: Int8Activations,
                                         actBase: UnsafeMutableRawPointer, actStride: Int, n: Int,
                                         y: UnsafeMutablePointer<Float>, range: Range<Int>) {
        GroupedBlocksAVX2.rows(m, acts: acts, actBase: actBase, actStride: actStride, n: n, y: y, range: range)
    }

    package static func lutMultiply(_ layout: LUTLayout, rows: Int, cols: Int, groupSize: Int, x: UnsafePointer<Float>,
                                    n: Int, y: UnsafeMutablePointer<Float>) throws {
        try LUTKernelAVX2.multiply(LUTKernelAVX2.self, layout, rows: rows, cols: cols, groupSize: groupSize, x: x, n: n,
                                   y: y)
    }

    package static func signProduct(_ layout: LUTLayout, groupSize: Int, rows: Int, n: Int, tables: LUTTables,
                                    tableBase: UnsafeMutableRawPointer, tableStride: Int,
                                    y: UnsafeMutablePointer<Float>, rowBlocks: Range<Int>) {
        let tiles = LUTKernelAVX2.tiles(n: n)
        let items = (rowBlocks.lowerBound * tiles)..<(rowBlocks.upperBound * tiles)
        LUTKernelAVX2.run(layout, groupSize: groupSize, rows: rows, n: n, tables: tables, tableBase: tableBase,
                          tableStride: tableStride, y: y, items: items)
    }

    package static func dequantMultiply(_ layout: DequantLayout, rows: Int, cols: Int, groupSize: Int,
                                        x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>,
                                        floatActivations: Bool) throws {
        if floatActivations {
            try DequantFloatKernelAVX2.multiply(layout, rows: rows, cols: cols, groupSize: groupSize, x: x, n: n, y: y)
        } else {
            try DequantKernelAVX2.multiply(layout, rows: rows, cols: cols, groupSize: groupSize, x: x, n: n, y: y)
        }
    }

    package static func bitSerialMultiply(_ layout: BitSerialLayout, groupSize: Int, acts: BitSerialActivations,
                                          x: UnsafePointer<Float>, n: Int, rows: Int,
                                          workspace: UnsafeMutableRawPointer, rowBytes: Int,
                                          y: UnsafeMutablePointer<Float>) {
        for i in 0..<n { BitSerialKernelAVX2.prepare(acts, x + i * acts.cols, into: workspace + i * rowBytes) }
        parallelRanges(rows) { range in
            BitSerialKernelAVX2.run(layout, groupSize: groupSize, acts: acts, n: n, rows: rows, actBase: workspace,
                                    actStride: rowBytes, y: y, rowRange: range)
        }
    }
}
