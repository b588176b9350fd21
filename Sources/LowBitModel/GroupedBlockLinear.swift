import LowBit
import LowBitCore

/// A GGUF tensor of Q2_K, Q3_K, Q6_K, IQ4_NL, IQ4_XS or Q8_0 blocks, held as the file's blocks:
/// each block is decoded as a product reaches it (`GroupedBlocks`), so the weights cost the
/// file's bits (2.6 to 8.5 per weight) and are the file's values bit for bit. lowbit's codes
/// cannot hold these types without requantizing: groups of 16 (the K-quants' sub-blocks), IQ4's
/// table of non-uniform values, Q8_0's 8 bits. Up to 7 activation rows are integer sums with the
/// activations rounded to int8 per block (`TierKernels.groupedBlockRows`), in two such passes
/// for 16-bit activations; prompts and float activations run decoded float panels. Q8_0 at 16
/// or 32 bits takes float activations on its own row kernel instead, for any number of rows.
///
///     y[r] = Σ_c (s[r, g(c)] · v[r, c] − m[r, g(c)]) · x[c],   g(c) = c / groupSize
public final class GroupedBlockLinear: Linear, RowLookup, @unchecked Sendable {
    public let rows: Int, cols: Int
    let type: GroupedBlockType
    /// Activation precision below `panelMinimumRows` rows: 8 (int8 per block, as llama.cpp rounds
    /// them), 16 (two int8 passes, x and its rounding residual: within ~1e-7 of float) or 32
    /// (float, on decoded panels).
    public let activationBits: Int
    /// rows · cols / type.elements blocks in `GroupedBlockMatrix`'s order (IQ4_NL's and Q8_0's in
    /// bands of eight rows, the others row-major).
    let blocks: AlignedBuffer
    public var byteCount: Int { blocks.byteCount }

    public func readWeights() -> UInt64? { MemoryBaseline.read(blocks) }

    /// The tensor's `type` blocks in `raw` (rows · cols/block elements of them, row-major).
    public init(type: GGUFFile.TensorType, blocks raw: UnsafeRawBufferPointer, rows: Int, cols: Int,
                activationBits: Int = 8) throws {
        guard let grouped = GGMLBlocks.groupedBlockType(type) else {
            throw LowBitError(.unsupported, "\(type) blocks are not grouped blocks")
        }
        guard [8, 16, 32].contains(activationBits) else {
            throw LowBitError(.unsupported, "activation bits \(activationBits) for \(type) blocks: use 8, 16 or 32")
        }
        self.activationBits = activationBits
        let (elements, blockBytes) = type.block
        guard rows > 0, cols > 0, cols % elements == 0,
              raw.count == (try checkedProduct(rows, cols / elements, blockBytes, what: "tensor")) else {
            throw LowBitError(.badFormat, "\(type) tensor of \(rows) x \(cols) with \(raw.count) bytes: cols must be a "
                              + "multiple of \(elements) and bytes rows·cols/\(elements)·\(blockBytes)")
        }
        (self.rows, self.cols, self.type) = (rows, cols, grouped)
        blocks = try AlignedBuffer(byteCount: raw.count)
        GroupedBlockMatrix(grouped, blocks.pointer, rows: rows, cols: cols)
            .arrange(rowMajor: raw.baseAddress!, into: blocks.pointer)
    }

    var matrix: GroupedBlockMatrix { GroupedBlockMatrix(type, blocks.pointer, rows: rows, cols: cols) }

    /// From this many activation rows on (a prompt), products run on float panels: there the
    /// int8 kernels' two passes for 16-bit activations cost about twice a panel's one float
    /// product. A row's result then differs, in its last bits, from that of a product of fewer rows.
    static let panelMinimumRows = 8

    public func forward(_ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) throws {
        if type == .q8_0, activationBits != 8 {
            // Float activations on Q8_0's int8 values decode as fast as two int8 passes, and
            // give each row the same result whatever the number of rows: the model's tied
            // output of a Q8_0 embedding then gives a prompt's logits as one row gives them.
            let matrix = self.matrix
            return parallelChunks(rows, chunk: 8) { range in
                Tiers.active.q8_0Rows(matrix, x: x, n: n, y: y, range: range)
            }
        }
        guard n < GroupedBlockLinear.panelMinimumRows, activationBits != 32 else {
            return try forwardInPanels(x, n: n, into: y)
        }
        guard activationBits == 8 else {
            return try DequantKernel.multiplySplit(rows: rows, cols: cols, groupSize: type.elements, x: x, n: n, y: y,
                                                   int8: forwardInt8)
        }
        try forwardInt8(x, n: n, into: y)
    }

    /// Activations rounded to int8 with a scale per block, as llama.cpp rounds them for these
    /// types: the products are then integer sums.
    private func forwardInt8(_ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) throws {
        let rows = self.rows, cols = self.cols, type = self.type
        let acts = Int8Activations(cols: cols, groupSize: type.elements)
        let stride = Int8Activations.byteCount(cols: cols, groupSize: type.elements)
        let actBase = try Workspace.current.reserve(try checkedProduct(n, stride, what: "activations"), slot: 1)
        for i in 0..<n { Tiers.active.quantize(acts, x + i * cols, into: actBase + i * stride) }
        let matrix = self.matrix
        parallelChunks(rows, chunk: 8) { range in
            Tiers.active.groupedBlockRows(matrix, acts: acts, actBase: actBase, actStride: stride, n: n, y: y,
                                          range: range)
        }
    }

    /// Each panel of 16 rows decoded to floats and multiplied by `FloatTile`'s register-tiled
    /// kernel, the decoding shared by every activation row.
    private func forwardInPanels(_ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) throws {
        let rows = self.rows, cols = self.cols, panelRows = FloatTile.panelRows
        let panelCount = (rows + panelRows - 1) / panelRows
        let scratch = try checkedProduct(panelRows, cols, 2, what: "panel")
        parallelChunks(panelCount, chunk: 1) { range in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: scratch) { buffer in
                let w = buffer.baseAddress!, panel = w + panelRows * cols
                for index in range {
                    let first = index * panelRows, count = min(panelRows, rows - first)
                    for k in 0..<count { weights(row: first + k, into: w + k * cols) }
                    FloatTile.pack(w, rows: count, cols: cols, into: panel)
                    FloatTile.product(panel, rows: count, cols: cols, x: x, n: n, y: y + first, yStride: rows)
                }
            }
        }
    }

    /// Row r of W: s·v − m, the file's values bit for bit.
    func weights(row r: Int, into out: UnsafeMutablePointer<Float>) {
        let m = matrix
        Tiers.active.groupedBlockWeights(type, m.block(row: r, 0), count: m.blocksPerRow, stride: m.blockStride(row: r),
                                         into: out)
    }
}
