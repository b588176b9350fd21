/// The dequant (llama.cpp style) family's portable paths, which read the canonical layout:
/// - int8 activations (the default, and the readable reference of `DequantKernelAVX2`):
///     y += d·sa·Σₖ qₖ·qaₖ + m·sa·Σₖ qaₖ   (x ≈ sa·qa per group, `Int8Activations`);
/// - float activations (act_bits = 32): unpack the codes to floats and
///     y += d·Σₖ qₖ·xₖ + m·Σₖ xₖ,
///   no activation rounding, so error ≤ 1e-6 against Float64.
package enum DequantKernel {
    /// Int8-activation path, one activation row whose codes are at `actBase`, rows in `rows`.
    static func portableInt8(_ m: QuantizedMatrix, acts: Int8Activations, actBase: UnsafeMutableRawPointer,
                             y: UnsafeMutablePointer<Float>, rows: Range<Int>) {
        let qa = acts.codes(actBase), sa = acts.scales(actBase), sums = acts.sums(actBase)
        let groups = m.groupsPerRow, gs = m.groupSize
        for r in rows {
            var total: Float = 0
            for g in 0..<groups {
                var dot: Int32 = 0
                for k in 0..<gs { dot += Int32(m.code(row: r, col: g * gs + k)) * Int32(qa[g * gs + k]) }
                total += m.scale(row: r, group: g) * sa[g] * Float(dot)
                    + m.offset(row: r, group: g) * sa[g] * Float(sums[g])
            }
            y[r] = total
        }
    }

    /// The int8 path of the portable tier: `portableInt8`'s sums for n activation rows (row i's
    /// codes at `actBase + i·actStride`), each group's codes unpacked to bytes once for all n
    /// rows, and each dot product a plain byte loop that the compiler vectorizes (SSE2, NEON).
    /// `portableInt8` reads every code through `code(row:col:)`: 0.6 GFLOP/s on 2 threads for a
    /// 2-bit 4096×4096 product, too slow for the real-model tests at the portable tier.
    static func unpackedInt8(_ m: QuantizedMatrix, acts: Int8Activations, actBase: UnsafeMutableRawPointer,
                             actStride: Int,
                             n: Int, y: UnsafeMutablePointer<Float>, rows: Range<Int>) {
        let groups = m.groupsPerRow, gs = m.groupSize, outStride = m.rows
        let scales = m.scales.floats(), offsets = m.offsets.floats()
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: gs) { buffer in
            let q = buffer.baseAddress!
            for r in rows {
                for i in 0..<n { y[i * outStride + r] = 0 }
                for g in 0..<groups {
                    m.groupCodes(row: r, group: g, into: q)
                    let d = scales[r * groups + g], off = offsets[r * groups + g]
                    for i in 0..<n {
                        let base = actBase + i * actStride
                        let qa = UnsafePointer(acts.codes(base) + g * gs)
                        var dot: Int32 = 0
                        for k in 0..<gs { dot &+= Int32(q[k]) &* Int32(qa[k]) }
                        let sa = acts.scales(base)[g]
                        y[i * outStride + r] += d * sa * Float(dot) + off * sa * Float(acts.sums(base)[g])
                    }
                }
            }
        }
    }

    /// Scratch per activation row: Σx per group.
    static func workspaceBytes(_ m: QuantizedMatrix, n: Int) -> Int { n * m.groupsPerRow * 4 + 64 }


    static func multiplyFloat(_ m: QuantizedMatrix, x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>,
                              workspace: UnsafeMutableRawPointer) {
        let groups = m.groupsPerRow, gs = m.groupSize, cols = m.cols
        let sums = workspace.assumingMemoryBound(to: Float.self)
        DequantLayout.groupSums(x, n: n, cols: cols, groupSize: gs, into: sums)
        let scales = m.scales.floats(), offsets = m.offsets.floats()
        parallelRanges(m.rows) { rows in
            // 128 codes and 128 floats of them: the largest group, on this thread's stack.
            withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 16 + 4) { qbuf in
                let q = UnsafeMutableRawPointer(qbuf.baseAddress!).assumingMemoryBound(to: Float.self)
                let bytes = UnsafeMutableRawPointer(qbuf.baseAddress! + 16).assumingMemoryBound(to: UInt8.self)
                for r in rows {
                    for g in 0..<groups {
                        m.groupCodes(row: r, group: g, into: bytes)
                        for k in 0..<gs { q[k] = Float(bytes[k]) }
                        let d = scales[r * groups + g], off = offsets[r * groups + g]
                        for i in 0..<n {
                            let xg = x + i * cols + g * gs
                            var acc = SIMD8<Float>()
                            for v in 0..<(gs / 8) {
                                let xv = UnsafeRawPointer(xg + 8 * v).loadUnaligned(as: SIMD8<Float>.self)
                                acc += qbuf[v] * xv  // not `addProduct`: see `FloatTile.product`
                            }
                            let prior: Float = g == 0 ? 0 : y[i * m.rows + r]
                            y[i * m.rows + r] = prior + d * acc.sum() + off * sums[i * groups + g]
                        }
                    }
                }
            }
        }
    }
}

extension DequantKernel {
    /// 16-bit activations as two int8 passes: each row x is followed by its rounding residual
    /// r = x − sa·qa (|r| ≤ sa/2), which the int8 kernel rounds again with its own, ~254× finer
    /// scale; y = W·x' + W·r'. The two rows run in one tile of the int8 kernel, sharing each
    /// weight unpack, and the result is as close to float activations as the weights' own
    /// rounding makes worthwhile (error ~1e-7 where int8 gives ~4e-5).
    package static func multiplySplit(rows: Int, cols: Int, groupSize: Int, x: UnsafePointer<Float>, n: Int,
                                      y: UnsafeMutablePointer<Float>,
                                      int8: (UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>) throws
                                          -> Void) throws {
        let acts = Int8Activations(cols: cols, groupSize: groupSize)
        let rowBytes = Int8Activations.byteCount(cols: cols, groupSize: groupSize)
        let floats = try checkedProduct(2 * n, cols + rows, what: "workspace")
        let ws = try Workspace.current.reserve(try checkedProduct(floats, 4, what: "workspace") + n * rowBytes, slot: 2)
        let split = ws.assumingMemoryBound(to: Float.self), ySplit = split + 2 * n * cols
        let roundedRows = UnsafeMutableRawPointer(ySplit + 2 * n * rows)
        parallelFor(n) { i in
            let rounded = roundedRows + i * rowBytes, q = acts.codes(rounded), sa = acts.scales(rounded)
            let xi = x + i * cols, hi = split + 2 * i * cols, lo = hi + cols
            acts.quantize(xi, into: rounded)
            hi.update(from: xi, count: cols)
            // Group by group: groupSize is not a constant here, so finding a column's scale by
            // division would cost a slow integer division per column.
            for g in 0..<(cols / groupSize) {
                let scale = sa[g]
                for c in (g * groupSize)..<((g + 1) * groupSize) { lo[c] = xi[c] - scale * Float(q[c]) }
            }
        }
        try int8(split, 2 * n, ySplit)
        parallelFor(n) { i in
            for r in 0..<rows { y[i * rows + r] = ySplit[2 * i * rows + r] + ySplit[(2 * i + 1) * rows + r] }
        }
    }
}
