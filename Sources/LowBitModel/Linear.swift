import LowBit

/// One linear layer y = W·x of the runner, whatever holds W.
public protocol Linear: AnyObject, Sendable {
    var rows: Int { get }
    var cols: Int { get }
    /// Bytes of weights held.
    var byteCount: Int { get }
    /// Y = X·Wᵀ for n activation rows.
    func forward(_ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) throws
    /// Reads once every byte of weights a product streams (nil where no fixed set of bytes is:
    /// a stack's resident blocks change with its budget), for the model's memory roofline.
    func readWeights() throws -> UInt64?
}

/// A layer whose weight rows can be read back: a tied output's embedding lookup.
protocol RowLookup: AnyObject {
    /// Row r of W, cols floats.
    func weights(row r: Int, into out: UnsafeMutablePointer<Float>)
}

/// Float32 weights (the reference model), held in `FloatTile` panels of 16 rows.
public final class FloatLinear: Linear, @unchecked Sendable {
    public let rows: Int, cols: Int
    let panels: AlignedBuffer
    public var byteCount: Int { rows * cols * 4 }
    public func readWeights() -> UInt64? { MemoryBaseline.read(panels) }

    public init(_ w: [Float], rows: Int, cols: Int) throws {
        guard w.count == rows * cols, cols % 8 == 0 else {
            throw LowBitError(.unsupported,
                              "a float layer of \(rows) x \(cols) with \(w.count) weights: cols must be a "
                              + "multiple of 8")
        }
        (self.rows, self.cols) = (rows, cols)
        panels = try AlignedBuffer(byteCount: FloatTile.packedCount(rows: rows, cols: cols) * 4)
        w.withUnsafeBufferPointer { FloatTile.pack($0.baseAddress!, rows: rows, cols: cols, into: panels.floats()) }
    }

    public func forward(_ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) throws {
        let rows = self.rows, cols = self.cols, p = UnsafePointer(panels.floats())
        // Whole panels per chunk.
        let panelCount = (rows + FloatTile.panelRows - 1) / FloatTile.panelRows
        parallelChunks(panelCount, chunk: 1) { range in
            let first = range.lowerBound * FloatTile.panelRows, end = min(rows, range.upperBound * FloatTile.panelRows)
            FloatTile.product(p + first * cols, rows: end - first, cols: cols, x: x, n: n, y: y + first, yStride: rows)
        }
    }
}

/// A lowbit matrix with one kernel family for every batch size. `auto` is resolved once, at
/// load, to the family measured fastest for one token (decode dominates generation), or to the
/// one fastest for a prompt's batch where it is within a few percent of that for one token
/// (`AutoKernel.choice(_:oneRowAndBatch:)`). Where that
/// family has a packed layout (AVX2 lut or dequant), only the layout is held: the canonical
/// codes are released, so the layer holds about one copy of its weights.
public final class QuantizedLinear: Linear, RowLookup, @unchecked Sendable {
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

    /// The batch `auto` weighs beside one token: big enough for the batched kernels to run as they
    /// do on a prompt, small enough to measure in a few milliseconds per shape at load.
    static let promptBatch = 16

    public init(_ matrix: QuantizedMatrix, kernel: KernelFamily, inputScales: [Float]? = nil,
                activationBits: Int = 8) throws {
        guard inputScales == nil || inputScales!.count == matrix.cols else {
            throw LowBitError(.invalidArgument,
                              "input scales have \(inputScales!.count) values, the matrix \(matrix.cols) columns")
        }
        (rows, cols) = (matrix.rows, matrix.cols)
        self.inputScales = inputScales
        self.activationBits = activationBits
        let family = kernel == .auto
            ? try AutoKernel.choice(matrix, oneRowAndBatch: QuantizedLinear.promptBatch, keepLayouts: false) : kernel
        self.kernel = family
        if PackedMatrix.canPack(matrix, family: family) {
            weights = .packed(try PackedMatrix(matrix, family: family))
        } else {
            try matrix.prepare(family)
            weights = .matrix(matrix)
        }
    }

    public func readWeights() throws -> UInt64? {
        switch weights {
        case .packed(let p): return p.readWeights()
        case .matrix(let m): return try m.readLayout(kernel)
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

    /// `rows` x `cols`: the shape the model needs, which the stack's tensor must have (the
    /// stack's products write rows x n values).
    public init(_ stack: Stack, name: String, rows: Int, cols: Int) throws {
        let t = stack.index.tensors[try stack.tensorNumber(name)]
        guard t.rows == rows, t.cols == cols else {
            throw LowBitError(.sizeMismatch, "stack '\(stack.path)': tensor '\(name)' is \(t.rows) x \(t.cols), "
                                             + "the model needs \(rows) x \(cols)")
        }
        (self.stack, self.name, self.rows, self.cols) = (stack, name, t.rows, t.cols)
    }

    public func forward(_ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) throws {
        try stack.multiply(name, x, n: n, into: y)
    }

    public func readWeights() -> UInt64? { nil }
}
