import LowBit
import LowBitCore

/// A GGUF tensor whose type lowbit's codes cannot hold, run on its exact values without
/// requantizing: Q2_K, Q3_K and Q6_K (scales per 16 elements) and IQ4_NL, IQ4_XS (a table of
/// non-uniform values), held as int8 values v with a Float32 scale s and minimum m per group,
/// w = s·v − m (`GGMLBlocks.int8Groups`): 8 bits per weight plus 1 to 4 for the parameters,
/// against Float32's 32, with float activations.
///
///     y[r] = Σ_c (s[r, g(c)] · v[r, c] − m[r, g(c)]) · x[c],   g(c) = c / groupSize
public final class Int8GroupLinear: Linear, RowLookup, @unchecked Sendable {
    public let rows: Int, cols: Int, groupSize: Int
    /// rows × cols values, row-major.
    let values: AlignedBuffer
    /// rows × groups scales, and as many minimums where a group has one (Q2_K).
    let scales: AlignedBuffer, minimums: AlignedBuffer?
    var groups: Int { cols / groupSize }
    public var byteCount: Int { values.byteCount + scales.byteCount + (minimums?.byteCount ?? 0) }

    public func readWeights() -> UInt64? {
        MemoryBaseline.read(values) &+ MemoryBaseline.read(scales) &+ (minimums.map { MemoryBaseline.read($0) } ?? 0)
    }

    /// The tensor's `type` blocks in `raw` (rows · cols/block elements of them, row-major).
    public init(type: GGUFFile.TensorType, blocks raw: UnsafeRawBufferPointer, rows: Int, cols: Int) throws {
        guard let groupSize = GGMLBlocks.int8GroupSize(type) else {
            throw LowBitError(.unsupported, "\(type) blocks are not held as int8 groups")
        }
        let (elements, blockBytes) = type.block
        guard rows > 0, cols > 0, cols % elements == 0,
              raw.count == (try checkedProduct(rows, cols / elements, blockBytes, what: "tensor")) else {
            throw LowBitError(.badFormat, "\(type) tensor of \(rows) x \(cols) with \(raw.count) bytes: cols must be a "
                              + "multiple of \(elements) and bytes rows·cols/\(elements)·\(blockBytes)")
        }
        (self.rows, self.cols, self.groupSize) = (rows, cols, groupSize)
        let groups = cols / groupSize, groupsPerBlock = elements / groupSize, blocksPerRow = cols / elements
        values = try AlignedBuffer(byteCount: try checkedProduct(rows, cols, what: "tensor"))
        scales = try AlignedBuffer(byteCount: rows * groups * 4)
        let mins = try AlignedBuffer(byteCount: rows * groups * 4)
        let v = UnsafeMutableRawPointer(values.bytes()).assumingMemoryBound(to: Int8.self)
        let s = scales.floats(), m = mins.floats(), base = raw.baseAddress!
        parallelFor(rows) { r in
            for b in 0..<blocksPerRow {
                let group = r * groups + b * groupsPerBlock
                GGMLBlocks.int8Groups(type, base + (r * blocksPerRow + b) * blockBytes,
                                      values: v + r * cols + b * elements, scales: s + group, minimums: m + group)
            }
        }
        // Only Q2_K has minimums; where every one is zero the products skip their term.
        minimums = (0..<(rows * groups)).contains { m[$0] != 0 } ? mins : nil
    }

    /// From this many activation rows on (a prompt), each panel of 16 rows is rebuilt in floats
    /// and multiplied by `FloatTile`'s register-tiled kernel: the conversion is then shared by
    /// every row, where the int8 kernel converts each weight once per 4 rows.
    static let panelMinimumRows = 8

    public func forward(_ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) throws {
        let rows = self.rows, cols = self.cols, groupSize = self.groupSize
        guard n < Int8GroupLinear.panelMinimumRows else { return try forwardInPanels(x, n: n, into: y) }
        let v = UnsafePointer(UnsafeRawPointer(values.bytes()).assumingMemoryBound(to: Int8.self))
        let s = UnsafePointer(scales.floats()), m = minimums.map { UnsafePointer($0.floats()) }
        parallelChunks(rows, chunk: 8) { range in
            Tiers.active.int8GroupRows(v, scales: s, minimums: m, groupSize: groupSize, cols: cols, rows: rows, x: x,
                                       n: n, y: y, range: range)
        }
    }

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
        let v = UnsafeRawPointer(values.bytes()).assumingMemoryBound(to: Int8.self) + r * cols
        let s = scales.floats() + r * groups, m = minimums.map { $0.floats() + r * groups }
        for g in 0..<groups {
            let scale = s[g], minimum = m?[g] ?? 0, first = g * groupSize
            for c in first..<(first + groupSize) { out[c] = scale * Float(v[c]) - minimum }
        }
    }
}
