/// A ±1 matrix S (rows × cols) held only as LUT-layout sign bits (1 bit per entry), for the
/// BitStack product: y = S·x is the 1-bit LUT kernel with d = 2, m = −1 shared by every group,
/// so nothing per group is stored. cols must be a multiple of 32.
public final class SignMatrix: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    /// Table-scale block along cols: the largest multiple of 32 up to 256 dividing cols. A sign
    /// matrix has no group parameters, so this block only sets how often the kernel flushes its
    /// int16 sums (once per block and activation row): fewer flushes make the products faster,
    /// and up to 256 columns the int16 sums keep perplexity where Float32 weights put it; at
    /// 1024 it rose.
    public let groupSize: Int
    let layout: LUTLayout

    public var byteCount: Int { layout.byteCount }

    /// Checks the shape and picks the table-scale block.
    static func groupSize(rows: Int, cols: Int) throws -> Int {
        guard cols % 32 == 0 else {
            throw LowBitError(.invalidArgument, "sign matrix cols \(cols) is not a multiple of 32")
        }
        try validateShape(rows: rows, cols: cols, groupSize: 32)
        return stride(from: 256, through: 32, by: -32).first { cols % $0 == 0 }!
    }

    /// `positive(r, c)`: whether S[r, c] is +1.
    public init(rows: Int, cols: Int, positive: (Int, Int) -> Bool) throws {
        groupSize = try SignMatrix.groupSize(rows: rows, cols: cols)
        (self.rows, self.cols) = (rows, cols)
        layout = try LUTLayout(signRows: rows, cols: cols, sign: positive)
    }

    /// From row-major sign bits (bit c % 8 of byte r·⌈cols/8⌉ + c/8 set for +1).
    public init(rows: Int, cols: Int, signBits: UnsafePointer<UInt8>) throws {
        groupSize = try SignMatrix.groupSize(rows: rows, cols: cols)
        (self.rows, self.cols) = (rows, cols)
        layout = try LUTLayout(signBits: signBits, rowBytes: cols / 8, rows: rows, cols: cols)
    }

    public func isPositive(row: Int, col: Int) -> Bool { layout.bit(row: row, col: col, plane: 0) == 1 }

    /// Row blocks of `LUTLayout.rowsPerBlock` rows: the units `multiply(tables:…)` splits rows by.
    public var rowBlocks: Int { layout.rowBlocks }

    var tables: LUTTables { LUTTables(cols: cols, groupSize: groupSize) }

    /// Bytes of one activation row's tables, rounded up to a cache line.
    public var tableBytes: Int { LUTTables.stride(cols: cols, groupSize: groupSize) }

    /// Y = X·Sᵀ for n activation rows (x: n × cols, y: n × rows): `buildTables` per activation
    /// row, then `multiply(tables:…)` over ranges of row blocks, both on the thread pool.
    public func multiply(_ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) throws {
        let stride = tableBytes
        let ws = try Workspace.current.reserve(try checkedProduct(n, stride, what: "workspace"))
        parallelFor(n) { i in buildTables(x + i * cols, into: ws + i * stride) }
        parallelRanges(rowBlocks) { blocks in multiply(tables: ws, n: n, rowBlocks: blocks, into: y) }
    }

    /// The tables of one activation row x (cols values) at `base`, for either path of
    /// `multiply(tables:…)` (every tier reads the same tables).
    public func buildTables(_ x: UnsafePointer<Float>, into base: UnsafeMutableRawPointer) {
        tables.build(x, into: base)
    }

    /// y[a·rows + r] = Σ_c S[r, c]·x_a[c] for the rows of `rowBlocks` and the n activation rows whose
    /// tables are at `tables + a·tableBytes`. Disjoint row-block ranges may run concurrently.
    public func multiply(tables base: UnsafeMutableRawPointer, n: Int, rowBlocks blocks: Range<Int>,
                         into y: UnsafeMutablePointer<Float>) {
        let tables = self.tables, stride = tableBytes
        if let tier = Tiers.packed {
            return tier.signProduct(layout, groupSize: groupSize, rows: rows, n: n, tables: tables, tableBase: base,
                                    tableStride: stride, y: y, rowBlocks: blocks)
        }
        // The portable tier: the same table sums, Σ over k-groups of T[sign nibble] · ts.
        let kgroupsPerGroup = groupSize / 4
        // (An empty range may start past the last row: clamp both ends.)
        let firstRow = min(rows, blocks.lowerBound * LUTLayout.rowsPerBlock)
        let rowRange = firstRow..<min(rows, blocks.upperBound * LUTLayout.rowsPerBlock)
        for a in 0..<n {
            let t = tables.tables(base + a * stride), ts = tables.tableScales(base + a * stride)
            for r in rowRange {
                var sum: Float = 0
                for g in 0..<tables.groups {
                    var lookups: Int32 = 0
                    for j in 0..<kgroupsPerGroup {
                        let kg = g * kgroupsPerGroup + j
                        var index = 0
                        for b in 0..<4 { index |= layout.bit(row: r, col: 4 * kg + b, plane: 0) << b }
                        lookups += Int32(t[16 * kg + index])
                    }
                    sum += ts[g] * Float(lookups)
                }
                y[a * rows + r] = sum
            }
        }
    }
}
