/// A ±1 matrix S (rows × cols) held only as LUT-layout sign bits (1 bit per entry), for the
/// BitStack product: y = S·x is the 1-bit LUT kernel with d = 2, m = −1 shared by every group,
/// so nothing per group is stored. cols must be a multiple of 32.
public final class SignMatrix: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    /// Table-scale block along cols (the largest of 128, 64, 32 dividing cols).
    public let groupSize: Int
    let layout: LUTLayout

    public var byteCount: Int { layout.byteCount }

    /// Checks the shape and picks the table-scale block.
    static func groupSize(rows: Int, cols: Int) throws -> Int {
        guard cols % 32 == 0 else {
            throw LowBitError(.invalidArgument, "sign matrix cols \(cols) is not a multiple of 32")
        }
        try validateShape(rows: rows, cols: cols, groupSize: 32)
        return [128, 64, 32].first { cols % $0 == 0 }!
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

    /// Y = X·Sᵀ for n activation rows (x: n × cols, y: n × rows).
    public func multiply(_ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) throws {
        try LUTKernel.multiply(rows: rows, cols: cols, groupSize: groupSize, x: x, n: n, y: y,
                               layout: Runtime.useAVX2 ? layout : nil) { tables, base, out, range in
            // Portable: the same table sums, Σ over k-groups of T[sign nibble] · ts.
            let t = tables.tables(base), ts = tables.tableScales(base)
            let kgroupsPerGroup = self.groupSize / 4
            for r in range {
                var sum: Float = 0
                for g in 0..<tables.groups {
                    var lookups: Int32 = 0
                    for j in 0..<kgroupsPerGroup {
                        let kg = g * kgroupsPerGroup + j
                        var index = 0
                        for b in 0..<4 { index |= self.layout.bit(row: r, col: 4 * kg + b, plane: 0) << b }
                        lookups += Int32(t[16 * kg + index])
                    }
                    sum += ts[g] * Float(lookups)
                }
                out[r] = sum
            }
        }
    }
}
