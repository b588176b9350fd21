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
            throw LowBitError(.invalidArgument, "GPTQ qzeros packs \(pack) rows per int32: rows \(rows) is not a multiple of \(pack)")
        }
        let groups = cols / groupSize
        for i in 0..<(groups * rows) where !scales[i].isFinite {
            throw LowBitError(.invalidArgument, "GPTQ scale [\(i / rows), \(i % rows)] is \(scales[i]): scales must be finite")
        }
        let m = try QuantizedMatrix(rows: rows, cols: cols, groupSize: groupSize, type: .integer(bits: bits), symmetric: false)
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
            throw LowBitError(.sizeMismatch, "ternary import needs 1, \(rows) (per row) or \(rows * groups) (per group) scales, got \(scaleCount)")
        }
        for i in 0..<scaleCount where !scales[i].isFinite {
            throw LowBitError(.invalidArgument, "ternary scale \(i) is \(scales[i]): scales must be finite")
        }
        for i in 0..<(rows * cols) where values[i] < -1 || values[i] > 1 {
            throw LowBitError(.invalidArgument, "ternary value [\(i / cols), \(i % cols)] is \(values[i]): values must be -1, 0 or +1")
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

    /// ggml Q4_0 or Q4_1 blocks of a rows × cols tensor, imported as 4-bit codes with group size
    /// 32, without requantizing. A Q4_1 block (20 bytes) holds d (f16), m (f16) and 32 codes
    /// (element j in the low nibble of byte j, element j + 16 in the high one): w = d·q + m,
    /// exactly lowbit's (d, m) form. A Q4_0 block (18 bytes) has no m: w = d·(q − 8), which is
    /// m = −8d (exact in Float16 as in Float32: a power-of-two multiple).
    public static func ggml4Bit(_ raw: UnsafeRawBufferPointer, rows: Int, cols: Int,
                                hasMinimum: Bool) throws -> QuantizedMatrix {
        try validateShape(rows: rows, cols: cols, groupSize: 32)
        let groups = cols / 32, blockBytes = hasMinimum ? 20 : 18, codesAt = hasMinimum ? 4 : 2
        let typeName = hasMinimum ? "Q4_1" : "Q4_0"
        guard raw.count == rows * groups * blockBytes else {
            throw LowBitError(.sizeMismatch, "\(typeName) data is \(raw.count) bytes, \(rows) x \(cols) needs "
                              + "\(rows * groups * blockBytes)")
        }
        let m = try QuantizedMatrix(rows: rows, cols: cols, groupSize: 32, type: .integer(bits: 4), symmetric: false)
        func half(_ o: Int) -> Float {
            Float(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt16.self))))
        }
        func minimum(_ block: Int) -> Float { hasMinimum ? half(block + 2) : -8 * half(block) }
        for i in 0..<(rows * groups) {
            let block = blockBytes * i
            guard half(block).isFinite, Float(Float16(minimum(block))).isFinite else {
                throw LowBitError(.badFormat, "\(typeName) block \(i) has a non-finite scale or minimum")
            }
        }
        parallelFor(rows) { r in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { q in
                for g in 0..<groups {
                    let block = blockBytes * (r * groups + g)
                    m.scales.floats()[r * groups + g] = half(block)
                    m.offsets.floats()[r * groups + g] = minimum(block)
                    for j in 0..<16 {
                        let byte = raw[block + codesAt + j]
                        q[j] = byte & 0x0F
                        q[j + 16] = byte >> 4
                    }
                    m.setGroupCodes(q.baseAddress!, row: r, group: g)
                }
            }
        }
        return m
    }
}
