#if canImport(Glibc)
import Glibc
#endif

/// Activation-aware scaling before quantization (the idea of AWQ): input channels that carry
/// large activations matter more, so column c of W is multiplied by sᶜ before rounding and the
/// activations are divided by sᶜ at run time: y = Q(W·diag(s))·(x / s). Salient columns get a
/// finer share of each group's grid.
///
/// s = (mean |x_c|)^α, normalized to geometric mean 1, with α chosen from 0, 0.1, …, 1 by the
/// output error on the calibration activations in its diagonal form,
///   Σ_c E[x_c²] · Σ_r (W_rc − Q(W·diag(s))_rc / s_c)²,
/// so α = 0 (plain rounding, s = 1) is among the candidates and the choice is never worse than
/// it on that measure.
public enum ActivationAwareScaling {
    public struct Statistics: Sendable {
        /// Per input channel: mean |x| and mean x² over the calibration rows.
        public let meanAbs: [Float], meanSquare: [Float]

        public init(_ x: UnsafePointer<Float>, samples: Int, cols: Int) {
            var a = [Double](repeating: 0, count: cols), q = [Double](repeating: 0, count: cols)
            for i in 0..<samples {
                for c in 0..<cols {
                    let v = Double(x[i * cols + c])
                    a[c] += abs(v)
                    q[c] += v * v
                }
            }
            let n = Double(max(samples, 1))
            meanAbs = a.map { Float($0 / n) }
            meanSquare = q.map { Float($0 / n) }
        }
    }

    public static let exponents: [Float] = (0...10).map { Float($0) / 10 }

    /// The scales s (cols values) for W (rows × cols, row-major) and the weight type, and the
    /// exponent α that gave them.
    public static func search(_ w: UnsafePointer<Float>, rows: Int, cols: Int, type: WeightType, groupSize: Int,
                              statistics: Statistics) throws -> (scales: [Float], exponent: Float) {
        try validateShape(rows: rows, cols: cols, groupSize: groupSize)
        guard !type.isMixed else {
            throw LowBitError(.unsupported, "activation-aware scaling takes integer and ternary types")
        }
        guard statistics.meanAbs.count == cols else {
            throw LowBitError(.invalidArgument,
                              "activation statistics have \(statistics.meanAbs.count) channels, the matrix \(cols)")
        }
        let floor = max(statistics.meanAbs.reduce(0, +) / Float(cols) * 1e-3, Float.leastNormalMagnitude)
        let logMean = statistics.meanAbs.map { log(Double(max($0, floor))) }
        var best: (error: Double, scales: [Float], exponent: Float) = (.infinity, [Float](repeating: 1, count: cols), 0)
        let groups = cols / groupSize
        let energy = statistics.meanSquare
        var rowErrors = [Double](repeating: 0, count: rows)
        // Geometric mean 1 keeps the scaled weights in the same range.
        let center = logMean.reduce(0, +) / Double(cols)
        for alpha in exponents {
            let s = logMean.map { Float(exp(Double(alpha) * ($0 - center))) }
            rowErrors.withUnsafeMutableBufferPointer { errors in
                parallelRanges(rows) { range in
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: groupSize) { scaled in
                        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: groupSize) { codes in
                            for r in range {
                                var error = 0.0
                                for g in 0..<groups {
                                    for k in 0..<groupSize {
                                        scaled[k] = w[r * cols + g * groupSize + k] * s[g * groupSize + k]
                                    }
                                    let (d, m) = Quantizer.quantizeGroup(UnsafeBufferPointer(scaled), type: type,
                                                                         symmetric: false, codes: codes)
                                    for k in 0..<groupSize {
                                        let c = g * groupSize + k
                                        let e = Double(w[r * cols + c]) - Double((d * Float(codes[k]) + m) / s[c])
                                        error += Double(energy[c]) * e * e
                                    }
                                }
                                errors[r] = error
                            }
                        }
                    }
                }
            }
            let error = rowErrors.reduce(0, +)
            if error < best.error { best = (error, s, alpha) }
        }
        return (best.scales, best.exponent)
    }
}
