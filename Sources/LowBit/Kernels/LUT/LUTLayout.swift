/// The LUT family's weight layout for AVX2 (`vpshufb` looks up 16 entries per 128-bit lane).
///
/// Rows are taken 16 at a time ("row blocks", the last one padded with zero codes) and columns
/// 16 at a time ("chunks" = 4 k-groups). For one row block and one chunk, the codes take
/// 32·b bytes, as 32-byte units:
///   - a plane pair (p, p+1), rows 8s ..< 8s+8 (s = 0, 1): byte 16·lane + 2·i + e holds, for
///     row 8s + i and plane p + e, the index of k-group 4c + lane (low nibble) and of
///     k-group 4c + 2 + lane (high nibble);
///   - the lone top plane when b is odd: byte 16·lane + i holds row i's indices, nibbles as above.
/// Units follow pair 0 (s = 0, 1), pair 1 (s = 0, 1), lone. So one 32-byte load gives 64 indices,
/// the low nibbles look up in tables 4c | 4c+1 (one per lane) and the high ones in 4c+2 | 4c+3,
/// and `vpmaddubsw` with bytes (1, 2) adds a row's two planes into one int16.
///
/// A quantized matrix's row blocks are stored by quads (four consecutive blocks, the last quad
/// of a matrix may hold fewer; a sign matrix's quads are single blocks): within a quad, chunk c
/// of each of its blocks in turn, then chunk c + 1 (at 1 bit, chunks 2c and 2c + 1 of each block
/// in turn, so that a block's units fill whole cache lines), so the N = 1 kernel, which runs a
/// quad's blocks together, reads one sequential stream. Four streams 16 KiB apart (each block's
/// codes whole) read from DRAM at well under one stream's speed, software prefetching or not.
///
/// A quantized matrix's group parameters sit in the same stream: after each group's chunks of a
/// quad, the quad's blocks' parameters for that group in turn, per block 16 d then 16 m
/// (Float16 when all are exact Float16s, else Float32: `GroupParameters.halfExact`). As a
/// second stream they cost the N = 1 kernel from DRAM about what prefetching gains (2-bit, the
/// 11008×4096 dram case). A sign matrix stores no parameters: d = 2 and m = −1 everywhere.
public final class LUTLayout: @unchecked Sendable {
    public static let rowsPerBlock = 16
    /// Row blocks per quad in quantized weights' layouts (see above).
    static let weightBlocksPerQuad = 4
    /// 4, or 1 for a sign matrix: BitStack runs those at 16 activation rows or more, block by
    /// block with their codes in L2, where one stream of codes gains nothing.
    package let blocksPerQuad: Int
    public let rowBlocks: Int
    public let chunks: Int
    public let bits: Int
    /// Codes and, for a quantized matrix, its group parameters (see above).
    package let data: AlignedBuffer
    /// Whether the parameters are Float16 (else Float32).
    package let halfParams: Bool
    /// Groups per row with parameters of their own; 0 for a sign matrix.
    let paramGroups: Int

    /// Bytes ahead that the tiers' N = 1 quad kernels prefetch into L2. The hardware prefetchers
    /// alone leave a DRAM-streamed product well below read speed on the machines measured
    /// (docs/BENCHMARKS.md); 16 to 64 KiB ahead did the same, and the one stream of codes and
    /// parameters needs it more than two streams did.
    package static let quadPrefetchDistance = 32 * 1024

    /// Bytes ahead that the N = 1 quad kernels also prefetch into L1 at 1 to 3 bits, from what
    /// the L2 prefetch brought: it gains there, costs at 4 bits (where the loop is slower per
    /// byte and the hardware keeps up), and 1 KiB ahead is too little.
    package static let quadL1PrefetchDistance = 4 * 1024

    /// Bytes of one row block: its codes and, for a quantized matrix, its parameters.
    package let blockBytes: Int

    public var byteCount: Int { data.byteCount }
    public var blockCodeBytes: Int { chunks * 32 * bits }
    package var quads: Int { (rowBlocks + blocksPerQuad - 1) / blocksPerQuad }

    /// A ±1 matrix: d = 2 and m = −1 (so w = 2q − 1), with no parameters stored.
    public var isSignMatrix: Bool { paramGroups == 0 }

    /// Bytes of one parameter element: 2 (Float16) or 4.
    var paramElementBytes: Int { GroupParameters.elementBytes(half: halfParams) }
    /// Parameter bytes of one row block and group: 16 d and 16 m, none for a sign matrix.
    package var blockParamBytes: Int { isSignMatrix ? 0 : 32 * paramElementBytes }
    /// Bytes of all parameters.
    var paramByteCount: Int { rowBlocks * paramGroups * blockParamBytes }
    /// Chunks per parameter group (a sign matrix's rows are one group here).
    var chunksPerGroup: Int { isSignMatrix ? chunks : chunks / paramGroups }
    /// Bytes of one group of the quad holding a block: its blocks' units, then their parameters.
    @inline(__always)
    package func quadGroupBytes(quadSize: Int) -> Int { quadSize * (chunksPerGroup * 32 * bits + blockParamBytes) }

    /// The row blocks of the quads `quads`.
    package func blocks(ofQuads quads: Range<Int>) -> Range<Int> {
        (quads.lowerBound * blocksPerQuad)..<min(rowBlocks, quads.upperBound * blocksPerQuad)
    }

    /// Blocks in the quad of `block`: `blocksPerQuad`, or fewer in a matrix's last quad.
    @inline(__always)
    package func quadSize(ofBlock block: Int) -> Int { min(blocksPerQuad,
                                                           rowBlocks - block / blocksPerQuad * blocksPerQuad) }

    /// Byte offset of the quad that starts at block `first`.
    @inline(__always)
    package func quadOffset(first: Int) -> Int { first * blockBytes }

    /// Consecutive chunks of one block stored together within a quad: 2 at 1 bit (a 64-byte
    /// line), else 1. Group sizes and sign matrices' columns are multiples of 32, so rows and
    /// groups always hold whole runs.
    @inline(__always)
    package static func unitsPerRun(bits: Int) -> Int { bits == 1 ? 2 : 1 }

    /// Byte offset of the unit (32·bits bytes) of `block` and chunk `chunk` in `data`.
    @inline(__always)
    package func unitOffset(block: Int, chunk: Int) -> Int {
        // A sign matrix's units simply follow each other (single-block quads, no parameters):
        // BitStack's Float32 rebuilds read its signs an octet at a time through here, and the
        // general form's divisions made its 16-row products 1.3× slower.
        if isSignMatrix { return (block * chunks + chunk) * 32 * bits }
        let first = block / blocksPerQuad * blocksPerQuad, size = quadSize(ofBlock: block),
            k = LUTLayout.unitsPerRun(bits: bits)
        let group = chunk / chunksPerGroup, c = chunk % chunksPerGroup
        return quadOffset(first: first) + group * quadGroupBytes(quadSize: size)
            + ((c / k * size + block - first) * k + c % k) * 32 * bits
    }

    /// Byte offset in `data` of the parameters (16 d, 16 m) of `block` and `group`; not for a sign matrix.
    @inline(__always)
    package func paramOffset(block: Int, group: Int) -> Int {
        let first = block / blocksPerQuad * blocksPerQuad, size = quadSize(ofBlock: block)
        return quadOffset(first: first) + group * quadGroupBytes(quadSize: size)
            + size * chunksPerGroup * 32 * bits + (block - first) * blockParamBytes
    }

    /// Parameter element i (d: 0..<16, m: 16..<32) of the block and group at byte offset `offset`.
    func param(_ offset: Int, _ i: Int) -> Float {
        GroupParameters.load(UnsafeRawPointer(data.pointer) + offset, i, half: halfParams)
    }

    func setParam(_ offset: Int, _ i: Int, _ value: Float) {
        GroupParameters.store(value, at: data.pointer + offset, i, half: halfParams)
    }

    /// Packs a quantized matrix: codes and per-group parameters. A layout byte is two nibbles
    /// of one canonical plane byte pair (k-groups 4c + lane and 4c + 2 + lane of chunk c).
    package convenience init(packing m: CanonicalCodes) throws {
        let groups = m.groupsPerRow
        try self.init(rows: m.rows, cols: m.cols, bits: m.bits, paramGroups: groups, half: GroupParameters.halfExact(m),
                      packCodes: false, code: { _, _ in 0 })
        let rb = LUTLayout.rowsPerBlock, chunks = self.chunks, bits = m.bits
        let chunksPerGroup = m.groupSize / 16, planeBytes = m.planeBytes
        let out = data.bytes(), source = m.codes
        parallelFor(rowBlocks) { block in
            for g in 0..<groups {
                let offset = self.paramOffset(block: block, group: g)
                for i in 0..<rb {
                    let r = block * rb + i
                    self.setParam(offset, i, r < m.rows ? m.scale(row: r, group: g) : 0)
                    self.setParam(offset, 16 + i, r < m.rows ? m.offset(row: r, group: g) : 0)
                }
            }
            for c in 0..<chunks {
                let g = c / chunksPerGroup, within = 2 * (c % chunksPerGroup)
                var unit = out + self.unitOffset(block: block, chunk: c)
                // (row, plane) → its two canonical bytes for this chunk, packed into a lane pair.
                func put(_ lowByte: Int, _ row: Int, _ plane: Int) {
                    guard row < m.rows else { return }
                    let b = source + ((row * groups + g) * bits + plane) * planeBytes + within
                    unit[lowByte] = (b[0] & 0x0F) | (b[1] << 4)
                    unit[lowByte + 16] = (b[0] >> 4) | (b[1] & 0xF0)
                }
                for p in stride(from: 0, to: bits - 1, by: 2) {
                    for s in 0..<2 {
                        for i in 0..<8 {
                            put(2 * i, block * rb + 8 * s + i, p)
                            put(2 * i + 1, block * rb + 8 * s + i, p + 1)
                        }
                        unit += 32
                    }
                }
                if bits % 2 == 1 {
                    for i in 0..<16 { put(i, block * rb + i, bits - 1) }
                }
            }
        }
    }

    /// Packs a ±1 matrix (`sign(row, col)` true for +1) as 1-bit codes; d = 2 and m = −1 are
    /// implied, so w = 2q − 1 (the product is just the signed sums).
    public convenience init(signRows rows: Int, cols: Int, sign: (Int, Int) -> Bool) throws {
        try self.init(rows: rows, cols: cols, bits: 1, paramGroups: nil, half: true,
                      code: { row, col in sign(row, col) ? 1 : 0 })
    }

    /// Packs row-major sign bits (bit c % 8 of byte r·rowBytes + c/8 set for +1) directly: for
    /// one plane, a layout byte is two nibbles of the row's bytes (k-groups 4c + lane and
    /// 4c + 2 + lane of chunk c), so no per-bit work is needed.
    public convenience init(signBits: UnsafePointer<UInt8>, rowBytes: Int, rows: Int, cols: Int) throws {
        try self.init(rows: rows, cols: cols, bits: 1, paramGroups: nil, half: true, packCodes: false,
                      code: { _, _ in 0 })
        let rb = LUTLayout.rowsPerBlock, chunks = self.chunks
        let out = data.bytes()
        parallelFor(rowBlocks) { block in
            for i in 0..<rb where block * rb + i < rows {
                let row = signBits + (block * rb + i) * rowBytes
                for c in 0..<chunks {
                    let b0 = row[2 * c], b1 = row[2 * c + 1]
                    let unit = out + self.unitOffset(block: block, chunk: c)
                    unit[i] = (b0 & 0x0F) | (b1 << 4)
                    unit[16 + i] = (b0 >> 4) | (b1 & 0xF0)
                }
            }
        }
    }

    /// `paramGroups` nil: a sign matrix (no parameters). `packCodes` false: leave the codes
    /// zero (the caller packs them, and a quantized matrix's parameters).
    private init(rows: Int, cols: Int, bits: Int, paramGroups: Int?, half: Bool, packCodes: Bool = true,
                 code: (Int, Int) -> Int) throws {
        let rb = LUTLayout.rowsPerBlock
        rowBlocks = (rows + rb - 1) / rb
        chunks = cols / 16
        self.bits = bits
        blocksPerQuad = paramGroups == nil ? 1 : LUTLayout.weightBlocksPerQuad
        halfParams = half
        self.paramGroups = paramGroups ?? 0
        blockBytes = try checkedProduct(chunks, 32 * bits, what: "LUT layout")
            + (try checkedProduct(self.paramGroups, 32 * GroupParameters.elementBytes(half: half), what: "LUT layout"))
        data = try AlignedBuffer(byteCount: try checkedProduct(rowBlocks, blockBytes, what: "LUT layout"))
        let chunks = self.chunks
        let out = data.bytes()
        guard packCodes else { return }
        parallelFor(rowBlocks) { block in
            func index(_ row: Int, _ plane: Int, _ kgroup: Int) -> UInt8 {
                guard row < rows else { return 0 }
                var nibble: UInt8 = 0
                for j in 0..<4 { nibble |= UInt8((code(row, 4 * kgroup + j) >> plane) & 1) << UInt8(j) }
                return nibble
            }
            for c in 0..<chunks {
                var unit = out + self.unitOffset(block: block, chunk: c)
                func store(_ byteIndex: Int, _ row: Int, _ plane: Int) {
                    let lane = byteIndex / 16
                    unit[byteIndex] = index(row, plane, 4 * c + lane) | (index(row, plane, 4 * c + 2 + lane) << 4)
                }
                for p in stride(from: 0, to: bits - 1, by: 2) {
                    for s in 0..<2 {
                        for b in 0..<32 { store(b, block * rb + 8 * s + (b % 16) / 2, p + b % 2) }
                        unit += 32
                    }
                }
                if bits % 2 == 1 {
                    for b in 0..<32 { store(b, block * rb + b % 16, bits - 1) }
                }
            }
        }
    }

    /// Bit `plane` of the code at (row, col), read back from the permuted layout (portable paths
    /// and tests; not for hot loops).
    public func bit(row: Int, col: Int, plane: Int) -> Int {
        let rb = LUTLayout.rowsPerBlock, i = row % rb
        let c = col / 16, kq = (col % 16) / 4, j = col % 4
        let lane = kq % 2, high = kq / 2
        let units = data.bytes() + unitOffset(block: row / rb, chunk: c)
        let byte: UInt8
        if plane < bits - bits % 2 {
            byte = units[(plane / 2 * 2 + i / 8) * 32 + 16 * lane + 2 * (i % 8) + plane % 2]
        } else {
            byte = units[(bits - 1) * 32 + 16 * lane + i]
        }
        return Int(((high == 1 ? byte >> 4 : byte) >> UInt8(j)) & 1)
    }

    /// The weight d·q + m at (row, col), read back from the codes and parameters (2q − 1 in a
    /// sign matrix). Not for hot loops.
    public func weight(row: Int, col: Int, groupSize: Int) -> Float {
        var q = 0
        for p in 0..<bits { q |= bit(row: row, col: col, plane: p) << p }
        if isSignMatrix { return Float(2 * q - 1) }
        let offset = paramOffset(block: row / LUTLayout.rowsPerBlock, group: col / groupSize),
            i = row % LUTLayout.rowsPerBlock
        return param(offset, i) * Float(q) + param(offset, 16 + i)
    }

    /// The signs of row `row`, columns 8·octet ..< 8·octet + 8: bit j set where S is +1 at
    /// column 8·octet + j. The inverse of the nibble interleave of `init(signBits:…)`.
    @inline(__always)
    package func signOctet(row: Int, octet: Int) -> UInt8 {
        let unit = data.bytes() + unitOffset(block: row / LUTLayout.rowsPerBlock, chunk: octet / 2)
        let i = row % LUTLayout.rowsPerBlock, low = unit[i], high = unit[16 + i]
        return octet % 2 == 0 ? (low & 0x0F) | (high << 4) : (low >> 4) | (high & 0xF0)
    }
}
