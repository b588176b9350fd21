/// GGML block types whose elements are small integers v with a scale s and a minimum m per group
/// of 16 or 32 elements, w = s·v − m: Q2_K, Q3_K and Q6_K (sub-blocks of 16 in blocks of 256),
/// IQ4_NL, IQ4_XS (indices into a table of 16 non-uniform values, groups of 32) and Q8_0 (int8
/// values, blocks of 32). lowbit's codes cannot hold them (groups of 16, a value table, 8 bits),
/// so a model keeps the file's blocks and its products decode each block as they reach it
/// (`GroupedBlockLinear`, module LowBitModel).
package enum GroupedBlockType: Sendable {
    case q2_K, q3_K, q6_K, iq4_nl, iq4_xs, q8_0

    /// Elements per block.
    @inlinable package var elements: Int { self == .iq4_nl || self == .q8_0 ? 32 : 256 }
    /// Bytes per block.
    @inlinable package var blockBytes: Int {
        switch self {
        case .q2_K: return 84
        case .q3_K: return 110
        case .q6_K: return 210
        case .iq4_nl: return 18
        case .iq4_xs: return 136
        case .q8_0: return 34
        }
    }
    /// Elements per group (one scale, and minimum, each).
    @inlinable package var groupSize: Int { self == .iq4_nl || self == .iq4_xs || self == .q8_0 ? 32 : 16 }
    @inlinable package var groupsPerBlock: Int { elements / groupSize }
    /// Only Q2_K's groups have a minimum; every other type's m is 0.
    @inlinable package var hasMinimums: Bool { self == .q2_K }
    /// Rows a `GroupedBlockMatrix` interleaves: blocks of 32 elements are multiplied eight rows
    /// at a time, so that a product finishes eight rows' sums in one vector.
    @inlinable package var bandRows: Int { elements == 32 ? 8 : 1 }
}

/// A matrix of `type` blocks as `GroupedBlockLinear` holds it: the rows in bands of
/// `type.bandRows` (the last band holds the rest), each band's blocks column by column (block 0
/// of each of its rows, then block 1, ...). A kernel taking a band's rows together then reads
/// the weights as one stream; with one row a band, this is the file's row-major order.
package struct GroupedBlockMatrix {
    package let type: GroupedBlockType
    package let base: UnsafeRawPointer
    package let rows: Int, cols: Int

    @inlinable package init(_ type: GroupedBlockType, _ base: UnsafeRawPointer, rows: Int, cols: Int) {
        (self.type, self.base, self.rows, self.cols) = (type, base, rows, cols)
    }

    @inlinable package var blocksPerRow: Int { cols / type.elements }
    @inlinable package var rowBytes: Int { blocksPerRow * type.blockBytes }

    /// The first row of row r's band and the band's row count.
    @inlinable package func band(of r: Int) -> (first: Int, height: Int) {
        let first = r / type.bandRows * type.bandRows
        return (first, min(type.bandRows, rows - first))
    }

    /// Block b of row r.
    @inlinable package func block(row r: Int, _ b: Int) -> UnsafeRawPointer {
        let (first, height) = band(of: r)
        return base + first * rowBytes + (b * height + r - first) * type.blockBytes
    }

    /// Bytes from one of row r's blocks to its next.
    @inlinable package func blockStride(row r: Int) -> Int { band(of: r).height * type.blockBytes }

    /// Copies row-major blocks (the file's order) into `out` in this matrix's order.
    package func arrange(rowMajor: UnsafeRawPointer, into out: UnsafeMutableRawPointer) {
        guard type.bandRows > 1 else { return out.copyMemory(from: rowMajor, byteCount: rows * rowBytes) }
        for r in 0..<rows {
            for b in 0..<blocksPerRow {
                (out + (block(row: r, b) - base)).copyMemory(from: rowMajor + r * rowBytes + b * type.blockBytes,
                                                            byteCount: type.blockBytes)
            }
        }
    }
}

/// The reference decoding of `GroupedBlockType` blocks: the products ggml's decoder makes, in
/// its order, so s·v − m is the file's value bit for bit.
package enum GroupedBlocks {
    /// IQ4_NL's and IQ4_XS's 16 values.
    package static let iq4Values: [Int8] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]

    @usableFromInline @inline(__always) static func half(_ p: UnsafeRawPointer, _ offset: Int = 0) -> Float {
        Float(Float16(bitPattern: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
    }

    @usableFromInline @inline(__always) static func byte(_ p: UnsafeRawPointer, _ offset: Int) -> Int {
        Int(p.load(fromByteOffset: offset, as: UInt8.self))
    }

    /// One block's parameters as integers per group, sc and mn, with the block's Float factors
    /// d and dmin: s = d·sc and m = dmin·mn (dmin and mn are 0 but for Q2_K).
    /// - Q2_K {16 scale bytes (low nibble: sc, high: mn), 64 bytes of 2-bit codes, d, dmin}.
    /// - Q3_K {32 bytes of high bits, 64 bytes of low 2 bits, 12 bytes of 6-bit scales, d}:
    ///   sc = scale − 32, the scale's low 4 bits from byte 96 + g % 8 (high nibble for g ≥ 8),
    ///   its high 2 from byte 104 + g % 4 at bit 2·(g / 4).
    /// - Q6_K {128 bytes of low nibbles, 64 bytes of high 2 bits, 16 int8 scales sc, d}.
    /// - IQ4_NL {d, 16 index bytes}: sc = 1; IQ4_XS {d, 2 bytes of high scale bits, 4 bytes of low
    ///   scale nibbles, 128 index bytes}: sc = scale − 32.
    /// - Q8_0 {d, 32 int8 values}: sc = 1.
    /// Inlined, so that a tier's kernels convert d with their own instructions (F16C).
    @inlinable @inline(__always)
    package static func integerParameters(_ type: GroupedBlockType, _ p: UnsafeRawPointer,
                                          scales sc: UnsafeMutablePointer<Int16>,
                                          minimums mn: UnsafeMutablePointer<Int16>) -> (d: Float, dmin: Float) {
        switch type {
        case .q2_K:
            for g in 0..<16 { (sc[g], mn[g]) = (Int16(byte(p, g) & 0x0F), Int16(byte(p, g) >> 4)) }
            return (half(p, 80), half(p, 82))
        case .q3_K:
            // Four scales per 32-bit word: low nibbles of bytes 96–99, 100–103, then their high
            // nibbles, each byte k with 2 high bits from byte 104 + k at bits 0, 2, 4 and 6.
            @inline(__always) func word(_ offset: Int) -> UInt32 {
                UInt32(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            }
            let low0 = word(96), low1 = word(100), high = word(104), nibbles: UInt32 = 0x0F0F_0F0F
            @inline(__always) func four(_ w: Int, _ low: UInt32) {
                let scales = low | (high >> (2 * UInt32(w)) & 0x0303_0303) << 4
                for k in 0..<4 { (sc[4 * w + k], mn[4 * w + k]) = (Int16(scales >> (8 * UInt32(k)) & 0xFF) - 32, 0) }
            }
            four(0, low0 & nibbles)
            four(1, low1 & nibbles)
            four(2, low0 >> 4 & nibbles)
            four(3, low1 >> 4 & nibbles)
            return (half(p, 108), 0)
        case .q6_K:
            for g in 0..<16 { (sc[g], mn[g]) = (Int16(p.load(fromByteOffset: 192 + g, as: Int8.self)), 0) }
            return (half(p, 208), 0)
        case .iq4_nl, .q8_0:
            (sc[0], mn[0]) = (1, 0)
            return (half(p), 0)
        case .iq4_xs:
            let highBits = Int(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
            for g in 0..<8 {
                let low = byte(p, 4 + g / 2) >> (4 * (g % 2)) & 0x0F, high = highBits >> (2 * g) & 3
                (sc[g], mn[g]) = (Int16(low | high << 4) - 32, 0)
            }
            return (half(p), 0)
        }
    }

    /// One block's scales s = d·sc and minimums m = dmin·mn, a group each (`integerParameters`).
    @inlinable @inline(__always)
    package static func parameters(_ type: GroupedBlockType, _ p: UnsafeRawPointer,
                                   scales: UnsafeMutablePointer<Float>, minimums: UnsafeMutablePointer<Float>) {
        withUnsafeTemporaryAllocation(of: Int16.self, capacity: 32) { buffer in
            let sc = buffer.baseAddress!, mn = sc + 16
            let (d, dmin) = integerParameters(type, p, scales: sc, minimums: mn)
            for g in 0..<type.groupsPerBlock { (scales[g], minimums[g]) = (d * Float(sc[g]), dmin * Float(mn[g])) }
        }
    }

    /// One block's values v (type.elements of them), element j of the block:
    /// - Q2_K: 2 bits of byte 16 + 32·(j / 128) + j % 32, at bit 2·((j % 128) / 32).
    /// - Q3_K: the same 2 bits (from byte 32 on), minus 4 where bit j / 32 of byte j % 32 is clear.
    /// - Q6_K: a nibble of byte 64·(j / 128) + j % 64 (high where (j % 128) ≥ 64), with 2 high bits
    ///   from byte 128 + 32·(j / 128) + j % 32 at bit 2·((j % 128) / 32), minus 32.
    /// - IQ4_NL: the table's value at byte 2 + j % 16's low (j < 16) or high nibble; IQ4_XS the same
    ///   per group of 32, from byte 8 + 16·(j / 32).
    /// - Q8_0: byte 2 + j as a signed byte.
    package static func values(_ type: GroupedBlockType, _ p: UnsafeRawPointer, into v: UnsafeMutablePointer<Int8>) {
        switch type {
        case .q2_K:
            for j in 0..<256 {
                let w = j % 128
                v[j] = Int8(byte(p, 16 + j / 128 * 32 + w % 32) >> (2 * (w / 32)) & 3)
            }
        case .q3_K:
            for j in 0..<256 {
                let w = j % 128, low = byte(p, 32 + j / 128 * 32 + w % 32) >> (2 * (w / 32)) & 3
                v[j] = Int8(low - (byte(p, j % 32) >> (j / 32) & 1 ^ 1) << 2)
            }
        case .q6_K:
            for j in 0..<256 {
                let h = j / 128, w = j % 128
                let low = byte(p, h * 64 + w % 64) >> (4 * (w / 64)) & 0x0F
                let high = byte(p, 128 + h * 32 + w % 32) >> (2 * (w / 32)) & 3
                v[j] = Int8(low | high << 4 - 32)
            }
        case .iq4_nl:
            for j in 0..<16 {
                v[j] = iq4Values[byte(p, 2 + j) & 0x0F]
                v[j + 16] = iq4Values[byte(p, 2 + j) >> 4]
            }
        case .iq4_xs:
            for g in 0..<8 {
                for w in 0..<32 { v[32 * g + w] = iq4Values[byte(p, 8 + 16 * g + w % 16) >> (4 * (w / 16)) & 0x0F] }
            }
        case .q8_0:
            for j in 0..<32 { v[j] = p.load(fromByteOffset: 2 + j, as: Int8.self) }
        }
    }

    /// For each of `count` blocks at `blocks`, `stride` bytes apart: its scales and minimums
    /// decoded (`parameters`), then body(block, its type.elements floats of `out`, scales,
    /// minimums, 256 bytes of scratch for its values). The frame the tiers' `groupedBlockWeights` fill.
    @inlinable @inline(__always)
    package static func forEachBlock(_ type: GroupedBlockType, _ blocks: UnsafeRawPointer, count: Int, stride: Int,
                                     into out: UnsafeMutablePointer<Float>,
                                     _ body: (UnsafeRawPointer, UnsafeMutablePointer<Float>,
                                              UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
                                              UnsafeMutablePointer<Int8>) -> Void) {
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: 256) { v in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 32) { scratch in
                let s = scratch.baseAddress!, m = s + 16
                for b in 0..<count {
                    let p = blocks + b * stride
                    parameters(type, p, scales: s, minimums: m)
                    body(p, out + b * type.elements, s, m, v.baseAddress!)
                }
            }
        }
    }
}
