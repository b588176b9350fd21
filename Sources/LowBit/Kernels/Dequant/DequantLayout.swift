/// The dequant family's weight layout: 8 rows interleaved so that one 32-bit lane of a vector
/// holds one row: no horizontal sums at the end of a row, which would cost as much as a group.
///
/// Codes are stored w = 4 bits wide for 3- and 4-bit weights, w = 2 bits wide for 1-, 2-bit
/// and ternary (so 3-bit costs 4 bits and 1-bit 2 bits here: the price of byte-aligned unpacking)
/// and w = 8 for the 5-bit value codes of 4-bit mixed matrices.
/// A "step" is 32/w columns (4, 8 or 16); per block of 8 rows and step,
/// 32 bytes, where byte 4r + j holds row r's codes of columns j + 4t at bits t·w (t = 0 ..< 8/w).
/// So `(v >> t·w) & mask` of one 32-byte load gives 4 consecutive codes of each of the 8 rows,
/// ready for `vpmaddubsw` against 4 broadcast int8 activations; row r lands in 32-bit lane r.
/// Group parameters per block and group: 8 d, then 8 m (`GroupParameters`: Float16 when all are
/// exact Float16s, else Float32).
public final class DequantLayout: @unchecked Sendable {
    public static let rowsPerBlock = 8
    public let rowBlocks: Int
    /// Bits per stored code: 2, 4 or 8.
    public let width: Int
    public var columnsPerStep: Int { 32 / width }
    package let codes: AlignedBuffer
    package let params: GroupParameters

    public var byteCount: Int { codes.byteCount + params.byteCount }
    public let blockCodeBytes: Int

    package init(packing m: CanonicalCodes) throws {
        let rb = DequantLayout.rowsPerBlock
        rowBlocks = (m.rows + rb - 1) / rb
        width = m.bits <= 2 ? 2 : m.bits <= 4 ? 4 : 8
        let columnsPerStep = 32 / width
        let steps = m.cols / columnsPerStep
        blockCodeBytes = steps * 32
        codes = try AlignedBuffer(byteCount: try checkedProduct(rowBlocks, blockCodeBytes, what: "dequant layout"))
        params = try GroupParameters(count: try checkedProduct(rowBlocks, m.groupsPerRow, 16, what: "dequant layout"),
                                     half: GroupParameters.halfExact(m), what: "dequant layout")
        let out = codes.bytes(), par = params, width = self.width, groups = m.groupsPerRow
        let blockBytes = blockCodeBytes
        let groupSize = m.groupSize
        let stepsPerGroup = groupSize / columnsPerStep
        parallelFor(rowBlocks) { block in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: groupSize) { qbuf in
                let q = qbuf.baseAddress!
                for r in 0..<rb {
                    let row = block * rb + r
                    guard row < m.rows else { continue }
                    for g in 0..<groups {
                        // Unpack the group's codes from its bit planes, then interleave them.
                        m.groupCodes(row: row, group: g, into: q)
                        for s in 0..<stepsPerGroup {
                            let unit = out + block * blockBytes + (g * stepsPerGroup + s) * 32 + 4 * r
                            let c = q + s * columnsPerStep
                            // Byte j holds columns j + 4t at bits t·width.
                            switch width {
                            case 2: for j in 0..<4 {
                                unit[j] = c[j] | c[j + 4] &<< 2 | c[j + 8] &<< 4 | c[j + 12] &<< 6
                            }
                            case 4: for j in 0..<4 { unit[j] = c[j] | c[j + 4] &<< 4 }
                            default: for j in 0..<4 { unit[j] = c[j] }
                            }
                        }
                    }
                }
            }
            for g in 0..<groups {
                for r in 0..<rb where block * rb + r < m.rows {
                    par.set((block * groups + g) * 16 + r, m.scale(row: block * rb + r, group: g))
                    par.set((block * groups + g) * 16 + 8 + r, m.offset(row: block * rb + r, group: g))
                }
            }
        }
    }

    /// The weight at (row, col): d·q + m with q read back from the interleaved codes. Not for hot loops.
    public func weight(row: Int, col: Int, groupSize: Int) -> Float {
        let rb = DequantLayout.rowsPerBlock, block = row / rb, r = row % rb
        let within = col % columnsPerStep
        let byte = codes.bytes()[block * blockCodeBytes + (col / columnsPerStep) * 32 + 4 * r + within % 4]
        let q = (Int(byte) >> ((within / 4) * width)) & ((1 << width) - 1)
        let groups = blockCodeBytes / 32 * columnsPerStep / groupSize
        let first = (block * groups + col / groupSize) * 16 + r
        return params.get(first) * Float(q) + params.get(first + 8)
    }
}

extension DequantLayout {
    /// Σx per activation row and group, at sums[i·groups + g]: the float paths' offset terms.
    package static func groupSums(_ x: UnsafePointer<Float>, n: Int, cols: Int, groupSize: Int,
                                  into sums: UnsafeMutablePointer<Float>) {
        let groups = cols / groupSize
        for i in 0..<n {
            for g in 0..<groups {
                var s: Float = 0
                for k in 0..<groupSize { s += x[i * cols + g * groupSize + k] }
                sums[i * groups + g] = s
            }
        }
    }
}
