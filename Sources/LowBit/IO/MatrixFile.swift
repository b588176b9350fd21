/// The `.lbm` file of one quantized matrix, little-endian, in canonical (kernel-independent) form.
///
///   0   magic "LOWBITMX"            8 bytes
///   8   format version (1)          u32   — bumped only for structural change
///   12  header size (128)           u32
///   16  rows, cols                  u64, u64
///   32  group size, weight type     u32, u32   (type: 1...4 bits, 158 = ternary, 203/204 = mixed)
///   40  flags (bit 0: symmetric)    u32
///   44  reserved (0)                u32
///   48  3 sections: codes (for mixed types followed by one data-type byte per group, row-major),
///       scales, offsets — each offset u64 (from file start), length u64,
///       CRC-32 u32, reserved u32 (24 bytes)
///   120 CRC-32 of bytes 0 ..< 120   u32
///   124 reserved (0)                u32
///   128 section data, each section starting at the running sum of the previous lengths padded
///       to 64 bytes; the file ends exactly at the end of the last section.
/// The reader checks every field before trusting it: magic, version, sizes with checked
/// arithmetic against the shape, offsets equal to the running padded sum, checksums, codes within
/// the type's range, zero padding and finite group parameters.
public enum MatrixFile {
    static let magic = Array("LOWBITMX".utf8)
    public static let version: UInt32 = 1
    static let headerSize = 128
    static let alignment = 64

    static func padded(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    /// The buffers each section holds, in file order: codes (then group types), scales, offsets.
    static func sections(_ m: QuantizedMatrix) -> [[AlignedBuffer]] {
        [[m.codes] + (m.groupTypes.map { [$0] } ?? []), [m.scales], [m.offsets]]
    }

    public static func encode(_ m: QuantizedMatrix) -> [UInt8] {
        let sections = sections(m)
        let sizes = sections.map { $0.reduce(0) { $0 + $1.byteCount } }
        var offsets: [Int] = []
        var end = headerSize
        for size in sizes { offsets.append(end); end = padded(end + size) }
        let total = offsets.last! + sizes.last!
        var out = [UInt8](repeating: 0, count: total)
        out.withUnsafeMutableBytes { raw in
            func put<T: FixedWidthInteger>(_ v: T, at o: Int) {
                raw.storeBytes(of: v.littleEndian, toByteOffset: o, as: T.self)
            }
            for (i, b) in magic.enumerated() { raw[i] = b }
            put(version, at: 8)
            put(UInt32(headerSize), at: 12)
            put(UInt64(m.rows), at: 16)
            put(UInt64(m.cols), at: 24)
            put(UInt32(m.groupSize), at: 32)
            put(UInt32(bitPattern: m.type.code), at: 36)
            put(UInt32(m.symmetric ? 1 : 0), at: 40)
            for (i, buffers) in sections.enumerated() {
                var at = offsets[i]
                for b in buffers {
                    raw.baseAddress!.advanced(by: at).copyMemory(from: b.pointer, byteCount: b.byteCount)
                    at += b.byteCount
                }
                put(UInt64(offsets[i]), at: 48 + 24 * i)
                put(UInt64(sizes[i]), at: 56 + 24 * i)
                put(CRC32.checksum(UnsafeRawBufferPointer(rebasing: raw[offsets[i]..<(offsets[i] + sizes[i])])),
                    at: 64 + 24 * i)
            }
            put(CRC32.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<120])), at: 120)
        }
        return out
    }

    /// What a matrix file's header says, once checked.
    public struct Header: Sendable {
        public let rows: Int, cols: Int, groupSize: Int
        public let type: WeightType
        public let symmetric: Bool
    }

    static func bad(_ why: String) -> LowBitError { LowBitError(.badFormat, "not a valid lowbit matrix file: \(why)") }

    /// The header at the start of `head` (at least its 128 bytes), checked in itself and against
    /// `fileSize`, the length of the whole file: all a reader learns before it reads the sections.
    public static func header(_ head: UnsafeRawBufferPointer, fileSize: Int) throws -> Header {
        guard head.count >= headerSize, fileSize >= headerSize else {
            throw bad("\(min(head.count, fileSize)) bytes is shorter than the \(headerSize)-byte header")
        }
        func get<T: FixedWidthInteger>(_ o: Int, _: T.Type) -> T {
            T(littleEndian: head.loadUnaligned(fromByteOffset: o, as: T.self))
        }
        guard Array(head[0..<8]) == magic else { throw bad("bad magic (expected LOWBITMX)") }
        let v = get(8, UInt32.self)
        guard v == version else { throw bad("unsupported format version \(v) (this library reads version \(version))") }
        guard get(120, UInt32.self) == CRC32.checksum(UnsafeRawBufferPointer(rebasing: head[0..<120])) else {
            throw bad("header checksum mismatch")
        }
        guard get(12, UInt32.self) == UInt32(headerSize) else {
            throw bad("header size \(get(12, UInt32.self)) is not \(headerSize)")
        }
        let rows64 = get(16, UInt64.self), cols64 = get(24, UInt64.self)
        guard rows64 > 0, cols64 > 0, rows64 < 1 << 40, cols64 < 1 << 40 else {
            throw bad("shape \(rows64) x \(cols64) is out of range")
        }
        let flags = get(40, UInt32.self)
        guard flags <= 1, get(44, UInt32.self) == 0, get(124, UInt32.self) == 0 else {
            throw bad("unknown flags or nonzero reserved fields")
        }
        let type: WeightType
        do { type = try WeightType(code: Int32(bitPattern: get(36, UInt32.self))) } catch { throw bad("\(error)") }
        let rows = Int(rows64), cols = Int(cols64), groupSize = Int(get(32, UInt32.self))
        // The file's length must be the one its header implies before anything is allocated:
        // a short file never makes the reader reserve the memory of the shape it announces.
        do {
            try validateShape(rows: rows, cols: cols, groupSize: groupSize)
            let groups = rows * (cols / groupSize)
            let codeBytes = try checkedProduct(groups, type.storageBits, groupSize / 8, what: "codes")
                + (type.isMixed ? groups : 0)
            let end = padded(padded(headerSize + codeBytes) + 4 * groups) + 4 * groups
            guard end == fileSize else {
                throw bad("the file has \(fileSize) bytes, its \(rows) x \(cols) shape needs \(end)")
            }
        } catch let e as LowBitError where e.status != .badFormat {
            throw bad(e.message)
        }
        return Header(rows: rows, cols: cols, groupSize: groupSize, type: type, symmetric: flags == 1)
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) throws -> QuantizedMatrix {
        let h = try header(bytes, fileSize: bytes.count)
        let (rows, cols, groupSize, type) = (h.rows, h.cols, h.groupSize, h.type)
        func get<T: FixedWidthInteger>(_ o: Int, _: T.Type) -> T {
            T(littleEndian: bytes.loadUnaligned(fromByteOffset: o, as: T.self))
        }
        let m: QuantizedMatrix
        do {
            m = try QuantizedMatrix(rows: rows, cols: cols, groupSize: groupSize, type: type, symmetric: h.symmetric)
        } catch let e as LowBitError where e.status != .outOfMemory {
            throw bad(e.message)
        }
        var expected = headerSize
        for (i, buffers) in sections(m).enumerated() {
            let size = buffers.reduce(0) { $0 + $1.byteCount }
            let offset = get(48 + 24 * i, UInt64.self), length = get(56 + 24 * i, UInt64.self)
            let name = ["codes", "scales", "offsets"][i]
            guard offset == UInt64(expected) else {
                throw bad("\(name) section at offset \(offset), expected \(expected)")
            }
            guard length == UInt64(size) else {
                throw bad("\(name) section is \(length) bytes, the shape needs \(size)")
            }
            guard get(68 + 24 * i, UInt32.self) == 0 else { throw bad("nonzero reserved field in the \(name) entry") }
            guard expected + size <= bytes.count else {
                throw bad("truncated: \(name) section ends at \(expected + size), file has \(bytes.count) bytes")
            }
            let data = UnsafeRawBufferPointer(rebasing: bytes[expected..<(expected + size)])
            guard CRC32.checksum(data) == get(64 + 24 * i, UInt32.self) else {
                throw bad("\(name) section checksum mismatch")
            }
            var from = expected
            for b in buffers {
                b.pointer.copyMemory(from: bytes.baseAddress! + from, byteCount: b.byteCount)
                from += b.byteCount
            }
            let end = expected + size
            expected = i < 2 ? padded(end) : end
            guard expected <= bytes.count, bytes[end..<expected].allSatisfy({ $0 == 0 }) else {
                throw bad("padding after the \(name) section is missing or not zero")
            }
        }
        guard bytes.count == expected else {
            throw bad("\(bytes.count - expected) unexpected bytes after the last section")
        }
        let groups = m.rows * m.groupsPerRow
        for i in 0..<groups where !m.scales.floats()[i].isFinite || !m.offsets.floats()[i].isFinite {
            throw bad("group \(i) has a non-finite scale or offset")
        }
        if let types = m.groupTypes {
            for i in 0..<groups where MixedDataType(rawValue: types.bytes()[i]) == nil {
                throw bad("group \(i) has unknown data type \(types.bytes()[i])")
            }
        }
        if type == .ternary {
            for r in 0..<m.rows { for c in 0..<m.cols where m.code(row: r, col: c) > 2 {
                throw bad("ternary code \(m.code(row: r, col: c)) at [\(r), \(c)] is out of range")
            } }
        }
        return m
    }

    /// Writes atomically: a temporary file in the same folder, renamed over `path` when complete.
    public static func save(_ m: QuantizedMatrix, to path: String) throws {
        try FileIO.writeAtomically(encode(m), to: path)
    }

    public static func load(_ path: String) throws -> QuantizedMatrix {
        try FileIO.read(path).withUnsafeBytes { try decode($0) }
    }
}

extension QuantizedMatrix {
    /// An all-zero matrix of a header's shape and type: it stands in for the matrix where only
    /// those matter (the sizes of kernel layouts, `auto`'s choice) before the matrix is read.
    public convenience init(zerosOf header: MatrixFile.Header) throws {
        try self.init(rows: header.rows, cols: header.cols, groupSize: header.groupSize, type: header.type,
                      symmetric: header.symmetric)
    }
}
