import Synchronization

/// Imports of weights that were quantized elsewhere. Nothing is requantized: the codes are kept,
/// and each group's (d, m) is derived so that d·q + m equals the source's own dequantization.
public enum Importer {
    /// Zero-point convention of GPTQ checkpoints.
    public enum GPTQZeros: Sendable {
        /// AutoGPTQ / transformers "gptq" v1 files store z − 1: w = s·(q − (stored + 1)).
        case storedMinusOne
        /// "gptq_v2" files (and AWQ-style exports after unpacking) store z itself: w = s·(q − stored).
        case exact
    }

    /// GPTQ layout for W (rows = out_features, cols = in_features), b ∈ {1, 2, 4}, pack = 32 / b:
    ///   qweight int32 [cols / pack, rows]: bits t·b ..< (t+1)·b of qweight[i, j] are q[j, i·pack + t]
    ///   qzeros  int32 [cols / G, rows / pack]: bits t·b ..< (t+1)·b of qzeros[g, i] are z[g, i·pack + t]
    ///   scales  float [cols / G, rows]
    /// (3-bit GPTQ packs codes across word boundaries and is not supported.)
    public static func gptq(qweight: UnsafePointer<Int32>, qzeros: UnsafePointer<Int32>, scales: UnsafePointer<Float>,
                            rows: Int, cols: Int, bits: Int, groupSize: Int,
                            zeros: GPTQZeros = .storedMinusOne) throws -> QuantizedMatrix {
        guard [1, 2, 4].contains(bits) else {
            throw LowBitError(.unsupported, "GPTQ import supports 1, 2 and 4 bits, not \(bits)")
        }
        try validateShape(rows: rows, cols: cols, groupSize: groupSize)
        let pack = 32 / bits
        guard rows % pack == 0 else {
            throw LowBitError(.invalidArgument,
                              "GPTQ qzeros packs \(pack) rows per int32: rows \(rows) is not a multiple of \(pack)")
        }
        let groups = cols / groupSize
        for i in 0..<(groups * rows) where !scales[i].isFinite {
            throw LowBitError(.invalidArgument,
                              "GPTQ scale [\(i / rows), \(i % rows)] is \(scales[i]): scales must be finite")
        }
        let m = try QuantizedMatrix(rows: rows, cols: cols, groupSize: groupSize, type: .integer(bits: bits),
                                    symmetric: false)
        let mask = UInt32((1 << bits) - 1)
        let zeroShift: Float = zeros == .storedMinusOne ? 1 : 0
        parallelFor(rows) { r in
            for g in 0..<groups {
                let zword = UInt32(bitPattern: qzeros[g * (rows / pack) + r / pack])
                let z = Float((zword >> UInt32((r % pack) * bits)) & mask) + zeroShift
                let d = scales[g * rows + r]
                m.scales.floats()[r * groups + g] = d
                m.offsets.floats()[r * groups + g] = -d * z
            }
            for c in 0..<cols {
                let word = UInt32(bitPattern: qweight[(c / pack) * rows + r])
                m.setCode(Int((word >> UInt32((c % pack) * bits)) & mask), row: r, col: c)
            }
        }
        return m
    }

    /// Ternary weights t ∈ {−1, 0, +1} (int8, row-major) with scales: 1 (per tensor), `rows`
    /// (per row) or rows · cols / G (per group). w = scale · t.
    public static func ternary(values: UnsafePointer<Int8>, scales: UnsafePointer<Float>, scaleCount: Int,
                               rows: Int, cols: Int, groupSize: Int) throws -> QuantizedMatrix {
        try validateShape(rows: rows, cols: cols, groupSize: groupSize)
        let groups = cols / groupSize
        guard scaleCount == 1 || scaleCount == rows || scaleCount == rows * groups else {
            throw LowBitError(.sizeMismatch,
                              "ternary import needs 1, \(rows) (per row) or \(rows * groups) (per group) scales, got "
                              + "\(scaleCount)")
        }
        for i in 0..<scaleCount where !scales[i].isFinite {
            throw LowBitError(.invalidArgument, "ternary scale \(i) is \(scales[i]): scales must be finite")
        }
        for i in 0..<(rows * cols) where values[i] < -1 || values[i] > 1 {
            throw LowBitError(.invalidArgument,
                              "ternary value [\(i / cols), \(i % cols)] is \(values[i]): values must be -1, 0 or +1")
        }
        let m = try QuantizedMatrix(rows: rows, cols: cols, groupSize: groupSize, type: .ternary, symmetric: true)
        parallelFor(rows) { r in
            for g in 0..<groups {
                let d = scaleCount == 1 ? scales[0] : scaleCount == rows ? scales[r] : scales[r * groups + g]
                m.scales.floats()[r * groups + g] = d
                m.offsets.floats()[r * groups + g] = -d
            }
            for c in 0..<cols { m.setCode(Int(values[r * cols + c]) + 1, row: r, col: c) }
        }
        return m
    }

    /// A rows × cols tensor of ggml blocks whose groups of 32 are scale·q + offset with integer
    /// q (`GGMLBlocks.integerGroupBits`: Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, TQ1_0, TQ2_0),
    /// imported as lowbit codes of that width with group size 32, without requantizing: the
    /// matrix's values are the file's bit for bit (but for a zero's sign). Kernel layouts keep each group's scale and
    /// offset as Float16, exact for the 32-element types (Q4_0's offset −8d is a power-of-two
    /// multiple) and within 2^-11 for the K-quants' products d·scale and dmin·minimum; a tensor
    /// with a group whose parameters are beyond Float16's range is unsupported.
    public static func ggmlBlocks(_ raw: UnsafeRawBufferPointer, type: GGUFFile.TensorType, rows: Int,
                                  cols: Int) throws -> QuantizedMatrix {
        guard let bits = GGMLBlocks.integerGroupBits(type) else {
            throw LowBitError(.unsupported, "\(type) blocks are not integer groups of 32")
        }
        try validateShape(rows: rows, cols: cols, groupSize: 32)
        let (elements, blockBytes) = type.block
        guard cols % elements == 0, raw.count == rows * (cols / elements) * blockBytes else {
            throw LowBitError(.sizeMismatch, "\(type) data is \(raw.count) bytes, which \(rows) x \(cols) "
                              + "elements in blocks of \(elements) do not fill")
        }
        let m = try QuantizedMatrix(rows: rows, cols: cols, groupSize: 32, type: .integer(bits: bits), symmetric: false,
                                    allowWideCodes: bits == 5)
        let blocksPerRow = cols / elements, groupsPerBlock = elements / 32, groups = cols / 32
        let failed = Atomic<Int>(-1)
        parallelFor(rows) { r in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: elements) { q in
                for b in 0..<blocksPerRow {
                    let first = r * groups + b * groupsPerBlock
                    let scales = m.scales.floats() + first, offsets = m.offsets.floats() + first
                    GGMLBlocks.integerGroups(type, raw.baseAddress! + (r * blocksPerRow + b) * blockBytes,
                                             codes: q.baseAddress!, scales: scales, offsets: offsets)
                    for g in 0..<groupsPerBlock {
                        guard Float(Float16(scales[g])).isFinite, Float(Float16(offsets[g])).isFinite else {
                            failed.store(first + g, ordering: .relaxed)
                            return
                        }
                        m.setGroupCodes(q.baseAddress! + 32 * g, row: r, group: b * groupsPerBlock + g)
                    }
                }
            }
        }
        let bad = failed.load(ordering: .relaxed)
        guard bad < 0 else {
            throw LowBitError(.unsupported, "\(type) group \(bad) has a scale or minimum beyond Float16, which "
                              + "lowbit's kernels keep (--weights reference runs it)")
        }
        return m
    }
}
