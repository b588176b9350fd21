#if canImport(Glibc)
import Glibc
#endif

/// BitStack decomposition of one float matrix W (rows × cols, y = W·x).
///
/// Optional activation-aware scaling W' = W·diag(s), s_c the root-mean-square of input channel c
/// over calibration activations (identity without them). Then, from R₀ = W', for each block i:
///   Sᵢ = sign(Rᵢ) (0 → +1),  |Rᵢ| ≈ Uᵢ·Vᵢᵀ by a rank-k truncated SVD (U = U_k√Σ, V = V_k√Σ,
///   rounded to Float16 as stored),  Rᵢ₊₁ = Rᵢ − Sᵢ ⊙ (Uᵢ·Vᵢᵀ).
/// So W ≈ (Σ_{i<m} Sᵢ ⊙ Uᵢ·Vᵢᵀ)·diag(1/s) for any m ≤ n.
public struct StackBlock: Sendable {
    /// Row-major sign bits, bit c % 8 of byte r·⌈cols/8⌉ + c/8 set when S[r, c] = +1.
    public var signs: [UInt8]
    /// rows × k, row-major.
    public var u: [Float16]
    /// cols × k, row-major.
    public var v: [Float16]
}

public struct DecomposedMatrix: Sendable {
    public var name: String
    public let rows: Int, cols: Int, rank: Int
    /// s (cols); all ones without calibration.
    public var scaling: [Float]
    public var blocks: [StackBlock]
    /// ‖W − Ŵ_m‖²/‖W‖² after m = 1 … n blocks (in the original, unscaled weights).
    public var errors: [Double]
    /// Scaled-space error energy removed by each block (for ordering).
    public var gains: [Double]

    /// Bytes of one block in memory and in the file: signs plus Float16 factors.
    public var blockBytes: Int { rows * ((cols + 7) / 8) + 2 * rank * (rows + cols) }
}

public enum Decomposer {
    /// The largest rank ≤ maxRank whose factors take at most `factorShare` of a block
    /// (2·k·(rows+cols) bytes of Float16 against rows·cols/8 bytes of signs), at least 1.
    public static func rank(rows: Int, cols: Int, factorShare: Double = 0.25, maxRank: Int = 16) -> Int {
        guard factorShare > 0, factorShare < 1 else { return max(1, min(maxRank, rows, cols)) }
        let signBytes = Double(rows) * Double(cols) / 8
        let k = Int(factorShare / (1 - factorShare) * signBytes / (2 * Double(rows + cols)))
        return max(1, min(maxRank, k, min(rows, cols)))
    }

    /// s_c = sqrt(mean over samples of x_c²), clamped below at 1e-3 of its mean so a silent
    /// channel does not zero its weights.
    public static func activationScaling(_ x: UnsafePointer<Float>, samples: Int, cols: Int) -> [Float] {
        var s = [Float](repeating: 0, count: cols)
        for i in 0..<samples { for c in 0..<cols { s[c] += x[i * cols + c] * x[i * cols + c] } }
        for c in 0..<cols { s[c] = (s[c] / Float(max(samples, 1))).squareRoot() }
        let floor = s.reduce(0, +) / Float(cols) * 1e-3
        return s.map { max($0, floor > 0 ? floor : 1) }
    }

    public static func decompose(_ w: UnsafePointer<Float>, rows: Int, cols: Int, blocks n: Int, rank k: Int,
                                 scaling: [Float]? = nil, name: String = "",
                                 progress: ((Int) -> Void)? = nil) throws -> DecomposedMatrix {
        try validateShape(rows: rows, cols: cols, groupSize: 32)
        guard (1...64).contains(n) else { throw LowBitError(.invalidArgument, "block count \(n) must be 1...64") }
        guard k >= 1, k <= min(rows, cols), k <= 256 else {
            throw LowBitError(.invalidArgument, "rank \(k) must be 1...min(rows, cols, 256)")
        }
        let s = scaling ?? [Float](repeating: 1, count: cols)
        guard s.count == cols, s.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw LowBitError(.invalidArgument, "scaling must hold \(cols) positive finite values")
        }
        let count = rows * cols
        try Quantizer.checkWeights(w, rows: rows, cols: cols, name: name)
        var r = [Float](repeating: 0, count: count)
        var total: Double = 0
        for i in 0..<count {
            r[i] = w[i] * s[i % cols]
            total += Double(w[i]) * Double(w[i])
        }
        var out = DecomposedMatrix(name: name, rows: rows, cols: cols, rank: k, scaling: s, blocks: [], errors: [],
                                   gains: [])
        let rowBytes = (cols + 7) / 8
        for level in 0..<n {
            let before = r.reduce(0.0) { $0 + Double($1) * Double($1) }
            var block = StackBlock(signs: [UInt8](repeating: 0, count: rows * rowBytes), u: [], v: [])
            r.withUnsafeBufferPointer { rp in
                block.signs.withUnsafeMutableBufferPointer { sp in
                    parallelFor(rows) { row in
                        for c in 0..<cols where rp[row * cols + c] >= 0 {
                            sp[row * rowBytes + c / 8] |= 1 << UInt8(c % 8)
                        }
                    }
                }
            }
            let (u, v) = try r.withUnsafeBufferPointer {
                try truncatedSVDOfAbs($0.baseAddress!, rows: rows, cols: cols, rank: k, seed: UInt64(level + 1))
            }
            block.u = u.map { Float16($0) }
            block.v = v.map { Float16($0) }
            subtractBlock(&r, block, rows: rows, cols: cols, rank: k)
            out.blocks.append(block)
            var err: Double = 0
            var after: Double = 0
            for i in 0..<count {
                let e = Double(r[i]) / Double(s[i % cols])
                err += e * e
                after += Double(r[i]) * Double(r[i])
            }
            out.errors.append(total > 0 ? err / total : 0)
            out.gains.append(before - after)
            progress?(level + 1)
        }
        return out
    }

    /// R −= S ⊙ (U·Vᵀ) with the stored (Float16) factors.
    static func subtractBlock(_ r: inout [Float], _ b: StackBlock, rows: Int, cols: Int, rank k: Int) {
        let rowBytes = (cols + 7) / 8
        var vt = [Float](repeating: 0, count: k * cols)  // k × cols
        for c in 0..<cols { for t in 0..<k { vt[t * cols + c] = Float(b.v[c * k + t]) } }
        r.withUnsafeMutableBufferPointer { rp in
            vt.withUnsafeBufferPointer { vtp in
                parallelFor(rows) { row in
                    var uv = [Float](repeating: 0, count: cols)
                    for t in 0..<k {
                        let ut = Float(b.u[row * k + t])
                        let base = t * cols
                        for c in 0..<cols { uv[c] += ut * vtp[base + c] }
                    }
                    for c in 0..<cols {
                        let positive = (b.signs[row * rowBytes + c / 8] >> UInt8(c % 8)) & 1 == 1
                        rp[row * cols + c] -= positive ? uv[c] : -uv[c]
                    }
                }
            }
        }
    }

    /// Rank-k factors of |A| (A rows × cols, row-major): randomized subspace iteration with
    /// oversampling 8 and 2 power steps, then an exact eigen-decomposition of the small Gram
    /// matrix. Returns U_k√Σ (rows × k) and V_k√Σ (cols × k), row-major.
    public static func truncatedSVDOfAbs(_ a: UnsafePointer<Float>, rows: Int, cols: Int, rank k: Int,
                                         seed: UInt64) throws -> ([Float], [Float]) {
        let l = min(k + 8, min(rows, cols))
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func gaussian() -> Float {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            let u1 = Double(state >> 11) / Double(1 << 53) + 1e-12
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            let u2 = Double(state >> 11) / Double(1 << 53)
            return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
        }
        var omega = (0..<(cols * l)).map { _ in gaussian() }   // cols × l
        var y = absTimes(a, rows: rows, cols: cols, omega, l)   // rows × l
        orthonormalize(&y, count: rows, l)
        for _ in 0..<2 {
            omega = absTransposeTimes(a, rows: rows, cols: cols, y, l)  // cols × l
            orthonormalize(&omega, count: cols, l)
            y = absTimes(a, rows: rows, cols: cols, omega, l)
            orthonormalize(&y, count: rows, l)
        }
        // B = Qᵀ|A| (l × cols); Z = Bᵀ = |A|ᵀQ (cols × l); B·Bᵀ = ZᵀZ = W·Λ·Wᵀ.
        let z = absTransposeTimes(a, rows: rows, cols: cols, y, l)
        var gram = [Double](repeating: 0, count: l * l)
        for c in 0..<cols {
            for i in 0..<l { for j in i..<l { gram[i * l + j] += Double(z[c * l + i]) * Double(z[c * l + j]) } }
        }
        for i in 0..<l { for j in 0..<i { gram[i * l + j] = gram[j * l + i] } }
        let (values, vectors) = symmetricEigen(gram, l)
        let order = (0..<l).sorted { values[$0] > values[$1] }.prefix(k)
        var u = [Float](repeating: 0, count: rows * k), v = [Float](repeating: 0, count: cols * k)
        for (t, e) in order.enumerated() {
            let sigma = max(values[e], 0).squareRoot()
            guard sigma > 1e-30 else { continue }
            let rootSigma = sigma.squareRoot()
            // U = Q·W·√σ and V = Z·W / σ · √σ = Z·W / √σ.
            for r in 0..<rows {
                var acc: Double = 0
                for i in 0..<l { acc += Double(y[r * l + i]) * vectors[i * l + e] }
                u[r * k + t] = Float(acc * rootSigma)
            }
            for c in 0..<cols {
                var acc: Double = 0
                for i in 0..<l { acc += Double(z[c * l + i]) * vectors[i * l + e] }
                v[c * k + t] = Float(acc / rootSigma)
            }
        }
        return (u, v)
    }

    /// |A|·M for M cols × l (row-major); result rows × l.
    static func absTimes(_ a: UnsafePointer<Float>, rows: Int, cols: Int, _ m: [Float], _ l: Int) -> [Float] {
        var out = [Float](repeating: 0, count: rows * l)
        out.withUnsafeMutableBufferPointer { o in
            m.withUnsafeBufferPointer { mp in
                parallelFor(rows) { r in
                    let dst = o.baseAddress! + r * l
                    for c in 0..<cols {
                        let x = abs(a[r * cols + c])
                        let src = mp.baseAddress! + c * l
                        for j in 0..<l { dst[j] += x * src[j] }
                    }
                }
            }
        }
        return out
    }

    /// |A|ᵀ·M for M rows × l; result cols × l (parallel over column ranges).
    static func absTransposeTimes(_ a: UnsafePointer<Float>, rows: Int, cols: Int, _ m: [Float], _ l: Int) -> [Float] {
        var out = [Float](repeating: 0, count: cols * l)
        out.withUnsafeMutableBufferPointer { o in
            m.withUnsafeBufferPointer { mp in
                parallelRanges(cols) { range in
                    for r in 0..<rows {
                        let src = mp.baseAddress! + r * l
                        for c in range {
                            let x = abs(a[r * cols + c])
                            let dst = o.baseAddress! + c * l
                            for j in 0..<l { dst[j] += x * src[j] }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Orthonormalizes the l columns of a count × l row-major matrix: modified Gram-Schmidt in
    /// Float64, each column projected twice (once is not enough when a column is mostly
    /// cancellation noise, as the surplus columns of a low-rank matrix are); a column that
    /// vanishes against the earlier ones becomes zero.
    static func orthonormalize(_ m: inout [Float], count: Int, _ l: Int) {
        var d = m.map(Double.init)
        for j in 0..<l {
            var original: Double = 0
            for r in 0..<count { original += d[r * l + j] * d[r * l + j] }
            for _ in 0..<2 {
                for i in 0..<j {
                    var dot: Double = 0
                    for r in 0..<count { dot += d[r * l + i] * d[r * l + j] }
                    for r in 0..<count { d[r * l + j] -= dot * d[r * l + i] }
                }
            }
            var norm: Double = 0
            for r in 0..<count { norm += d[r * l + j] * d[r * l + j] }
            let inv = norm > 1e-20 * original && norm > 1e-300 ? 1 / norm.squareRoot() : 0
            for r in 0..<count { d[r * l + j] *= inv }
        }
        m = d.map(Float.init)
    }

    /// Cyclic Jacobi eigen-decomposition of a symmetric n × n matrix: (values, vectors as columns).
    static func symmetricEigen(_ input: [Double], _ n: Int) -> ([Double], [Double]) {
        var a = input
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        for _ in 0..<100 {
            var off: Double = 0
            for i in 0..<n { for j in (i + 1)..<max(n, i + 1) { off += a[i * n + j] * a[i * n + j] } }
            if off < 1e-30 { break }
            for p in 0..<n {
                for q in (p + 1)..<max(n, p + 1) where abs(a[p * n + q]) > 1e-300 {
                    let theta = (a[q * n + q] - a[p * n + p]) / (2 * a[p * n + q])
                    let t = (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {
                        let akp = a[k * n + p], akq = a[k * n + q]
                        a[k * n + p] = c * akp - s * akq
                        a[k * n + q] = s * akp + c * akq
                    }
                    for k in 0..<n {
                        let apk = a[p * n + k], aqk = a[q * n + k]
                        a[p * n + k] = c * apk - s * aqk
                        a[q * n + k] = s * apk + c * aqk
                    }
                    for k in 0..<n {
                        let vkp = v[k * n + p], vkq = v[k * n + q]
                        v[k * n + p] = c * vkp - s * vkq
                        v[k * n + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        return ((0..<n).map { a[$0 * n + $0] }, v)
    }
}
