#if canImport(Glibc)
import Glibc
#endif

/// A GGUF file (the llama.cpp model format), read and validated in full before anything uses it.
///
/// Layout (little-endian): magic "GGUF", u32 version (2 or 3), u64 tensor count, u64 metadata
/// count; metadata as (string key, u32 type, value); tensor infos as (string name, u32 n_dims,
/// n_dims × u64 dims, u32 ggml type, u64 offset); then, at the next multiple of
/// `general.alignment` (default 32), the data section, where each tensor starts at the running
/// sum of the previous tensors' sizes padded to the alignment. Strings are u64 length + UTF-8.
public final class GGUFFile: @unchecked Sendable {
    public enum Value: Equatable, Sendable {
        case int(Int64)       // every integer type
        case uint(UInt64)
        case float(Double)    // f32, f64
        case bool(Bool)
        case string(String)
        case array(GGUFArray)

        public var intValue: Int? {
            switch self {
            case .int(let v): return Int(exactly: v)
            case .uint(let v): return Int(exactly: v)
            default: return nil
            }
        }
        public var floatValue: Double? {
            switch self {
            case .float(let v): return v
            case .int(let v): return Double(v)
            case .uint(let v): return Double(v)
            default: return nil
            }
        }
        public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
        public var arrayValue: GGUFArray? { if case .array(let a) = self { return a } else { return nil } }
    }

    /// ggml tensor types this reader can dequantize (`GGMLBlocks` decodes them).
    public enum TensorType: UInt32, Sendable, CaseIterable {
        case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8
        case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14
        case iq4_nl = 20, iq4_xs = 23, i8 = 24, bf16 = 30, tq1_0 = 34, tq2_0 = 35

        /// (elements, bytes) per block.
        public var block: (elements: Int, bytes: Int) {
            switch self {
            case .f32: return (1, 4)
            case .f16, .bf16: return (1, 2)
            case .i8: return (1, 1)
            case .q4_0, .iq4_nl: return (32, 18)
            case .q4_1: return (32, 20)
            case .q5_0: return (32, 22)
            case .q5_1: return (32, 24)
            case .q8_0: return (32, 34)
            case .q2_K: return (256, 84)
            case .q3_K: return (256, 110)
            case .q4_K: return (256, 144)
            case .q5_K: return (256, 176)
            case .q6_K: return (256, 210)
            case .iq4_xs: return (256, 136)
            case .tq1_0: return (256, 54)
            case .tq2_0: return (256, 66)
            }
        }

        public var name: String { GGUFFile.typeName(rawValue) }
    }

    /// ggml's name of a tensor type code, for messages (the types this reader does not know too).
    public static func typeName(_ code: UInt32) -> String {
        let names: [UInt32: String] = [
            0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K",
            11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS",
            19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32",
            27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
        ]
        return names[code] ?? "type \(code)"
    }

    public struct Tensor: Sendable {
        public let name: String
        /// ggml order: dims[0] varies fastest (a matrix's columns), dims[1] its rows.
        public let dims: [Int]
        public let type: TensorType
        /// From the start of the file.
        public let offset: Int
        public let byteCount: Int
        public var elementCount: Int { dims.reduce(1, *) }
        public var rows: Int { dims.count > 1 ? dims[1...].reduce(1, *) : 1 }
        public var cols: Int { dims[0] }
    }

    public let version: UInt32
    public let metadata: [String: Value]
    public let metadataOrder: [String]
    /// Where each metadata entry (key, type and value) lies in the file: `GGUFWriter` copies
    /// entries byte for byte, so arrays such as a tokenizer's vocabulary travel unchanged.
    let metadataEntries: [String: Range<Int>]
    public let tensors: [Tensor]
    public let alignment: Int
    /// The file's first bytes, through its metadata and tensor list (the whole file when made
    /// from bytes): metadata arrays keep their numbers here.
    let bytes: [UInt8]
    let tensorIndex: [String: Int]
    let source: Source

    /// Where tensor data is read from: the bytes given, or the open file, a tensor at a time, so
    /// a model's load holds one tensor's bytes beside what it makes of them, not the whole file.
    enum Source {
        case memory
        case file(fd: Int32, path: String)
    }

    static let maxCount = 1 << 20, maxString = 1 << 24, maxDims = 4

    /// Reads the header part by part (4 MiB, then four times more until it parses); tensors are
    /// read when used.
    public convenience init(path: String) throws {
        let (fd, size) = try FileIO.openRegular(path)
        do {
            var length = min(size, 1 << 22)
            while true {
                var header = [UInt8](repeating: 0, count: length)
                try header.withUnsafeMutableBytes { try FileIO.readFully(fd, into: $0, at: 0, path: path) }
                do {
                    let parsed = try GGUFFile.parse(header, fileSize: size)
                    self.init(parsed, bytes: header, source: .file(fd: fd, path: path))
                    return
                } catch is GGUFReader.NeedMoreBytes {
                    length = min(size, length * 4)
                }
            }
        } catch {
            close(fd)
            throw error
        }
    }

    public convenience init(bytes: [UInt8]) throws {
        do {
            self.init(try GGUFFile.parse(bytes, fileSize: bytes.count), bytes: bytes, source: .memory)
        } catch is GGUFReader.NeedMoreBytes {  // not reached: the bytes are the whole file
            throw LowBitError(.badFormat, "not a valid GGUF file: truncated")
        }
    }

    deinit {
        if case .file(let fd, _) = source { close(fd) }
    }

    private init(_ p: Parsed, bytes: [UInt8], source: Source) {
        (version, metadata, metadataOrder, metadataEntries) = (p.version, p.metadata, p.order, p.entries)
        (alignment, tensors, self.bytes, self.source) = (p.alignment, p.tensors, bytes, source)
        var index: [String: Int] = [:]
        for (i, t) in tensors.enumerated() { index[t.name] = i }
        tensorIndex = index
    }

    struct Parsed {
        let version: UInt32
        let metadata: [String: Value], order: [String], entries: [String: Range<Int>]
        let alignment: Int
        let tensors: [Tensor]
    }

    /// Parses and checks the header in `bytes`, the first bytes of a file of `fileSize` bytes;
    /// throws `GGUFReader.NeedMoreBytes` where the header runs past them.
    static func parse(_ bytes: [UInt8], fileSize: Int) throws -> Parsed {
        func bad(_ why: String) -> LowBitError { LowBitError(.badFormat, "not a valid GGUF file: \(why)") }
        var r = GGUFReader(bytes: bytes, fileSize: fileSize)
        guard bytes.count >= 4, Array(bytes[0..<4]) == Array("GGUF".utf8) else {
            throw bad("bad magic (expected GGUF)")
        }
        r.offset = 4
        let version = try r.u32()
        guard version == 2 || version == 3 else {
            throw bad("unsupported version \(version) (this reader takes 2 and 3)")
        }
        let tensorCount = try r.u64(), kvCount = try r.u64()
        guard tensorCount <= UInt64(GGUFFile.maxCount), kvCount <= UInt64(GGUFFile.maxCount) else {
            throw bad("\(tensorCount) tensors and \(kvCount) metadata entries is more than this reader allows")
        }
        var metadata: [String: Value] = [:], order: [String] = [], entries: [String: Range<Int>] = [:]
        for _ in 0..<Int(kvCount) {
            let start = r.offset
            let key = try r.string()
            guard metadata[key] == nil else { throw bad("duplicate metadata key '\(key)'") }
            metadata[key] = try r.value(type: try r.u32())
            order.append(key)
            entries[key] = start..<r.offset
        }
        let alignment: Int
        if let a = metadata["general.alignment"] {
            guard let v = a.intValue, v > 0, v <= 1 << 16, v & (v - 1) == 0 else {
                throw bad("general.alignment must be a power of two")
            }
            alignment = v
        } else {
            alignment = 32
        }
        var infos: [(String, [Int], TensorType, UInt64)] = []
        var names = Set<String>()
        for _ in 0..<Int(tensorCount) {
            let name = try r.string()
            guard names.insert(name).inserted else { throw bad("duplicate tensor name '\(name)'") }
            let nDims = Int(try r.u32())
            guard (1...GGUFFile.maxDims).contains(nDims) else {
                throw bad("tensor '\(name)' has \(nDims) dimensions")
            }
            var dims: [Int] = []
            var elements = 1
            for _ in 0..<nDims {
                let d = try r.u64()
                guard d >= 1, d < 1 << 40 else { throw bad("tensor '\(name)' has dimension \(d)") }
                let (p, o) = elements.multipliedReportingOverflow(by: Int(d))
                guard !o, p < 1 << 40 else { throw bad("tensor '\(name)' dimensions overflow") }
                elements = p
                dims.append(Int(d))
            }
            let rawType = try r.u32()
            // A type this reader does not decode is a valid file it cannot run, not a corrupt one.
            guard let type = TensorType(rawValue: rawType) else {
                throw LowBitError(.unsupported,
                                  "GGUF tensor '\(name)' is of ggml type \(GGUFFile.typeName(rawType)) "
                                  + "(\(rawType)), which lowbit does not read; supported: "
                                  + TensorType.allCases.map(\.name).joined(separator: ", "))
            }
            guard dims[0] % type.block.elements == 0 else {
                throw bad("tensor '\(name)' rows of \(dims[0]) are not a whole number of "
                          + "\(type.block.elements)-element blocks")
            }
            infos.append((name, dims, type, try r.u64()))
        }
        let dataStart = (r.offset + alignment - 1) / alignment * alignment
        var tensors: [Tensor] = []
        var expected = 0
        for (name, dims, type, offset) in infos {
            let count = dims.reduce(1, *)
            let size = count / type.block.elements * type.block.bytes
            guard offset == UInt64(expected) else {
                throw bad("tensor '\(name)' at data offset \(offset), expected \(expected) "
                          + "(the padded running sum)")
            }
            guard dataStart + expected + size <= fileSize else {
                throw bad("tensor '\(name)' ends at \(dataStart + expected + size), past the end of the file "
                          + "(\(fileSize) bytes)")
            }
            tensors.append(Tensor(name: name, dims: dims, type: type, offset: dataStart + expected,
                                  byteCount: size))
            expected = (expected + size + alignment - 1) / alignment * alignment
        }
        return Parsed(version: version, metadata: metadata, order: order, entries: entries, alignment: alignment,
                      tensors: tensors)
    }

    public var tensorNames: Set<String> { Set(tensorIndex.keys) }

    /// Whether the file has a tensor of that name.
    public func contains(_ name: String) -> Bool { tensorIndex[name] != nil }

    public func tensor(_ name: String) throws -> Tensor {
        guard let i = tensorIndex[name] else { throw LowBitError(.badFormat, "GGUF file has no tensor '\(name)'") }
        return tensors[i]
    }

    /// The raw bytes of a tensor (ggml blocks).
    public func withTensorBytes<R>(_ t: Tensor, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try withBytes(at: t.offset, count: t.byteCount, body)
    }

    /// Bytes [offset, offset + count) of the file; the caller keeps them inside a tensor.
    public func withBytes<R>(at offset: Int, count: Int, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        switch source {
        case .memory:
            return try bytes.withUnsafeBytes {
                try body(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + count)]))
            }
        case .file(let fd, let path):
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 64)
            defer { buffer.deallocate() }
            let part = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count])
            try FileIO.readFully(fd, into: part, at: offset, path: path)
            return try body(UnsafeRawBufferPointer(part))
        }
    }

    /// Dequantizes elements [start, start + count) of a tensor (count and start multiples of its
    /// block size) into `out`, reading only their blocks.
    public func dequantize(_ t: Tensor, start: Int = 0, count: Int? = nil,
                           into out: UnsafeMutablePointer<Float>) throws {
        let n = count ?? t.elementCount
        let (elements, bytes) = t.type.block
        try withBytes(at: t.offset + start / elements * bytes, count: n / elements * bytes) { raw in
            GGMLBlocks.decode(t.type, raw.baseAddress!, blocks: n / elements, into: out)
        }
    }

    public func dequantized(_ t: Tensor) throws -> [Float] {
        try [Float](unsafeUninitializedCapacity: t.elementCount) { buf, n in
            try dequantize(t, into: buf.baseAddress!)
            n = t.elementCount
        }
    }
}

/// A metadata array. Numbers stay in the file's bytes and are decoded when read, so an array of
/// any length takes no memory beyond the file's own; strings are decoded once.
public struct GGUFArray: Equatable, Sendable {
    /// The GGUF value type of every element.
    public let elementType: UInt32
    public let count: Int
    let file: [UInt8]
    let start: Int
    let strings: [String]

    /// Bytes per element of the fixed-size GGUF types (everything but strings and arrays).
    static func elementBytes(_ type: UInt32) -> Int? {
        switch type {
        case 0, 1, 7: return 1
        case 2, 3: return 2
        case 4, 5, 6: return 4
        case 10, 11, 12: return 8
        default: return nil
        }
    }

    public subscript(i: Int) -> GGUFFile.Value {
        precondition(i >= 0 && i < count, "GGUF array index \(i) out of 0..<\(count)")
        if elementType == 8 { return .string(strings[i]) }
        let size = GGUFArray.elementBytes(elementType) ?? 1
        return file.withUnsafeBytes { GGUFReader.scalar(type: elementType, at: $0.baseAddress! + start + i * size) }
    }

    /// The elements as strings, or nil if they are of another type.
    public var stringValues: [String]? { elementType == 8 ? strings : nil }

    /// The elements as integers, or nil if they are not all integers that fit an Int.
    public var intValues: [Int]? {
        var out: [Int] = []
        out.reserveCapacity(count)
        for i in 0..<count {
            guard let v = self[i].intValue else { return nil }
            out.append(v)
        }
        return out
    }

    public static func == (a: GGUFArray, b: GGUFArray) -> Bool {
        guard a.elementType == b.elementType, a.count == b.count else { return false }
        return (0..<a.count).allSatisfy { a[$0] == b[$0] }
    }
}

/// Bounds-checked reads of GGUF's little-endian fields: a read past the end is a format error.
struct GGUFReader {
    let bytes: [UInt8]
    /// The whole file's length; `bytes` may be its first part only.
    let fileSize: Int
    var offset = 0

    /// The header goes on past the bytes read so far (but not past the file).
    struct NeedMoreBytes: Error {}

    func bad(_ why: String) -> LowBitError { LowBitError(.badFormat, "not a valid GGUF file: \(why)") }

    mutating func take(_ n: Int) throws -> Int {
        guard n >= 0, n <= fileSize - offset else { throw bad("truncated at byte \(offset) (needed \(n) more)") }
        guard n <= bytes.count - offset else { throw NeedMoreBytes() }
        defer { offset += n }
        return offset
    }
    mutating func load<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let o = try take(MemoryLayout<T>.size)
        return bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: o, as: T.self)) }
    }
    mutating func u32() throws -> UInt32 { try load(UInt32.self) }
    mutating func u64() throws -> UInt64 { try load(UInt64.self) }
    mutating func string() throws -> String {
        let n = try u64()
        guard n <= UInt64(GGUFFile.maxString) else { throw bad("a string of \(n) bytes at \(offset)") }
        let o = try take(Int(n))
        guard let s = String(validating: bytes[o..<(o + Int(n))], as: UTF8.self) else {
            throw bad("a string at \(o) is not UTF-8")
        }
        return s
    }

    /// A fixed-size value of GGUF type `type` (one `GGUFArray.elementBytes` knows) at `p`.
    static func scalar(type: UInt32, at p: UnsafeRawPointer) -> GGUFFile.Value {
        func le<T: FixedWidthInteger>(_: T.Type) -> T { T(littleEndian: p.loadUnaligned(as: T.self)) }
        switch type {
        case 0: return .uint(UInt64(le(UInt8.self)))
        case 1: return .int(Int64(le(Int8.self)))
        case 2: return .uint(UInt64(le(UInt16.self)))
        case 3: return .int(Int64(le(Int16.self)))
        case 4: return .uint(UInt64(le(UInt32.self)))
        case 5: return .int(Int64(le(Int32.self)))
        case 6: return .float(Double(Float(bitPattern: le(UInt32.self))))
        case 7: return .bool(le(UInt8.self) != 0)
        case 10: return .uint(le(UInt64.self))
        case 11: return .int(le(Int64.self))
        default: return .float(Double(bitPattern: le(UInt64.self)))
        }
    }

    mutating func value(type: UInt32) throws -> GGUFFile.Value {
        if type == 8 { return .string(try string()) }
        if let size = GGUFArray.elementBytes(type) {
            let o = try take(size)
            guard type != 7 || bytes[o] <= 1 else { throw bad("bool value \(bytes[o])") }
            return bytes.withUnsafeBytes { GGUFReader.scalar(type: type, at: $0.baseAddress! + o) }
        }
        guard type == 9 else { throw bad("unknown metadata type \(type)") }
        let elementType = try u32()
        let count64 = try u64()
        guard count64 <= UInt64(GGUFFile.maxCount) else { throw bad("an array of \(count64) elements") }
        let count = Int(count64)
        if elementType == 8 {
            // Each string takes at least its 8-byte length from the file, so the count is
            // checked against the bytes left before anything is reserved for it.
            guard count <= (fileSize - offset) / 8 else {
                throw bad("an array of \(count) strings past the end of the file")
            }
            var strings: [String] = []
            strings.reserveCapacity(count)
            for _ in 0..<count { strings.append(try string()) }
            return .array(GGUFArray(elementType: 8, count: count, file: [], start: 0, strings: strings))
        }
        guard let size = GGUFArray.elementBytes(elementType) else {
            throw bad(elementType == 9 ? "nested arrays" : "unknown array element type \(elementType)")
        }
        let start = try take(count * size)
        if elementType == 7, let b = bytes[start..<(start + count)].first(where: { $0 > 1 }) {
            throw bad("bool value \(b)")
        }
        return .array(GGUFArray(elementType: elementType, count: count, file: bytes, start: start, strings: []))
    }
}
