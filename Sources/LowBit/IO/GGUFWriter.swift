/// Writes a GGUF file (version 3, the layout `GGUFFile` reads): metadata entries copied from
/// another file or set here, then tensors, each at the running sum of the previous sizes padded
/// to the alignment. lowbit writes its quantized model files this way, so the hyperparameters
/// and the tokenizer travel in the format every llama.cpp tool lists.
public struct GGUFWriter {
    /// Encoded metadata entries in order (key, type, value), keyed for replacement.
    private var entries: [(key: String, bytes: [UInt8])] = []
    private var tensors: [(name: String, dims: [Int], type: GGUFFile.TensorType, data: [UInt8])] = []
    public let alignment = 32

    public init() {}

    /// Copies the entry of `key` from `file` byte for byte (replacing one already set); not
    /// `general.alignment`, which the writer's own layout decides.
    public mutating func copy(_ key: String, from file: GGUFFile) throws {
        guard key != "general.alignment" else {
            throw LowBitError(.invalidArgument, "general.alignment is the writer's own (\(alignment))")
        }
        guard let range = file.metadataEntries[key] else {
            throw LowBitError(.invalidArgument, "GGUF file has no metadata key '\(key)'")
        }
        put(key, Array(file.bytes[range]))
    }

    public mutating func set(_ key: String, uint32 value: UInt32) {
        var bytes = GGUFWriter.string(key)
        GGUFWriter.append(UInt32(4), to: &bytes)  // GGUF value type 4: u32
        GGUFWriter.append(value, to: &bytes)
        put(key, bytes)
    }

    public mutating func set(_ key: String, string value: String) {
        var bytes = GGUFWriter.string(key)
        GGUFWriter.append(UInt32(8), to: &bytes)  // GGUF value type 8: string
        bytes += GGUFWriter.string(value)
        put(key, bytes)
    }

    /// A tensor of `dims` (ggml order: dims[0] varies fastest) whose data is `type`'s blocks.
    public mutating func addTensor(_ name: String, dims: [Int], type: GGUFFile.TensorType, data: [UInt8]) throws {
        let elements = dims.reduce(1, *)
        guard (1...4).contains(dims.count), dims.allSatisfy({ $0 >= 1 }), dims[0] % type.block.elements == 0,
              data.count == elements / type.block.elements * type.block.bytes else {
            throw LowBitError(.invalidArgument, "GGUF tensor '\(name)': \(data.count) bytes do not make a \(type.name) "
                                                + "tensor of dimensions \(dims)")
        }
        guard !tensors.contains(where: { $0.name == name }) else {
            throw LowBitError(.invalidArgument, "GGUF tensor '\(name)' is added twice")
        }
        tensors.append((name, dims, type, data))
    }

    /// The whole file.
    public func encoded() -> [UInt8] {
        var out = Array("GGUF".utf8)
        GGUFWriter.append(UInt32(3), to: &out)
        GGUFWriter.append(UInt64(tensors.count), to: &out)
        GGUFWriter.append(UInt64(entries.count), to: &out)
        for e in entries { out += e.bytes }
        var offset = 0
        for t in tensors {
            out += GGUFWriter.string(t.name)
            GGUFWriter.append(UInt32(t.dims.count), to: &out)
            for d in t.dims { GGUFWriter.append(UInt64(d), to: &out) }
            GGUFWriter.append(t.type.rawValue, to: &out)
            GGUFWriter.append(UInt64(offset), to: &out)
            offset = padded(offset + t.data.count)
        }
        out += repeatElement(0, count: padded(out.count) - out.count)
        for t in tensors {
            out += t.data
            out += repeatElement(0, count: padded(out.count) - out.count)
        }
        return out
    }

    public func write(to path: String) throws { try FileIO.writeAtomically(encoded(), to: path) }

    private func padded(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    private mutating func put(_ key: String, _ bytes: [UInt8]) {
        if let i = entries.firstIndex(where: { $0.key == key }) {
            entries[i].bytes = bytes
        } else {
            entries.append((key, bytes))
        }
    }

    private static func append<T: FixedWidthInteger>(_ v: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out += $0 }
    }

    private static func string(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        append(UInt64(s.utf8.count), to: &out)
        return out + Array(s.utf8)
    }
}
