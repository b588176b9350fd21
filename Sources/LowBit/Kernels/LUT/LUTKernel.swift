/// The LUT family's portable path, which is also its readable reference: per row, per group,
/// per bit plane, one table lookup per k-group (see `LUTTables` for the identity), planes
/// recombined with 2ᵖ, then
///   y += (d/2)·ts·Σₚ 2ᵖ·Lₚ + (m + d·(2ᵇ − 1)/2)·Σx.
/// The SIMD tiers (`LUTKernelAVX2`) do the same integer sums on a permuted layout.
enum LUTKernel {
    /// y[r] for r in `rows`, for one activation row whose tables are at `tableBase`.
    static func portable(_ m: QuantizedMatrix, tables: LUTTables, tableBase: UnsafeMutableRawPointer,
                         y: UnsafeMutablePointer<Float>, rows: Range<Int>) {
        let t = tables.tables(tableBase), ts = tables.tableScales(tableBase), sx = tables.groupSums(tableBase)
        let bits = m.bits, groups = m.groupsPerRow, kgroupsPerGroup = m.groupSize / 4
        let levels = Float((1 << bits) - 1)
        let codes = m.codes.bytes(), scales = m.scales.floats(), offsets = m.offsets.floats()
        for r in rows {
            var sum: Float = 0
            for g in 0..<groups {
                var planesTotal: Int32 = 0
                for p in 0..<bits {
                    let plane = codes + ((r * groups + g) * bits + p) * m.planeBytes
                    var lookups: Int32 = 0
                    for j in 0..<kgroupsPerGroup {
                        let index = Int((plane[j / 2] >> UInt8(4 * (j & 1))) & 0xF)
                        lookups += Int32(t[16 * (g * kgroupsPerGroup + j) + index])
                    }
                    planesTotal += lookups << Int32(p)
                }
                let d = scales[r * groups + g], off = offsets[r * groups + g]
                sum += d / 2 * ts[g] * Float(planesTotal) + (off + d * levels / 2) * sx[g]
            }
            y[r] = sum
        }
    }

    /// Y = X·Wᵀ through tables: the SIMD tier's kernel on the matrix's `LUTLayout`, or on the
    /// portable tier one table set per activation row in this thread's workspace and `portable`
    /// per activation row.
    static func multiply(_ m: QuantizedMatrix, x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>) throws {
        let rows = m.rows, cols = m.cols, groupSize = m.groupSize
        if let tier = Tiers.packed {
            return try tier.lutMultiply(try m.lutLayout(), rows: rows, cols: cols, groupSize: groupSize, x: x, n: n,
                                        y: y)
        }
        let tables = LUTTables(cols: cols, groupSize: groupSize)
        let tableBytes = LUTTables.stride(cols: cols, groupSize: groupSize)
        let ws = try Workspace.current.reserve(try checkedProduct(n, tableBytes, what: "workspace"))
        for i in 0..<n { tables.buildScalar(x + i * cols, into: ws + i * tableBytes) }
        parallelRanges(rows) { range in
            for i in 0..<n { portable(m, tables: tables, tableBase: ws + i * tableBytes, y: y + i * rows, rows: range) }
        }
    }
}
