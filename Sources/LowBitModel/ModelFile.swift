import LowBit

/// lowbit's quantized model file: a GGUF file whose quantized linear layers are lowbit matrices,
/// so a calibrated or per-tensor allocated model loads without being made again.
///
/// Everything but those layers is the source file's, byte for byte: its metadata (architecture,
/// hyperparameters, tokenizer, chat template) and every other tensor at its own type. A layer
/// "X.weight" is replaced by "X.lowbit", an I8 tensor holding a whole `.lbm` matrix file (so the
/// matrix reader's checks and checksums apply), and, for activation-aware matrices, "X.input_scales"
/// (Float32, one per input column). A tied output is stored once, as token_embd.lowbit.
/// The metadata key `lowbit.model.version` marks the file.
public enum ModelFile {
    public static let versionKey = "lowbit.model.version"
    public static let version: UInt32 = 1

    /// "blk.0.attn_q.weight" → "blk.0.attn_q" + suffix.
    static func name(_ tensor: String, _ suffix: String) -> String {
        (tensor.hasSuffix(".weight") ? String(tensor.dropLast(".weight".count)) : tensor) + suffix
    }
    static func matrixName(_ tensor: String) -> String { name(tensor, ".lowbit") }
    static func inputScalesName(_ tensor: String) -> String { name(tensor, ".input_scales") }

    /// Whether `file` holds `tensor` as a lowbit matrix.
    static func holds(_ file: GGUFFile, _ tensor: String) -> Bool {
        file.contains(matrixName(tensor))
    }

    /// The lowbit matrix of `tensor` and its input scales, checked: the matrix file's own checks,
    /// scales positive and finite, one per column.
    static func matrix(_ file: GGUFFile, _ tensor: String) throws -> (matrix: QuantizedMatrix, inputScales: [Float]?) {
        let blob = try file.tensor(matrixName(tensor))
        guard blob.type == .i8, blob.dims.count == 1 else {
            throw LowBitError(.badFormat, "lowbit model: '\(blob.name)' must be a one-dimensional I8 tensor")
        }
        guard !file.contains(tensor) else {
            throw LowBitError(.badFormat, "lowbit model: both '\(tensor)' and '\(blob.name)' are present")
        }
        let m: QuantizedMatrix
        do {
            m = try file.withTensorBytes(blob) { try MatrixFile.decode($0) }
        } catch let e as LowBitError {
            throw LowBitError(e.status, "lowbit model: '\(blob.name)': \(e.message)")
        }
        let scalesName = inputScalesName(tensor)
        guard file.contains(scalesName) else { return (m, nil) }
        let t = try file.tensor(scalesName)
        guard t.type == .f32, t.elementCount == m.cols else {
            throw LowBitError(.badFormat, "lowbit model: '\(scalesName)' must be \(m.cols) Float32 values")
        }
        let scales = try file.dequantized(t)
        guard scales.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw LowBitError(.badFormat, "lowbit model: '\(scalesName)' holds a value that is not a positive number")
        }
        return (m, scales)
    }

    /// The type and group size of every lowbit matrix the file holds, by layer name, from the
    /// matrix headers (for listings: loading checks each matrix in full; an unknown type is left
    /// out).
    public static func precisions(_ file: GGUFFile) throws -> [String: (type: WeightType, groupSize: Int)] {
        var out: [String: (type: WeightType, groupSize: Int)] = [:]
        for t in file.tensors where t.name.hasSuffix(".lowbit") && t.byteCount >= 128 {
            let (code, group) = try file.withBytes(at: t.offset + 32, count: 8) {
                (Int32(littleEndian: $0.loadUnaligned(fromByteOffset: 4, as: Int32.self)),
                 Int(UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self))))
            }
            guard let type = try? WeightType(code: code) else { continue }
            out[String(t.name.dropLast(".lowbit".count)) + ".weight"] = (type, group)
        }
        return out
    }

    /// The Float32 weights W (rows × cols) of a tensor the file holds either way: ggml blocks
    /// dequantized, or a lowbit matrix with its input scaling undone.
    static func referenceWeights(_ file: GGUFFile, _ tensor: String) throws -> [Float] {
        guard holds(file, tensor) else { return try file.dequantized(try file.tensor(tensor)) }
        let (m, scales) = try matrix(file, tensor)
        var w = m.dequantized()
        if let scales { for i in w.indices { w[i] /= scales[i % m.cols] } }
        return w
    }

    /// (rows, cols) of a tensor the file holds either way; for a lowbit matrix, from its header
    /// alone (decoding it is most of a load), which `matrix` checks in full when the layer is made.
    static func shape(_ file: GGUFFile, _ tensor: String) throws -> (rows: Int, cols: Int) {
        if !file.contains(tensor), holds(file, tensor) {
            let blob = try file.tensor(matrixName(tensor))
            guard blob.byteCount >= 128 else {
                throw LowBitError(.badFormat, "lowbit model: '\(blob.name)' is shorter than a matrix file's header")
            }
            let (rows, cols) = try file.withBytes(at: blob.offset + 16, count: 16) {
                (UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)),
                 UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
            }
            guard rows < 1 << 40, cols < 1 << 40 else {
                throw LowBitError(.badFormat, "lowbit model: '\(blob.name)' has shape \(rows) x \(cols)")
            }
            return (Int(rows), Int(cols))
        }
        let t = try file.tensor(tensor)
        return (t.rows, t.cols)
    }

    /// Writes `source` with the tensors named in `matrices` replaced by those matrices (and their
    /// input scales). `source` must be a model file of ggml tensors, not a lowbit one.
    public static func write(source: GGUFFile, matrices: [String: (matrix: QuantizedMatrix, inputScales: [Float]?)],
                             to path: String) throws {
        guard source.metadata[versionKey] == nil else {
            throw LowBitError(.invalidArgument, "the source is already a lowbit model file: quantize its GGUF source")
        }
        if let missing = matrices.keys.first(where: { !source.contains($0) }) {
            throw LowBitError(.invalidArgument, "the source has no tensor '\(missing)'")
        }
        var writer = GGUFWriter()
        for key in source.metadataOrder where key != "general.alignment" { try writer.copy(key, from: source) }
        writer.set(versionKey, uint32: version)
        for t in source.tensors {
            guard let (m, scales) = matrices[t.name] else {
                try writer.addTensor(t.name, dims: t.dims, type: t.type, data: source.withTensorBytes(t) { Array($0) })
                continue
            }
            guard m.rows == t.rows, m.cols == t.cols, scales == nil || scales!.count == m.cols else {
                throw LowBitError(.invalidArgument, "'\(t.name)' is \(t.rows) x \(t.cols), its matrix "
                                                    + "\(m.rows) x \(m.cols) with \(scales?.count ?? 0) input scales")
            }
            let bytes = MatrixFile.encode(m)
            try writer.addTensor(matrixName(t.name), dims: [bytes.count], type: .i8, data: bytes)
            if let scales {
                try writer.addTensor(inputScalesName(t.name), dims: [scales.count], type: .f32,
                                     data: scales.withUnsafeBytes { Array($0) })
            }
        }
        try writer.write(to: path)
    }
}

extension ModelFile {
    /// Makes a lowbit model file at `output` from the GGUF model at `modelPath`: every linear
    /// layer at `type` (the output at 4 bits or more, as the loader holds it), or, with
    /// `targetBytes`, each layer and the output at its own precision (`ModelQuantizer.allocate`,
    /// which needs `calibrationText`). With calibration text the matrices are calibrated on it.
    /// Returns each tensor's type and group size.
    @discardableResult
    public static func quantize(modelPath: String, output: String, type: WeightType? = nil, groupSize: Int = 64,
                                targetBytes: Int? = nil, calibrationText: String? = nil,
                                progress: (String, Int, Int) -> Void = { _, _, _ in })
        throws -> [String: (WeightType, Int)] {
        guard (type == nil) != (targetBytes == nil) else {
            throw LowBitError(.invalidArgument, "quantize takes either a weight type or a target size")
        }
        guard [32, 64, 128].contains(groupSize) else {
            throw LowBitError(.unsupported, "unsupported group size \(groupSize): use 32, 64 or 128")
        }
        if targetBytes != nil, calibrationText == nil {
            throw LowBitError(.invalidArgument,
                              "a target size needs calibration text (sensitivities are measured on it)")
        }
        let file = try GGUFFile(path: modelPath)
        guard file.metadata[versionKey] == nil else {
            throw LowBitError(.invalidArgument,
                              "'\(modelPath)' is already a lowbit model file: quantize the GGUF it was made from")
        }
        let config = try LlamaConfig(file)
        let quantizer = try ModelQuantizer(file: file, calibrationText: calibrationText)
        let outputName = file.contains("output.weight") ? "output.weight" : "token_embd.weight"
        let names = (0..<config.layers).flatMap { l in LlamaModel.linearNames.map { "blk.\(l).\($0).weight" } }
            + [outputName]
        var precisions: [String: (WeightType, Int)] = [:]
        if let targetBytes, let calibrationText {
            let chosen = try quantizer.allocate(targetBytes: targetBytes, text: calibrationText, progress: progress)
            for (name, p) in chosen { precisions[name] = (.integer(bits: p.bits), p.groupSize) }
        } else if let type {
            for name in names {
                precisions[name] = (ModelQuantizer.uniformType(type, isOutput: name == outputName), groupSize)
            }
        }
        var matrices: [String: (matrix: QuantizedMatrix, inputScales: [Float]?)] = [:]
        for (i, name) in names.enumerated() {
            progress("quantizing", i + 1, names.count)
            let (type, group) = precisions[name]!
            matrices[name] = try quantizer.quantize(name, type: type, groupSize: group)
        }
        try write(source: file, matrices: matrices, to: output)
        return precisions
    }
}
