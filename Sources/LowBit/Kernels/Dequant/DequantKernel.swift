/// The dequant (llama.cpp style) family, float-activation path: per row and group, unpack the
/// codes to floats and take a float dot product with the activations:
///   y += d·Σₖ qₖ·xₖ + m·Σₖ xₖ.
/// No activation rounding, so it is the family's accurate path (error ≤ 1e-6 against Float64).
enum DequantKernel {
    /// Scratch per activation row: Σx per group.
    static func workspaceBytes(_ m: QuantizedMatrix, n: Int) -> Int { n * m.groupsPerRow * 4 + 64 }

    static func multiply(_ m: QuantizedMatrix, x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>,
                         workspace: UnsafeMutableRawPointer) {
        let groups = m.groupsPerRow, gs = m.groupSize, bits = m.bits, cols = m.cols
        let sums = workspace.assumingMemoryBound(to: Float.self)
        for i in 0..<n {
            for g in 0..<groups {
                var s: Float = 0
                for k in 0..<gs { s += x[i * cols + g * gs + k] }
                sums[i * groups + g] = s
            }
        }
        let codes = m.codes.bytes(), scales = m.scales.floats(), offsets = m.offsets.floats()
        let planeBytes = m.planeBytes
        parallelRanges(m.rows) { rows in
            // 128 floats of unpacked codes: the largest group, on this thread's stack.
            withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 16) { qbuf in
                let q = UnsafeMutableRawPointer(qbuf.baseAddress!).assumingMemoryBound(to: Float.self)
                for r in rows {
                    for g in 0..<groups {
                        let planes = codes + (r * groups + g) * bits * planeBytes
                        for k in 0..<gs {
                            var code: UInt8 = 0
                            for p in 0..<bits { code |= ((planes[p * planeBytes + k / 8] >> UInt8(k % 8)) & 1) << UInt8(p) }
                            q[k] = Float(code)
                        }
                        let d = scales[r * groups + g], off = offsets[r * groups + g]
                        for i in 0..<n {
                            let xg = x + i * cols + g * gs
                            var acc = SIMD8<Float>()
                            for v in 0..<(gs / 8) {
                                let xv = UnsafeRawPointer(xg + 8 * v).loadUnaligned(as: SIMD8<Float>.self)
                                acc.addProduct(qbuf[v], xv)
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
