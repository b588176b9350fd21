/// Round-to-nearest group quantization of float weights.
///
/// Each group of G weights gets its own (d, m) from its full range (min-max, or abs-max when
/// symmetric): ranges are never clipped. Clipping to the range of least squared error looks
/// better on weight error but cost SmolLM2 dearly (3-bit g64 perplexity 1572 against 227 for
/// plain min-max, 4-bit 29.7 against 25.4): outlier weights matter more than their share of
/// the error. At 1 and 2 bits, where the extreme levels alone are a poor fit, (d, m) is then
/// refitted by least squares for the codes the range gave.
///
/// d and m are rounded to Float16 (where they are in its normal range) before the codes are
/// assigned, as GGUF stores them: kernel layouts then hold them in half the bytes, exactly.
public enum Quantizer {
    static let ternaryScales: [Float] = [0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.35, 1.5]

    public static func quantize(_ w: UnsafePointer<Float>, rows: Int, cols: Int, type: WeightType,
                                groupSize: Int, symmetric: Bool) throws -> QuantizedMatrix {
        try validateShape(rows: rows, cols: cols, groupSize: groupSize)
        try checkWeights(w, rows: rows, cols: cols)
        let m = try QuantizedMatrix(rows: rows, cols: cols, groupSize: groupSize, type: type,
                                    symmetric: (symmetric && !type.isMixed) || type == .ternary)
        fill(m, rows: 0..<rows, from: w, type: type, symmetric: symmetric)
        return m
    }

    /// `quantize` of weights that arrive a few rows at a time: `rowsOf(range, out)` writes rows
    /// `range` (at most `chunkRows` of them, range.count × cols floats) to out. A large tensor (a
    /// model's output projection is 113 MB of Float32) then never exists whole in floats.
    public static func quantize(rows: Int, cols: Int, type: WeightType, groupSize: Int, symmetric: Bool,
                                chunkRows: Int, scratch: UnsafeMutablePointer<Float>,
                                rowsOf: (Range<Int>, UnsafeMutablePointer<Float>) throws -> Void) throws
        -> QuantizedMatrix {
        try validateShape(rows: rows, cols: cols, groupSize: groupSize)
        guard chunkRows > 0 else { throw LowBitError(.invalidArgument, "chunks of \(chunkRows) rows") }
        let m = try QuantizedMatrix(rows: rows, cols: cols, groupSize: groupSize, type: type,
                                    symmetric: (symmetric && !type.isMixed) || type == .ternary)
        for first in stride(from: 0, to: rows, by: chunkRows) {
            let range = first..<min(rows, first + chunkRows)
            try rowsOf(range, scratch)
            try checkWeights(scratch, rows: range.count, cols: cols, firstRow: first)
            fill(m, rows: range, from: scratch, type: type, symmetric: symmetric)
        }
        return m
    }

    /// Groups of rows `rows` of m from their weights at w (rows.count × cols floats).
    private static func fill(_ m: QuantizedMatrix, rows: Range<Int>, from w: UnsafePointer<Float>, type: WeightType,
                             symmetric: Bool) {
        let groupSize = m.groupSize, cols = m.cols, groups = cols / groupSize
        parallelFor(rows.count) { i in
            let r = rows.lowerBound + i
            var q = [UInt8](repeating: 0, count: groupSize), trial = q
            for g in 0..<groups {
                let values = UnsafeBufferPointer(start: w + i * cols + g * groupSize, count: groupSize)
                let (d, off) = q.withUnsafeMutableBufferPointer { codes in
                    guard case .mixed(let bits) = type else {
                        return quantizeGroup(values, type: type, symmetric: symmetric, codes: codes)
                    }
                    let (d, off, groupType) = trial.withUnsafeMutableBufferPointer {
                        quantizeMixedGroup(values, bits: bits, codes: codes, trial: $0)
                    }
                    m.groupTypes!.bytes()[r * groups + g] = groupType.rawValue
                    return (d, off)
                }
                m.scales.floats()[r * groups + g] = d
                m.offsets.floats()[r * groups + g] = off
                q.withUnsafeBufferPointer { m.setGroupCodes($0.baseAddress!, row: r, group: g) }
            }
        }
    }

    /// Weights quantizers take have magnitudes below 2^60: a group's range, its sum and its
    /// sum of squares (128 weights of up to 2^60 square to under 2^127) then stay finite in
    /// Float32, so every group parameter is finite and the matrix saves and loads.
    public static let weightMagnitudeExponent = 60

    /// Throws for a weight that is not finite or not below 2^`weightMagnitudeExponent` in magnitude.
    /// `firstRow`: the matrix row of w's first row, for the message.
    public static func checkWeights(_ w: UnsafePointer<Float>, rows: Int, cols: Int, name: String? = nil,
                                    firstRow: Int = 0) throws {
        let count = try checkedProduct(rows, cols, what: "weights")
        guard let i = FloatVectors.firstAtLeast(w, count: count, exponent: weightMagnitudeExponent) else { return }
        let which = "weight [\(firstRow + i / cols), \(i % cols)]" + (name.map { " of '\($0)'" } ?? "")
        throw LowBitError(.invalidArgument, w[i].isFinite
            ? "\(which) is \(w[i]): weights must be below 2^\(weightMagnitudeExponent) in magnitude"
            : "\(which) is \(w[i]): weights must be finite")
    }

    /// Quantizes one group: writes codes, returns (d, m) with w ≈ d·q + m.
    public static func quantizeGroup(_ w: UnsafeBufferPointer<Float>, type: WeightType, symmetric: Bool,
                                     codes: UnsafeMutableBufferPointer<UInt8>) -> (Float, Float) {
        switch type {
        case .ternary: return fitTernary(w, codes: codes)
        case .integer(let bits), .mixed(let bits):  // mixed groups go through quantizeMixedGroup
            return symmetric ? fitSymmetric(w, levels: (1 << bits) - 1, codes: codes)
                             : fitAsymmetric(w, levels: (1 << bits) - 1, codes: codes)
        }
    }

    /// Codes for given (d, m): q = clamp(round-half-even((w − m) / d), 0, levels), 0 where d = 0.
    static func assign(_ w: UnsafeBufferPointer<Float>, d: Float, m: Float, levels: Int,
                       codes: UnsafeMutableBufferPointer<UInt8>) {
        let inv: Float = d != 0 ? 1 / d : 0
        for i in 0..<w.count { codes[i] = code(w[i], inverse: inv, m: m, levels: levels) }
    }

    /// One weight's code, as `assign` gives it: `inverse` is 1/d, or 0 where d = 0.
    @inline(__always)
    static func code(_ w: Float, inverse: Float, m: Float, levels: Int) -> UInt8 {
        // Adding 2²³ rounds a value in [0, 2²²) half-to-even to an integer, which lands in the
        // low mantissa bits: no checked conversion, so a loop of these vectorizes.
        let v = min(max((w - m) * inverse, 0), Float(levels))
        return UInt8(truncatingIfNeeded: (v + 0x1p23).bitPattern)
    }

    /// Σ (w − (d·v(q) + m))² for these codes, v(q) = q unless a mixed type's grid says otherwise.
    static func squaredError(_ w: UnsafeBufferPointer<Float>, codes: UnsafeMutableBufferPointer<UInt8>,
                             d: Float, m: Float, value: (Int) -> Float = { Float($0) }) -> Float {
        var err: Float = 0
        for i in 0..<w.count {
            let e = w[i] - (d * value(Int(codes[i])) + m)
            err += e * e
        }
        return err
    }

    /// x rounded to the nearest Float16 when that keeps Float16's full precision (normal
    /// magnitudes); else x itself (its matrix's layouts then keep Float32 parameters).
    static func toHalf(_ x: Float) -> Float {
        let magnitude = abs(x)
        guard magnitude >= 0x1p-14, magnitude <= 65504 else { return x }  // Float16's normal magnitudes
        return Float(Float16(x))
    }

    /// Least-squares refits apply at 1 and 2 bits only (see the type's comment).
    static func refits(_ levels: Int) -> Bool { levels <= 3 }

    static func fitAsymmetric(_ w: UnsafeBufferPointer<Float>, levels: Int,
                              codes: UnsafeMutableBufferPointer<UInt8>) -> (Float, Float) {
        let (lo, hi) = FloatVectors.range(w.baseAddress!, count: w.count)
        if hi == lo { assign(w, d: 0, m: toHalf(lo), levels: levels, codes: codes); return (0, toHalf(lo)) }
        var d = toHalf((hi - lo) / Float(levels)), m = toHalf(lo)
        assign(w, d: d, m: m, levels: levels, codes: codes)
        if refits(levels) {
            // (d, m) minimizing Σ(w − d·q − m)² for these codes: [Σq² Σq; Σq n]·[d; m] = [Σwq; Σw].
            var sqq: Double = 0, sq: Double = 0, swq: Double = 0, sw: Double = 0
            for i in 0..<w.count {
                let q = Double(codes[i]), x = Double(w[i])
                sqq += q * q; sq += q; swq += x * q; sw += x
            }
            let n = Double(w.count), det = sqq * n - sq * sq
            if det > 1e-12 * max(sqq * n, 1) {
                let dd = (swq * n - sq * sw) / det, mm = (sqq * sw - sq * swq) / det
                if dd > 0 {
                    (d, m) = (toHalf(Float(dd)), toHalf(Float(mm)))
                    assign(w, d: d, m: m, levels: levels, codes: codes)
                }
            }
        }
        return (d, m)
    }

    static func fitSymmetric(_ w: UnsafeBufferPointer<Float>, levels: Int,
                             codes: UnsafeMutableBufferPointer<UInt8>) -> (Float, Float) {
        let center = Float(levels) / 2
        let (lo, hi) = FloatVectors.range(w.baseAddress!, count: w.count)
        let amax = max(-lo, hi)
        if amax == 0 { assign(w, d: 0, m: 0, levels: levels, codes: codes); return (0, 0) }
        var d = toHalf(amax / center)
        assign(w, d: d, m: -d * center, levels: levels, codes: codes)
        if refits(levels) {
            // d minimizing Σ(w − d·l)² for these codes: d = Σ w·l / Σ l², with l = q − center.
            var swl: Double = 0, sll: Double = 0
            for i in 0..<w.count {
                let l = Double(codes[i]) - Double(center)
                swl += Double(w[i]) * l; sll += l * l
            }
            if sll > 0, swl > 0 {
                d = toHalf(Float(swl / sll))
                assign(w, d: d, m: -d * center, levels: levels, codes: codes)
            }
        }
        return (d, -d * center)
    }

    /// BitNet b1.58 style: d near mean |w|, t = clamp(round(w / d), −1, 1); q = t + 1, m = −d.
    static func fitTernary(_ w: UnsafeBufferPointer<Float>, codes: UnsafeMutableBufferPointer<UInt8>) -> (Float,
                                                                                                          Float) {
        let meanAbs = w.reduce(0) { $0 + abs($1) } / Float(w.count)
        if meanAbs == 0 { assign(w, d: 0, m: 0, levels: 2, codes: codes); return (0, 0) }
        var best: (err: Float, d: Float) = (.infinity, meanAbs)
        // Per candidate d₀, the codes t = q − 1 that `assign` gives for it, then the d that fits
        // them best, d = Σw·t / Σt², whose error is Σw² − (Σw·t)² / Σt². The codes are assigned
        // again for the chosen d at the end, which can only lower that error.
        let ww = FloatVectors.dot(w.baseAddress!, w.baseAddress!, count: w.count)
        for factor in ternaryScales {
            let d0 = meanAbs * factor
            let (wt, tt) = FloatVectors.ternarySums(w.baseAddress!, count: w.count, d: d0)
            let (d, err) = tt > 0 && wt > 0 ? (wt / tt, ww - wt * wt / tt) : (d0, ww - 2 * d0 * wt + d0 * d0 * tt)
            if err < best.err { best = (err, d) }
        }
        let d = toHalf(best.d)
        assign(w, d: d, m: -d, levels: 2, codes: codes)
        return (d, -d)
    }
}
