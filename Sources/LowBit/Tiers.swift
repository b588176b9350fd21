@_exported import LowBitCore
import LowBitAVX2
import LowBitAVX512
import LowBitPortable

/// The SIMD tiers this library carries, lowest first, and the one in use: the best the CPU runs
/// (`SIMDTier.supported`), or a lower one forced through `LOWBIT_SIMD` or `Runtime.setSIMDTier`.
/// Every loop that depends on the instruction set is reached through `active` (or `packed`), so
/// that nothing outside the tier targets executes an instruction the baseline lacks.
package enum Tiers {
    static let all: [any TierKernels.Type] = [PortableKernels.self, AVX2Kernels.self, AVX512Kernels.self]

    /// The kernels of `Runtime.simdTier`.
    package static var active: any TierKernels.Type {
        let tier = Runtime.simdTier
        return all.first { $0.tier == tier } ?? PortableKernels.self
    }

    /// The active tier's packed-layout kernels, or nil on the portable tier.
    package static var packed: (any PackedTierKernels.Type)? { active as? any PackedTierKernels.Type }

    /// The packed-layout kernels of the best tier this CPU runs, whichever is active.
    package static let bestPacked: (any PackedTierKernels.Type)? = all.last {
        SIMDTier.supported.contains($0.tier)
    } as? any PackedTierKernels.Type
}

/// Float dot products and scans for the quantizers' linear algebra (error feedback's input
/// correlations, its Cholesky factor and its rounding pass) and BitStack.
enum FloatVectors {
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        Tiers.active.dot(a, b, count: count)
    }

    /// The four sums Σ c[i]·bⱼ[i] (j = 0…3) for i < count, where bⱼ = b + j·stride: c is read
    /// once for all four.
    static func dot4(_ c: UnsafePointer<Float>, _ b: UnsafePointer<Float>, stride: Int,
                     count: Int) -> (Float, Float, Float, Float) {
        Tiers.active.dot4(c, b, stride: stride, count: count)
    }

    static func range(_ a: UnsafePointer<Float>, count: Int) -> (Float, Float) { Tiers.active.range(a, count: count) }

    static func ternarySums(_ w: UnsafePointer<Float>, count: Int, d: Float) -> (wt: Float, tt: Float) {
        Tiers.active.ternarySums(w, count: count, d: d)
    }

    /// The index of the first value of magnitude 2^exponent or more (NaN and infinities
    /// included), or nil. Like `firstNonFinite`, a vectorizing maximum first.
    static func firstAtLeast(_ a: UnsafePointer<Float>, count: Int, exponent: Int) -> Int? {
        let limit = UInt32(127 + exponent) << 23
        var worst: UInt32 = 0
        for i in 0..<count { worst = max(worst, a[i].bitPattern & 0x7fff_ffff) }
        guard worst >= limit else { return nil }
        return (0..<count).first { a[$0].bitPattern & 0x7fff_ffff >= limit }
    }

    /// The index of the first value that is NaN or infinite, or nil. The scan is a maximum over
    /// exponent bits, which vectorizes at the baseline; only an array that fails it is searched again.
    static func firstNonFinite(_ a: UnsafePointer<Float>, count: Int) -> Int? {
        var worst: UInt32 = 0
        for i in 0..<count { worst = max(worst, a[i].bitPattern & 0x7f80_0000) }
        guard worst == 0x7f80_0000 else { return nil }
        return (0..<count).first { !a[$0].isFinite }
    }
}

/// Float16 × Float vectors for the BitStack product (its factors stay Float16 in memory).
enum HalfVectors {
    /// out[i] = h[i] · x[i]
    static func multiply(_ h: UnsafePointer<Float16>, _ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                         count: Int) {
        Tiers.active.multiplyHalf(h, x, into: out, count: count)
    }

    /// y[i] += h[i] · p[i]
    static func multiplyAdd(_ h: UnsafePointer<Float16>, _ p: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                            count: Int) {
        Tiers.active.multiplyAddHalf(h, p, into: y, count: count)
    }
}

extension FloatTile {
    /// w (rows × cols, row-major) as panels of 16 rows, each column-major (its 16 rows' values of
    /// column c at 16·c), the last panel padded with zero rows: the layout `product` reads
    /// one column of 16 rows at a time from, with no horizontal sums.
    public static func pack(_ w: UnsafePointer<Float>, rows: Int, cols: Int, into p: UnsafeMutablePointer<Float>) {
        Tiers.active.packPanels(w, rows: rows, cols: cols, into: p)
    }

    /// y[i·yStride + r] = Σ_c W[r, c]·x[i·cols + c] for r < rows and i < n, on the calling thread,
    /// from W's panels (`pack`) at p. Per panel and group of up to 6 activation rows, 12
    /// accumulators (16 rows × 6 activation rows) take one column at a time: 2 weight loads and
    /// 6 broadcasts feed 12 FMAs. Activation rows in blocks that stay in L2 while the panels pass.
    public static func product(_ p: UnsafePointer<Float>, rows: Int, cols: Int, x: UnsafePointer<Float>, n: Int,
                               y: UnsafeMutablePointer<Float>, yStride: Int) {
        Tiers.active.panelProduct(p, rows: rows, cols: cols, x: x, n: n, y: y, yStride: yStride)
    }
}

extension Int8Activations {
    /// qa = clamp(round-half-even(x / sa), ±(2^(A−1) − 1)): the same bytes at every tier as
    /// `quantizeScalar` (tests compare them).
    public func quantize(_ x: UnsafePointer<Float>, into base: UnsafeMutableRawPointer) {
        Tiers.active.quantize(self, x, into: base)
    }
}

extension LUTTables {
    /// Builds the tables of activation row `x` at `base`: the same bytes at every tier as
    /// `buildScalar` (tests compare them).
    public func build(_ x: UnsafePointer<Float>, into base: UnsafeMutableRawPointer) {
        Tiers.active.buildTables(self, x, into: base)
    }
}
