/// The BitStack file (`.lbs`), little-endian (docs/FORMATS.md lists what a reader checks).
///
///   0   magic "LOWBITSK"                 8 bytes
///   8   format version (1)               u32
///   12  tensor count, block count        u32, u32
///   20  metadata count                   u32
///   24  index bytes                      u64   (the index follows the 64-byte header)
///   32  data offset                      u64   (64 + index bytes, padded to 64)
///   40  data bytes                       u64   (the file ends at data offset + data bytes)
///   48  CRC-32 of the index              u32
///   52  reserved (0)                     u32
///   56  CRC-32 of bytes 0 ..< 56         u32
///   60  reserved (0)                     u32
/// Index:
///   metadata × { u16 key length, key (UTF-8), u8 type (1 = u64, 2 = string), u64 | u32 length + bytes }
///   tensors  × { u16 name length, name, u64 rows, u64 cols, u32 rank, u32 blocks, cols × f32 scaling }
///   blocks   × { u32 tensor, u32 level, u64 offset (from the data offset), u64 length, u32 CRC-32, u32 0 }
///   in stack order: every tensor's level 0 first, and each tensor's levels in increasing order,
///   so any prefix of the stack is a valid model and a few large sequential reads.
/// Data: the blocks, each starting at the running sum of the previous lengths padded to 64:
///   signs (rows × ⌈cols/8⌉ bytes, bit c % 8 of byte c/8 set for +1), U (rows × rank Float16),
///   V (cols × rank Float16).
public enum StackFile {
    static let magic = Array("LOWBITSK".utf8)
    public static let version: UInt32 = 1
    static let headerSize = 64
    static let alignment = 64
    static let maxTensors = 1 << 16, maxBlocks = 1 << 22, maxMetadata = 1024, maxName = 4096

    public enum MetaValue: Equatable, Sendable {
        case u64(UInt64)
        case string(String)
    }

    public struct Tensor: Sendable {
        public let name: String
        public let rows: Int, cols: Int, rank: Int, blocks: Int
        public let scaling: [Float]
        public var blockBytes: Int { rows * ((cols + 7) / 8) + 2 * rank * (rows + cols) }
    }

    public struct BlockEntry: Sendable {
        public let tensor: Int, level: Int
        public let offset: Int, length: Int
        public let crc: UInt32
    }

    public struct Index: Sendable {
        public let metadata: [(String, MetaValue)]
        public let tensors: [Tensor]
        public let blocks: [BlockEntry]
        public let dataOffset: Int
        public let dataBytes: Int
    }

    static func padded(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    // MARK: writing

    /// The file's bytes for decomposed matrices in `order` (pairs of tensor index and level).
    public static func encode(_ matrices: [DecomposedMatrix], order: [(Int, Int)],
                              metadata: [(String, MetaValue)]) throws -> [UInt8] {
        var index = ByteWriter()
        for (key, value) in metadata.sorted(by: { $0.0 < $1.0 }) {
            index.string16(key)
            switch value {
            case .u64(let v): index.u8(1); index.u64(v)
            case .string(let s): index.u8(2); index.u32(UInt32(s.utf8.count)); index.bytes(Array(s.utf8))
            }
        }
        for m in matrices {
            index.string16(m.name)
            index.u64(UInt64(m.rows)); index.u64(UInt64(m.cols))
            index.u32(UInt32(m.rank)); index.u32(UInt32(m.blocks.count))
            for v in m.scaling { index.u32(v.bitPattern) }
        }
        var data = ByteWriter()
        for (t, level) in order {
            let b = matrices[t].blocks[level]
            data.pad(to: alignment)  // between blocks only: the data ends with the last block
            let start = data.count
            data.bytes(b.signs)
            for v in b.u { data.u16(v.bitPattern) }
            for v in b.v { data.u16(v.bitPattern) }
            let length = data.count - start
            let crc = data.buffer.withUnsafeBytes {
                CRC32.checksum(UnsafeRawBufferPointer(rebasing: $0[start..<(start + length)]))
            }
            index.u32(UInt32(t)); index.u32(UInt32(level))
            index.u64(UInt64(start)); index.u64(UInt64(length))
            index.u32(crc); index.u32(0)
        }
        let dataOffset = padded(headerSize + index.count)
        var out = ByteWriter()
        out.bytes(magic)
        out.u32(version)
        out.u32(UInt32(matrices.count)); out.u32(UInt32(order.count)); out.u32(UInt32(metadata.count))
        out.u64(UInt64(index.count)); out.u64(UInt64(dataOffset)); out.u64(UInt64(data.count))
        out.u32(index.buffer.withUnsafeBytes { CRC32.checksum($0) }); out.u32(0)
        out.u32(out.buffer.withUnsafeBytes { CRC32.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<56])) }); out.u32(0)
        out.bytes(index.buffer)
        out.pad(to: alignment)
        out.bytes(data.buffer)
        return out.buffer
    }

    // MARK: reading

    static func bad(_ why: String) -> LowBitError { LowBitError(.badFormat, "not a valid lowbit stack file: \(why)") }

    /// Parses and validates the header and index (`bytes` holds at least the data offset;
    /// `fileSize` is the whole file's). Block contents are checked when they are read.
    public static func decodeIndex(_ bytes: UnsafeRawBufferPointer, fileSize: Int) throws -> Index {
        guard bytes.count >= headerSize else {
            throw bad("\(bytes.count) bytes is shorter than the \(headerSize)-byte header")
        }
        var h = ByteReader(bytes, limit: headerSize)
        guard try h.bytes(8) == magic else { throw bad("bad magic (expected LOWBITSK)") }
        let v = try h.u32()
        guard v == version else { throw bad("unsupported format version \(v) (this library reads version \(version))") }
        let headerChecksum = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 56, as: UInt32.self))
        guard CRC32.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<56])) == headerChecksum else {
            throw bad("header checksum mismatch")
        }
        let tensorCount = Int(try h.u32()), blockCount = Int(try h.u32()), metaCount = Int(try h.u32())
        let indexBytes = try h.u64(), dataOffset64 = try h.u64(), dataBytes64 = try h.u64()
        let indexCRC = try h.u32()
        guard try h.u32() == 0 else { throw bad("nonzero reserved header field") }
        guard tensorCount >= 1, tensorCount <= maxTensors, blockCount >= tensorCount, blockCount <= maxBlocks,
              metaCount <= maxMetadata else {
            throw bad("counts out of range: \(tensorCount) tensors, \(blockCount) blocks, \(metaCount) "
                      + "metadata entries")
        }
        // Every 64-bit field is compared in UInt64 before it becomes an Int.
        guard indexBytes < 1 << 40, dataBytes64 < 1 << 50 else { throw bad("index or data size out of range") }
        let indexEnd = headerSize + Int(indexBytes)
        guard dataOffset64 == UInt64(padded(indexEnd)) else {
            throw bad("data offset \(dataOffset64), expected \(padded(indexEnd))")
        }
        let dataOffset = padded(indexEnd), dataBytes = Int(dataBytes64)
        guard fileSize == dataOffset + dataBytes else {
            throw bad(fileSize < dataOffset
                + dataBytes ? "truncated: the file has \(fileSize) bytes, the header promises \(dataOffset + dataBytes)"
                                                       : "\(fileSize - dataOffset - dataBytes) unexpected bytes "
                                                           + "after the data")
        }
        guard bytes.count >= dataOffset else { throw bad("index is truncated") }
        guard CRC32.checksum(UnsafeRawBufferPointer(rebasing: bytes[headerSize..<indexEnd])) == indexCRC else {
            throw bad("index checksum mismatch")
        }
        guard bytes[indexEnd..<dataOffset].allSatisfy({ $0 == 0 }) else {
            throw bad("padding after the index is not zero")
        }

        var r = ByteReader(bytes, start: headerSize, limit: indexEnd)
        var metadata: [(String, MetaValue)] = []
        var keys = Set<String>()
        for _ in 0..<metaCount {
            let key = try r.string16()
            guard keys.insert(key).inserted else { throw bad("duplicate metadata key '\(key)'") }
            switch try r.u8() {
            case 1: metadata.append((key, .u64(try r.u64())))
            case 2:
                let n = Int(try r.u32())
                guard n <= 1 << 20 else { throw bad("metadata string '\(key)' is \(n) bytes") }
                guard let s = String(validating: try r.bytes(n), as: UTF8.self) else {
                    throw bad("metadata '\(key)' is not UTF-8")
                }
                metadata.append((key, .string(s)))
            case let t: throw bad("metadata '\(key)' has unknown type \(t)")
            }
        }
        var tensors: [Tensor] = []
        var names = Set<String>()
        for _ in 0..<tensorCount {
            let name = try r.string16()
            guard !name.isEmpty, names.insert(name).inserted else {
                throw bad("empty or duplicate tensor name '\(name)'")
            }
            let rows = try r.u64(), cols = try r.u64()
            let rank = Int(try r.u32()), blocks = Int(try r.u32())
            guard rows >= 1, cols >= 32, rows <= 1 << 31, cols <= 1 << 31, cols % 32 == 0 else {
                throw bad("tensor '\(name)' has shape \(rows) x \(cols) (cols must be a positive multiple of 32)")
            }
            guard rank >= 1, rank <= min(Int(rows), Int(cols), 256), blocks >= 1, blocks <= 64 else {
                throw bad("tensor '\(name)' has rank \(rank) and \(blocks) blocks")
            }
            // The scaling is read from the index: its length is checked before it is allocated.
            let scalingBytes = try r.take(4 * Int(cols))
            let scaling = (0..<Int(cols)).map { c in
                Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: scalingBytes + 4 * c,
                                                                           as: UInt32.self)))
            }
            guard scaling.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw bad("tensor '\(name)' has a non-positive or non-finite scaling value")
            }
            tensors.append(Tensor(name: name, rows: Int(rows), cols: Int(cols), rank: rank, blocks: blocks,
                                  scaling: scaling))
        }
        var entries: [BlockEntry] = []
        var nextLevel = [Int](repeating: 0, count: tensorCount)
        var expectedOffset = 0
        for i in 0..<blockCount {
            let t = Int(try r.u32()), level = Int(try r.u32())
            let offset = try r.u64(), length = try r.u64(), crc = try r.u32()
            guard try r.u32() == 0 else { throw bad("nonzero reserved field in block entry \(i)") }
            guard t < tensorCount else { throw bad("block \(i) names tensor \(t) of \(tensorCount)") }
            guard level == nextLevel[t], level < tensors[t].blocks else {
                throw bad("block \(i) is level \(level) of '\(tensors[t].name)', expected level \(nextLevel[t])")
            }
            guard (i < tensorCount) == (level == 0) else {
                throw bad("the first blocks must be every tensor's level 0")
            }
            nextLevel[t] += 1
            guard offset == UInt64(expectedOffset) else {
                throw bad("block \(i) at offset \(offset), expected \(expectedOffset)")
            }
            guard length == UInt64(tensors[t].blockBytes) else {
                throw bad("block \(i) is \(length) bytes, '\(tensors[t].name)' needs \(tensors[t].blockBytes)")
            }
            entries.append(BlockEntry(tensor: t, level: level, offset: Int(offset), length: Int(length), crc: crc))
            expectedOffset = i + 1 < blockCount ? padded(expectedOffset + Int(length)) : expectedOffset + Int(length)
        }
        guard r.offset == indexEnd else { throw bad("\(indexEnd - r.offset) unexpected bytes at the end of the index") }
        for t in 0..<tensorCount where nextLevel[t] != tensors[t].blocks {
            throw bad("tensor '\(tensors[t].name)' has \(nextLevel[t]) of its \(tensors[t].blocks) blocks")
        }
        guard expectedOffset == dataBytes else {
            throw bad("blocks end at \(expectedOffset), data is \(dataBytes) bytes")
        }
        return Index(metadata: metadata, tensors: tensors, blocks: entries, dataOffset: dataOffset,
                     dataBytes: dataBytes)
    }
}

/// Little-endian appends.
struct ByteWriter {
    var buffer: [UInt8] = []
    var count: Int { buffer.count }
    mutating func u8(_ v: UInt8) { buffer.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { buffer.append(contentsOf: $0) } }
    mutating func bytes(_ b: [UInt8]) { buffer.append(contentsOf: b) }
    mutating func string16(_ s: String) { u16(UInt16(s.utf8.count)); bytes(Array(s.utf8)) }
    mutating func pad(to alignment: Int) { while buffer.count % alignment != 0 { buffer.append(0) } }
}

/// Bounds-checked little-endian reads: running past `limit` is a format error, never a trap.
struct ByteReader {
    let base: UnsafeRawBufferPointer
    var offset: Int
    let limit: Int
    init(_ base: UnsafeRawBufferPointer, start: Int = 0, limit: Int) {
        self.base = base
        offset = start
        self.limit = min(limit, base.count)
    }
    mutating func take(_ n: Int) throws -> Int {
        guard n >= 0, n <= limit - offset else {
            throw StackFile.bad("truncated index (needed \(n) bytes at offset \(offset))")
        }
        defer { offset += n }
        return offset
    }
    mutating func u8() throws -> UInt8 { base[try take(1)] }
    mutating func u16() throws -> UInt16 {
        UInt16(littleEndian: base.loadUnaligned(fromByteOffset: try take(2), as: UInt16.self))
    }
    mutating func u32() throws -> UInt32 {
        UInt32(littleEndian: base.loadUnaligned(fromByteOffset: try take(4), as: UInt32.self))
    }
    mutating func u64() throws -> UInt64 {
        UInt64(littleEndian: base.loadUnaligned(fromByteOffset: try take(8), as: UInt64.self))
    }
    mutating func bytes(_ n: Int) throws -> [UInt8] { let o = try take(n); return Array(base[o..<(o + n)]) }
    mutating func string16() throws -> String {
        let n = Int(try u16())
        guard n <= StackFile.maxName else { throw StackFile.bad("name of \(n) bytes") }
        guard let s = String(validating: try bytes(n), as: UTF8.self) else {
            throw StackFile.bad("a name is not UTF-8")
        }
        return s
    }
}
