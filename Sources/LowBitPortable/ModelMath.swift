#if canImport(Glibc)
import Glibc
#endif
import LowBitCore

/// The model layer's math as written: attention, SwiGLU, Q8_0 rows and grouped blocks.
extension PortableKernels {
    package static func attend(_ q: UnsafePointer<Float>, queries: Int, keys: UnsafePointer<Float16>,
                               values: UnsafePointer<Float16>,
                       stride: Int, length: Int, dim: Int, scale: Float, scores: UnsafeMutablePointer<Float>,
                       into out: UnsafeMutablePointer<Float>) {
        // The cache's keys and values widened to floats once for every query of the group.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * length * dim) { buffer in
            let k = buffer.baseAddress!, v = k + length * dim
            for t in 0..<length {
                HalfFloats.widen(keys + t * stride, into: k + t * dim, count: dim)
                HalfFloats.widen(values + t * stride, into: v + t * dim, count: dim)
            }
            for j in 0..<queries {
                attendOne(q + j * dim, keys: k, values: v, stride: dim, length: length, dim: dim, scale: scale,
                          scores: scores + j * length, into: out + j * dim)
            }
        }
    }

    /// The formula as written for one query, 8 lanes at a time where `dim` allows.
    package static func attendOne(_ q: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                                  stride: Int, length: Int, dim: Int, scale: Float,
                                  scores: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        // A scalar sum is a serial chain the compiler may not reorder: 8 lanes where dim allows
        // (multiply, then add: a fused `addProduct` is a libm `fmaf` call per lane without FMA).
        let wide = dim % 8 == 0
        var maxScore = -Float.infinity
        for t in 0..<length {
            let k = keys + t * stride
            var s: Float = 0
            if wide {
                var acc = SIMD8<Float>()
                for i in Swift.stride(from: 0, to: dim, by: 8) {
                    acc += UnsafeRawPointer(q + i).loadUnaligned(as: SIMD8<Float>.self)
                         * UnsafeRawPointer(k + i).loadUnaligned(as: SIMD8<Float>.self)
                }
                s = acc.sum()
            } else {
                for i in 0..<dim { s += q[i] * k[i] }
            }
            scores[t] = s * scale
            maxScore = max(maxScore, scores[t])
        }
        var total: Float = 0
        for t in 0..<length { scores[t] = exp(scores[t] - maxScore); total += scores[t] }
        for i in 0..<dim { out[i] = 0 }
        for t in 0..<length {
            let w = scores[t] / total, v = values + t * stride
            if wide {
                for i in Swift.stride(from: 0, to: dim, by: 8) {
                    var o = UnsafeRawPointer(out + i).loadUnaligned(as: SIMD8<Float>.self)
                    o += SIMD8(repeating: w) * UnsafeRawPointer(v + i).loadUnaligned(as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(out + i).storeBytes(of: o, as: SIMD8<Float>.self)
                }
            } else {
                for i in 0..<dim { out[i] += w * v[i] }
            }
        }
    }

    /// out[i] = x[i] rounded to the nearest Float16 (ties to even), saturated at ±65504.
    package static func halves(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float16>, count: Int) {
        for i in 0..<count { out[i] = Float16(HalfFloats.saturated(x[i])) }
    }

    package static func swiGLU(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { gate[i] = gate[i] / (1 + exp(-gate[i])) * up[i] }
    }

    /// y[r] = Σ_b d[r, b] · Σ_j q[r, 32b + j] · x[32b + j], one block and one activation row at a time.
    package static func q8_0Rows(_ m: GroupedBlockMatrix, x: UnsafePointer<Float>, n: Int,
                                 y: UnsafeMutablePointer<Float>, range: Range<Int>) {
        for r in range {
            for i in 0..<n {
                var total: Float = 0
                for b in 0..<m.blocksPerRow {
                    let block = m.block(row: r, b), xb = x + i * m.cols + 32 * b
                    var dot: Float = 0
                    for j in 0..<32 { dot += Float(block.load(fromByteOffset: 2 + j, as: Int8.self)) * xb[j] }
                    let d = Float(Float16(bitPattern: UInt16(littleEndian: block.loadUnaligned(as: UInt16.self))))
                    total += d * dot
                }
                y[i * m.rows + r] = total
            }
        }
    }

    /// Each block's parameters and values from the reference decoder, then s·v − m per element.
    package static func groupedBlockWeights(_ type: GroupedBlockType, _ blocks: UnsafeRawPointer, count: Int,
                                            stride: Int, into out: UnsafeMutablePointer<Float>) {
        GroupedBlocks.forEachBlock(type, blocks, count: count, stride: stride, into: out) { p, y, s, m, v in
            GroupedBlocks.values(type, p, into: v)
            for j in 0..<type.elements { y[j] = s[j / type.groupSize] * Float(v[j]) - m[j / type.groupSize] }
        }
    }

    /// The formula of `groupedBlockRows`, one block and one activation row at a time: with
    /// s = d·sc and m = dmin·mn (`GroupedBlocks.integerParameters`) and x ≈ sa·qa per block,
    ///     y[r] += sa · (d · Σₖ sc·v·qa − dmin · Σₖ mn·qa)
    /// where both sums are exact integers.
    package static func groupedBlockRows(_ m: GroupedBlockMatrix, acts: Int8Activations,
                                         actBase: UnsafeMutableRawPointer, actStride: Int, n: Int,
                                         y: UnsafeMutablePointer<Float>, range: Range<Int>) {
        let type = m.type, rows = m.rows, elements = type.elements, groupSize = type.groupSize
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: 256) { v in
            withUnsafeTemporaryAllocation(of: Int16.self, capacity: 32) { parameters in
                let v = v.baseAddress!, sc = parameters.baseAddress!, mn = sc + 16
                for r in range {
                    for i in 0..<n { y[i * rows + r] = 0 }
                    for b in 0..<m.blocksPerRow {
                        let p = m.block(row: r, b)
                        let (d, dmin) = GroupedBlocks.integerParameters(type, p, scales: sc, minimums: mn)
                        GroupedBlocks.values(type, p, into: v)
                        for i in 0..<n {
                            let base = actBase + i * actStride, qa = acts.codes(base) + b * elements
                            var dot: Int32 = 0, minimum: Int32 = 0
                            for k in 0..<elements {
                                dot += Int32(sc[k / groupSize]) * Int32(v[k]) * Int32(qa[k])
                                minimum += Int32(mn[k / groupSize]) * Int32(qa[k])
                            }
                            y[i * rows + r] += acts.scales(base)[b] * (d * Float(dot) - dmin * Float(minimum))
                        }
                    }
                }
            }
        }
    }
}
