import LowBitCore

/// The portable tier: plain Swift for the baseline of every architecture, written to read as the
/// math. Every other tier is tested against these loops, and runs them where it has nothing faster.
package enum PortableKernels: TierKernels {
    package static var tier: SIMDTier { .portable }

    package static func note(family: String) -> String {
        switch family {
        case "lut": return "portable scalar lookups on the canonical codes (slow path)"
        case "bitserial": return "portable 64-bit popcount words, activations 2, 4 or 8 bits"
        case "dequant": return "portable int8, codes unpacked per group; float activations the same way"
        default: return "portable"
        }
    }

    /// Σ a[i]·b[i] for i < count.
    package static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        var i = 0, sum: Float = 0
        while i < count { sum += a[i] * b[i]; i += 1 }
        return sum
    }

    /// The four sums Σ c[i]·bⱼ[i] (j = 0…3) for i < count, where bⱼ = b + j·stride: c is read
    /// once for all four.
    package static func dot4(_ c: UnsafePointer<Float>, _ b: UnsafePointer<Float>, stride: Int, count: Int) -> (Float,
        Float, Float, Float) {
        var i = 0
        var r: (Float, Float, Float, Float) = (0, 0, 0, 0)
        while i < count {
            let v = c[i]
            r.0 += v * b[i]; r.1 += v * b[stride + i]; r.2 += v * b[2 * stride + i]; r.3 += v * b[3 * stride + i]
            i += 1
        }
        return r
    }

    /// (min, max) of count ≥ 1 finite values.
    package static func range(_ a: UnsafePointer<Float>, count: Int) -> (Float, Float) {
        var i = 0, lo = a[0], hi = a[0]
        while i < count { lo = min(lo, a[i]); hi = max(hi, a[i]); i += 1 }
        return (lo, hi)
    }

    /// Σw·t and Σt² over the ternary values t = q − 1 that `Quantizer.assign` gives w for
    /// (d, m = −d, levels 2), without storing the codes.
    package static func ternarySums(_ w: UnsafePointer<Float>, count: Int, d: Float) -> (wt: Float, tt: Float) {
        let inverse: Float = d != 0 ? 1 / d : 0
        var i = 0, wt: Float = 0, tt: Float = 0
        while i < count {
            let t = ternaryValue(w[i], d: d, inverse: inverse)
            wt += w[i] * t; tt += t * t
            i += 1
        }
        return (wt, tt)
    }

    /// out[i] = h[i] · x[i]
    package static func multiplyHalf(_ h: UnsafePointer<Float16>, _ x: UnsafePointer<Float>,
                                     into out: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i < count { out[i] = Float(h[i]) * x[i]; i += 1 }
    }

    /// y[i] += h[i] · p[i]
    package static func multiplyAddHalf(_ h: UnsafePointer<Float16>, _ p: UnsafePointer<Float>,
                                        into y: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i < count { y[i] += Float(h[i]) * p[i]; i += 1 }
    }

    package static func readBytes(_ p: UnsafeRawPointer, bytes: Int) -> UInt64 {
        var a = SIMD4<UInt64>(), b = a
        var i = 0
        while i + 64 <= bytes {
            a ^= p.loadUnaligned(fromByteOffset: i, as: SIMD4<UInt64>.self)
            b ^= p.loadUnaligned(fromByteOffset: i + 32, as: SIMD4<UInt64>.self)
            i += 64
        }
        while i + 32 <= bytes { a ^= p.loadUnaligned(fromByteOffset: i, as: SIMD4<UInt64>.self); i += 32 }
        let v = a ^ b
        return v[0] ^ v[1] ^ v[2] ^ v[3]
    }

    /// The ternary value t = q − 1 of w, q the code `Quantizer.code` gives it for (d, m = −d,
    /// levels 2): the same rounding, so `ternarySums` agrees with the codes at every tier.
    @inline(__always)
    package static func ternaryValue(_ w: Float, d: Float, inverse: Float) -> Float {
        let v = min(max((w + d) * inverse, 0), 2)
        return Float(UInt8(truncatingIfNeeded: (v + 0x1p23).bitPattern)) - 1
    }

    package static func quantize(_ acts: Int8Activations, _ x: UnsafePointer<Float>,
                                 into base: UnsafeMutableRawPointer) {
        acts.quantizeScalar(x, into: base)
    }

    package static func buildTables(_ tables: LUTTables, _ x: UnsafePointer<Float>,
                                    into base: UnsafeMutableRawPointer) {
        tables.buildScalar(x, into: base)
    }

    package static func addSignedRow(_ signs: LUTLayout, row: Int, u: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                     k: Int, cols: Int, into w: UnsafeMutablePointer<Float>) {
        for c in 0..<cols {
            var uv: Float = 0
            for j in 0..<k { uv += u[j] * v[j * cols + c] }
            w[c] += signs.signOctet(row: row, octet: c / 8) >> (c % 8) & 1 == 1 ? uv : -uv
        }
    }
}
