#if LOWBIT_AVX2
import _Builtin_intrinsics.intel
#endif
import LowBit

/// One linear layer y = W·x of the runner, whatever holds W.
public protocol Linear: AnyObject, Sendable {
    var rows: Int { get }
    var cols: Int { get }
    /// Bytes of weights held.
    var byteCount: Int { get }
    /// Y = X·Wᵀ for n activation rows.
    func forward(_ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) throws
}

/// Float32 weights (the reference model): SIMD dot products, 4 activation rows at a time.
public final class FloatLinear: Linear, @unchecked Sendable {
    public let rows: Int, cols: Int
    let w: [Float]
    public var byteCount: Int { w.count * 4 }

    public init(_ w: [Float], rows: Int, cols: Int) throws {
        guard w.count == rows * cols, cols % 8 == 0 else {
            throw LowBitError(.unsupported, "a float layer of \(rows) x \(cols) with \(w.count) weights: cols must be a multiple of 8")
        }
        (self.w, self.rows, self.cols) = (w, rows, cols)
    }

    public func forward(_ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) throws {
        let rows = self.rows, cols = self.cols
        w.withUnsafeBufferPointer { wp in
            let w = wp.baseAddress!
            // Activation rows in blocks that stay in L2 while every weight row passes them.
            let block = max(4, (128 * 1024 / (cols * 4)) & ~3)
            parallelRanges(rows) { range in
                for start in stride(from: 0, to: n, by: block) {
                    let tokens = start..<min(n, start + block)
                    #if LOWBIT_AVX2
                    if Runtime.useAVX2 {
                        FloatLinear.tileAVX2(w, rows: rows, cols: cols, x: x, y: y, rowRange: range, tokens: tokens)
                        continue
                    }
                    #endif
                    FloatLinear.tilePortable(w, rows: rows, cols: cols, x: x, y: y, rowRange: range, tokens: tokens)
                }
            }
        }
    }

    /// y[i][r] for the rows and tokens given: one weight row against up to 4 activation rows.
    static func tilePortable(_ w: UnsafePointer<Float>, rows: Int, cols: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                             rowRange: Range<Int>, tokens: Range<Int>) {
        let xb = UnsafeRawPointer(x)
        for r in rowRange {
            let wr = UnsafeRawPointer(w + r * cols)
            var i = tokens.lowerBound
            while i < tokens.upperBound {
                let t = min(4, tokens.upperBound - i)
                var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
                let x0 = xb + i * cols * 4
                for c in stride(from: 0, to: cols, by: 8) {
                    let wv = wr.loadUnaligned(fromByteOffset: c * 4, as: SIMD8<Float>.self)
                    a0.addProduct(wv, x0.loadUnaligned(fromByteOffset: c * 4, as: SIMD8<Float>.self))
                    if t > 1 { a1.addProduct(wv, x0.loadUnaligned(fromByteOffset: (cols + c) * 4, as: SIMD8<Float>.self)) }
                    if t > 2 { a2.addProduct(wv, x0.loadUnaligned(fromByteOffset: (2 * cols + c) * 4, as: SIMD8<Float>.self)) }
                    if t > 3 { a3.addProduct(wv, x0.loadUnaligned(fromByteOffset: (3 * cols + c) * 4, as: SIMD8<Float>.self)) }
                }
                y[i * rows + r] = a0.sum()
                if t > 1 { y[(i + 1) * rows + r] = a1.sum() }
                if t > 2 { y[(i + 2) * rows + r] = a2.sum() }
                if t > 3 { y[(i + 3) * rows + r] = a3.sum() }
                i += t
            }
        }
    }

    #if LOWBIT_AVX2
    /// The same on AVX2 with a 2 weight rows × 4 activation rows register tile (6 loads per 8
    /// FMAs instead of 5 per 4); leftover activation rows go one at a time.
    static func tileAVX2(_ w: UnsafePointer<Float>, rows: Int, cols: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                         rowRange: Range<Int>, tokens: Range<Int>) {
        var r = rowRange.lowerBound
        while r < rowRange.upperBound {
            let pair = r + 1 < rowRange.upperBound
            let w0 = w + r * cols, w1 = pair ? w0 + cols : w0
            var i = tokens.lowerBound
            while i + 4 <= tokens.upperBound {
                let x0 = x + i * cols, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols
                var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0
                for c in stride(from: 0, to: cols, by: 8) {
                    let u = _mm256_loadu_ps(w0 + c), v = _mm256_loadu_ps(w1 + c)
                    let p0 = _mm256_loadu_ps(x0 + c), p1 = _mm256_loadu_ps(x1 + c)
                    let p2 = _mm256_loadu_ps(x2 + c), p3 = _mm256_loadu_ps(x3 + c)
                    a0 = _mm256_fmadd_ps(u, p0, a0); a1 = _mm256_fmadd_ps(u, p1, a1)
                    a2 = _mm256_fmadd_ps(u, p2, a2); a3 = _mm256_fmadd_ps(u, p3, a3)
                    b0 = _mm256_fmadd_ps(v, p0, b0); b1 = _mm256_fmadd_ps(v, p1, b1)
                    b2 = _mm256_fmadd_ps(v, p2, b2); b3 = _mm256_fmadd_ps(v, p3, b3)
                }
                y[i * rows + r] = a0.sum(); y[(i + 1) * rows + r] = a1.sum()
                y[(i + 2) * rows + r] = a2.sum(); y[(i + 3) * rows + r] = a3.sum()
                if pair {
                    y[i * rows + r + 1] = b0.sum(); y[(i + 1) * rows + r + 1] = b1.sum()
                    y[(i + 2) * rows + r + 1] = b2.sum(); y[(i + 3) * rows + r + 1] = b3.sum()
                }
                i += 4
            }
            while i < tokens.upperBound {
                let xi = x + i * cols
                var a = _mm256_setzero_ps(), b = a
                for c in stride(from: 0, to: cols, by: 8) {
                    let p = _mm256_loadu_ps(xi + c)
                    a = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + c), p, a)
                    b = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + c), p, b)
                }
                y[i * rows + r] = a.sum()
                if pair { y[i * rows + r + 1] = b.sum() }
                i += 1
            }
            r += pair ? 2 : 1
        }
    }
    #endif
}

/// A lowbit matrix with one kernel family for every batch size. `auto` is resolved once, at
/// load, to the family measured fastest for one token (decode dominates generation). Where that
/// family has a packed layout (AVX2 lut or dequant), only the layout is held: the canonical
/// codes are released, so the layer holds about one copy of its weights.
public final class QuantizedLinear: Linear, @unchecked Sendable {
    enum Weights {
        case packed(PackedMatrix)
        case matrix(QuantizedMatrix)
    }
    let weights: Weights
    public let kernel: KernelFamily
    public let rows: Int, cols: Int

    /// Activation-aware matrices: the matrix holds W·diag(s), so inputs are divided by s first.
    public let inputScales: [Float]?
    /// Activation precision passed to the kernel (8: int8 as llama.cpp rounds them; 16: two
    /// int8 passes and 32: float, dequant family only).
    public let activationBits: Int

    public var byteCount: Int {
        let held: Int
        switch weights {
        case .packed(let p): held = p.byteCount
        case .matrix(let m): held = m.byteCount
        }
        return held + 4 * (inputScales?.count ?? 0)
    }

    public init(_ matrix: QuantizedMatrix, kernel: KernelFamily, inputScales: [Float]? = nil, activationBits: Int = 8) throws {
        guard inputScales == nil || inputScales!.count == matrix.cols else {
            throw LowBitError(.invalidArgument, "input scales have \(inputScales!.count) values, the matrix \(matrix.cols) columns")
        }
        (rows, cols) = (matrix.rows, matrix.cols)
        self.inputScales = inputScales
        self.activationBits = activationBits
        let family = kernel == .auto ? try AutoKernel.choice(matrix, n: 1, keepLayouts: false) : kernel
        self.kernel = family
        if PackedMatrix.canPack(matrix, family: family) {
            weights = .packed(try PackedMatrix(matrix, family: family))
        } else {
            try matrix.prepare(family)
            weights = .matrix(matrix)
        }
    }

    public func forward(_ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) throws {
        var input = x
        if let s = inputScales {
            let scaled = try Workspace.current.reserve(try checkedProduct(n, cols, 4, what: "activations"), slot: 1)
                .assumingMemoryBound(to: Float.self)
            s.withUnsafeBufferPointer { sp in
                for i in 0..<n { for c in 0..<cols { scaled[i * cols + c] = x[i * cols + c] / sp[c] } }
            }
            input = UnsafePointer(scaled)
        }
        switch weights {
        case .packed(let p): try p.multiply(input, n: n, into: y, activationBits: activationBits)
        case .matrix(let m): try m.multiply(input, n: n, into: y, kernel: kernel, activationBits: activationBits)
        }
    }

    /// Row r of W (input scaling undone), cols floats: a tied output's embedding lookup.
    public func weights(row r: Int, into out: UnsafeMutablePointer<Float>) {
        switch weights {
        case .packed(let p): p.weights(row: r, into: out)
        case .matrix(let m): for c in 0..<cols { out[c] = m.weight(row: r, col: c) }
        }
        if let s = inputScales { for c in 0..<cols { out[c] /= s[c] } }
    }
}

/// A tensor of a BitStack held under the stack's budget.
public final class StackLinear: Linear, @unchecked Sendable {
    public let stack: Stack
    public let name: String
    public let rows: Int, cols: Int
    /// Shared by every layer of one stack; the runner reports the stack's resident bytes once.
    public var byteCount: Int { 0 }

    public init(_ stack: Stack, name: String) throws {
        let t = stack.index.tensors[try stack.tensorNumber(name)]
        (self.stack, self.name, self.rows, self.cols) = (stack, name, t.rows, t.cols)
    }

    public func forward(_ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) throws {
        try stack.multiply(name, x, n: n, into: y)
    }
}
