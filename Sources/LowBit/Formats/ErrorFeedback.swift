#if canImport(Glibc)
import Glibc
#endif

/// Rounding with error feedback (the idea of GPTQ): a weight's rounding error is made up by the
/// weights of its row that are not rounded yet, as far as their inputs correlate on calibration
/// activations. The output error ‖(w − q)·X‖² is what stays small, not the weight error.
///
/// Let H = XᵀX / n + λ·mean(diag H)·I be the inputs' damped second moment, written H = U·Uᵀ with
/// U upper triangular (the Cholesky factor of H with its index order reversed). With δ = w − q,
///   δᵀHδ = Σᵢ (Σ_{k≤i} U_ki·δ_k)²,
/// and rounding the columns in order, each one to
///   qᵢ = round(wᵢ + Σ_{k<i} (U_ki / U_ii)·δ_k),
/// makes each term as small as the grid allows. This is GPTQ's sequential update (the optimal
/// change of all later weights, taken at the next one) without forming H⁻¹: H_rr⁻¹·H_rf = U_rr⁻ᵀ·U_frᵀ,
/// whose first row is (U_ki / U_ii)_k. The test suite checks it against the update in that form.
///
/// Columns are rounded in order of falling input energy E[x²] (GPTQ's "act order"): the
/// weights that matter most are rounded first, while the most weights are left to absorb their
/// error. Group parameters (d, m) come from each group's own weights before any feedback (GPTQ's
/// "static groups", which is what lets the order cross groups): every group keeps its full
/// range, and a weight pushed past it is clamped.
public enum ErrorFeedback {
    /// GPTQ's default: 1% of the mean input energy on the diagonal keeps H well conditioned
    /// when there are fewer calibration rows than inputs.
    public static let defaultDampening: Float = 0.01

    /// The rounding order and coefficients for one set of inputs: position p rounds column
    /// order[p]; C_pk = U_kp / U_pp (k < p), row-major, with H taken in that order.
    public struct Coefficients: Sendable {
        public let cols: Int
        public let order: [Int]
        let c: [Float]

        /// The coefficients after the inputs are divided by s (weights multiplied by s, as
        /// activation-aware scaling does): U becomes diag(1/s)·U, so C_ik becomes C_ik·sᵢ/s_k.
        /// The rounding order stays that of the unscaled inputs' energies.
        public func rescaled(by s: [Float]) throws -> Coefficients {
            guard s.count == cols else {
                throw LowBitError(.invalidArgument, "\(s.count) input scales for \(cols) inputs")
            }
            guard s.allSatisfy({ $0 > 0 && $0.isFinite }) else {
                throw LowBitError(.invalidArgument, "input scales must be positive and finite")
            }
            var out = c
            for p in 0..<cols { for k in 0..<p { out[p * cols + k] *= s[order[p]] / s[order[k]] } }
            return Coefficients(cols: cols, order: order, c: out)
        }
    }

    /// The coefficients for inputs x (samples × cols, row-major); `order` overrides the rounding
    /// order (tests).
    public static func coefficients(inputs x: UnsafePointer<Float>, samples: Int, cols: Int,
                                    dampening: Float = defaultDampening,
                                    order given: [Int]? = nil) throws -> Coefficients {
        guard samples > 0, cols > 0 else {
            throw LowBitError(.invalidArgument, "error feedback needs calibration rows (\(samples) × \(cols))")
        }
        guard dampening >= 0, dampening.isFinite else {
            throw LowBitError(.invalidArgument, "dampening \(dampening) must be ≥ 0")
        }
        let n = cols
        let count = try checkedProduct(samples, cols, what: "calibration inputs")
        if let i = FloatVectors.firstNonFinite(x, count: count) {
            throw LowBitError(.invalidArgument,
                              "calibration input [\(i / cols), \(i % cols)] is \(x[i]): inputs must be finite")
        }
        var energy = [Float](repeating: 0, count: n)
        for s in 0..<samples { for i in 0..<n { energy[i] += x[s * n + i] * x[s * n + i] } }
        let order = given ?? (0..<n).sorted { energy[$0] > energy[$1] || (energy[$0] == energy[$1] && $0 < $1) }
        guard order.count == n, Set(order).count == n, order.allSatisfy({ (0..<n).contains($0) }) else {
            throw LowBitError(.invalidArgument, "a rounding order must list each of the \(n) columns once")
        }
        // H in rounding order, reversed (a = JHJ, its lower Cholesky factor L): U = J·L·J. The
        // inputs are transposed into that order first, so each entry is one contiguous dot product.
        var columns = [Float](repeating: 0, count: n * samples)
        for s in 0..<samples { for p in 0..<n { columns[(n - 1 - p) * samples + s] = x[s * n + order[p]] } }
        var a = [Float](repeating: 0, count: n * n)
        columns.withUnsafeBufferPointer { xt in
            a.withUnsafeMutableBufferPointer { a in
                let xt = xt.baseAddress!, a = a.baseAddress!, scale = 1 / Float(samples)
                // Four rows of H at a time: each input column j is read once for all four.
                func rows(_ block: Int) {
                    let i = 4 * block, height = min(4, n - i)
                    for j in 0..<(i + height) {
                        let column = xt + j * samples
                        let sums = height == 4 ? FloatVectors.dot4(column, xt + i * samples, stride: samples,
                                                                   count: samples)
                            : (FloatVectors.dot(column, xt + i * samples, count: samples),
                               height > 1 ? FloatVectors.dot(column, xt + (i + 1) * samples, count: samples) : 0,
                               height > 2 ? FloatVectors.dot(column, xt + (i + 2) * samples, count: samples) : 0, 0)
                        if j <= i { a[i * n + j] = sums.0 * scale }
                        if j <= i + 1, height > 1 { a[(i + 1) * n + j] = sums.1 * scale }
                        if j <= i + 2, height > 2 { a[(i + 2) * n + j] = sums.2 * scale }
                        if height > 3 { a[(i + 3) * n + j] = sums.3 * scale }
                    }
                }
                // Block b costs about b units: pairing the first and last blocks evens the threads' work.
                let blocks = (n + 3) / 4
                parallelFor((blocks + 1) / 2) { p in
                    rows(p)
                    if blocks - 1 - p != p { rows(blocks - 1 - p) }
                }
            }
        }
        var meanDiagonal: Float = 0
        for i in 0..<n { meanDiagonal += a[i * n + i] }
        meanDiagonal /= Float(n)
        let damp = meanDiagonal > 0 ? dampening * meanDiagonal : 1
        for i in 0..<n {
            // An input that is always zero: its weights cannot matter, any positive entry will do.
            if a[i * n + i] == 0 { a[i * n + i] = 1 }
            a[i * n + i] += damp
        }
        try choleskyInPlace(&a, n: n)
        // C_ik = U_ki / U_ii with U_ki = L[n−1−k][n−1−i].
        var c = [Float](repeating: 0, count: n * n)
        for i in 0..<n {
            let ri = n - 1 - i, diagonal = a[ri * n + ri]
            for k in 0..<i { c[i * n + k] = a[(n - 1 - k) * n + ri] / diagonal }
        }
        return Coefficients(cols: n, order: order, c: c)
    }

    /// Lower Cholesky factor of the symmetric matrix in a's lower triangle, in place, column by
    /// column; each column's entries below the diagonal are independent, so threads share them.
    static func choleskyInPlace(_ a: inout [Float], n: Int) throws {
        var failed = false
        a.withUnsafeMutableBufferPointer { a in
            let a = a.baseAddress!
            for j in 0..<n {
                let rj = a + j * n
                let pivot = rj[j] - FloatVectors.dot(rj, rj, count: j)
                guard pivot > 0, pivot.isFinite else { failed = true; return }
                let diagonal = pivot.squareRoot()
                rj[j] = diagonal
                let below = n - 1 - j
                let fill: (Range<Int>) -> Void = { range in
                    for i in range {
                        let ri = a + (j + 1 + i) * n
                        ri[j] = (ri[j] - FloatVectors.dot(ri, rj, count: j)) / diagonal
                    }
                }
                if below * j >= 32_768 { parallelRanges(below, fill) } else { fill(0..<below) }
            }
        }
        if failed {
            throw LowBitError(.invalidArgument, "calibration inputs are not positive definite even after dampening")
        }
    }

    /// Quantizes w (rows × cols, row-major) as `Quantizer.quantize` does, with error feedback
    /// along each row. Integer and ternary types (the mixed types' grids are not uniform).
    public static func quantize(_ w: UnsafePointer<Float>, rows: Int, cols: Int, type: WeightType, groupSize: Int,
                                symmetric: Bool, coefficients: Coefficients) throws -> QuantizedMatrix {
        try validateShape(rows: rows, cols: cols, groupSize: groupSize)
        guard !type.isMixed else { throw LowBitError(.unsupported, "error feedback takes integer and ternary types") }
        guard coefficients.cols == cols else {
            throw LowBitError(.invalidArgument,
                              "error feedback coefficients are for \(coefficients.cols) inputs, the matrix has \(cols)")
        }
        try Quantizer.checkWeights(w, rows: rows, cols: cols)
        let symmetric = symmetric || type == .ternary
        let m = try QuantizedMatrix(rows: rows, cols: cols, groupSize: groupSize, type: type, symmetric: symmetric)
        let levels = type == .ternary ? 2 : (1 << type.storageBits) - 1
        let groups = cols / groupSize
        // Static groups: every group's (d, m) from its weights as they are.
        parallelRanges(rows) { range in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: groupSize) { codes in
                for r in range {
                    for g in 0..<groups {
                        let (d,
                             off) = Quantizer.quantizeGroup(UnsafeBufferPointer(start: w + r * cols + g * groupSize,
                                                                                count: groupSize),
                                                               type: type, symmetric: symmetric, codes: codes)
                        m.scales.floats()[r * groups + g] = d
                        m.offsets.floats()[r * groups + g] = off
                    }
                }
            }
        }
        let scales = m.scales.floats(), offsets = m.offsets.floats()
        coefficients.c.withUnsafeBufferPointer { c in
            coefficients.order.withUnsafeBufferPointer { order in
                let c = c.baseAddress!
                // Four rows at a time read each coefficient row once for all four. δ is kept in
                // rounding order (positions), codes in column order.
                parallelFor((rows + 3) / 4) { block in
                    let first = 4 * block, height = min(4, rows - first)
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: 4 * cols + 4) { scratch in
                        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 4 * cols) { codes in
                            let delta = scratch.baseAddress!, feedback = delta + 4 * cols, codes = codes.baseAddress!
                            delta.initialize(repeating: 0, count: 4 * cols)
                            for p in 0..<cols {
                                let col = order[p], g = col / groupSize
                                (feedback[0], feedback[1], feedback[2], feedback[3]) = FloatVectors.dot4(c + p * cols,
                                                                                                         delta,
                                                                                                         stride: cols,
                                                                                                         count: p)
                                for j in 0..<height {
                                    let r = first + j, d = scales[r * groups + g], off = offsets[r * groups + g]
                                    let target = w[r * cols + col] + feedback[j]
                                    let code = Quantizer.code(target, inverse: d != 0 ? 1 / d : 0, m: off,
                                                              levels: levels)
                                    codes[j * cols + col] = code
                                    delta[j * cols + p] = w[r * cols + col] - (d * Float(code) + off)
                                }
                            }
                            for j in 0..<height {
                                for g in 0..<groups {
                                    m.setGroupCodes(codes + j * cols + g * groupSize, row: first + j, group: g)
                                }
                            }
                        }
                    }
                }
            }
        }
        return m
    }
}
