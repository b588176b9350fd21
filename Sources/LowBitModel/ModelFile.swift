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
///
/// An elastic model file (`lowbit.model.levels` = L) holds each layer as a ladder of precisions
/// instead: rungs "X.lowbit.0", "X.lowbit.1", … (each with its "X.input_scales.K"), and
/// "X.levels", L rung numbers (I8): the rung each level holds. Level l is the allocation made
/// for the l-th of L sizes, smallest first; a budget runs the largest level that fits it.
public enum ModelFile {
    public static let versionKey = "lowbit.model.version"
    public static let version: UInt32 = 1
    public static let levelsKey = "lowbit.model.levels"
    /// Limits a reader holds an elastic file to: a level table is read whole at load, and every
    /// rung is a full matrix of the tensor.
    public static let maxLevels = 4096, maxRungs = 16

    /// "blk.0.attn_q.weight" → "blk.0.attn_q" + suffix.
    static func name(_ tensor: String, _ suffix: String) -> String {
        (tensor.hasSuffix(".weight") ? String(tensor.dropLast(".weight".count)) : tensor) + suffix
    }
    static func matrixName(_ tensor: String, rung: Int? = nil) -> String {
        name(tensor, ".lowbit" + (rung.map { ".\($0)" } ?? ""))
    }
    static func inputScalesName(_ tensor: String, rung: Int? = nil) -> String {
        name(tensor, ".input_scales" + (rung.map { ".\($0)" } ?? ""))
    }
    static func levelsName(_ tensor: String) -> String { name(tensor, ".levels") }

    /// Whether `file` holds `tensor` as a lowbit matrix, or as a ladder of them.
    static func holds(_ file: GGUFFile, _ tensor: String) -> Bool {
        file.contains(matrixName(tensor)) || file.contains(matrixName(tensor, rung: 0))
    }

    /// The rungs of a tensor's ladder: how many of "X.lowbit.0", "X.lowbit.1", … there are.
    static func rungCount(_ file: GGUFFile, _ tensor: String) -> Int {
        var count = 0
        while count < maxRungs, file.contains(matrixName(tensor, rung: count)) { count += 1 }
        return count
    }

    /// The lowbit matrix of `tensor` (of one rung of its ladder) and its input scales, checked:
    /// the matrix file's own checks, scales positive and finite, one per column.
    static func matrix(_ file: GGUFFile, _ tensor: String,
                       rung: Int? = nil) throws -> (matrix: QuantizedMatrix, inputScales: [Float]?) {
        let blob = try file.tensor(matrixName(tensor, rung: rung))
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
        let scalesName = inputScalesName(tensor, rung: rung)
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

    /// The checked header of one rung's matrix, read alone (the matrix is checked in full when
    /// it is loaded).
    static func rungHeader(_ file: GGUFFile, _ tensor: String, rung: Int) throws -> MatrixFile.Header {
        let blob = try file.tensor(matrixName(tensor, rung: rung))
        guard blob.type == .i8, blob.dims.count == 1 else {
            throw LowBitError(.badFormat, "lowbit model: '\(blob.name)' must be a one-dimensional I8 tensor")
        }
        do {
            return try file.withBytes(at: blob.offset, count: min(blob.byteCount, 128)) {
                try MatrixFile.header($0, fileSize: blob.byteCount)
            }
        } catch let e as LowBitError {
            throw LowBitError(e.status, "lowbit model: '\(blob.name)': \(e.message)")
        }
    }

    /// The type and group size of every lowbit matrix the file holds, by layer name, rungs of a
    /// ladder smallest first, from the matrix headers (for listings: loading checks each matrix
    /// in full; an unknown type is left out).
    public static func precisions(_ file: GGUFFile) throws -> [String: [(type: WeightType, groupSize: Int)]] {
        var out: [String: [(rung: Int, type: WeightType, groupSize: Int)]] = [:]
        for t in file.tensors where t.byteCount >= 128 {
            let parts = t.name.split(separator: ".", omittingEmptySubsequences: false)
            let rung: Int
            let layer: String
            if parts.count >= 2, parts[parts.count - 2] == "lowbit", let k = Int(parts[parts.count - 1]) {
                (rung, layer) = (k, parts.dropLast(2).joined(separator: "."))
            } else if parts.last == "lowbit" {
                (rung, layer) = (0, parts.dropLast().joined(separator: "."))
            } else {
                continue
            }
            let (code, group) = try file.withBytes(at: t.offset + 32, count: 8) {
                (Int32(littleEndian: $0.loadUnaligned(fromByteOffset: 4, as: Int32.self)),
                 Int(UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self))))
            }
            guard let type = try? WeightType(code: code) else { continue }
            out[layer + ".weight", default: []].append((rung, type, group))
        }
        return out.mapValues { $0.sorted { $0.rung < $1.rung }.map { ($0.type, $0.groupSize) } }
    }

    /// The Float32 weights W (rows × cols) of a tensor the file holds either way: ggml blocks
    /// dequantized, or a lowbit matrix with its input scaling undone.
    /// A ladder's weights are its top rung's.
    static func referenceWeights(_ file: GGUFFile, _ tensor: String) throws -> [Float] {
        guard holds(file, tensor) else { return try file.dequantized(try file.tensor(tensor)) }
        let rungs = rungCount(file, tensor)
        let (m, scales) = try matrix(file, tensor, rung: rungs > 0 ? rungs - 1 : nil)
        var w = m.dequantized()
        if let scales { for i in w.indices { w[i] /= scales[i % m.cols] } }
        return w
    }

    /// (rows, cols) of a tensor the file holds either way; for a lowbit matrix, from its header
    /// alone (decoding it is most of a load), which `matrix` checks in full when the layer is made.
    static func shape(_ file: GGUFFile, _ tensor: String) throws -> (rows: Int, cols: Int) {
        if !file.contains(tensor), holds(file, tensor) {
            let blob = try file.tensor(matrixName(tensor, rung: file.contains(matrixName(tensor)) ? nil : 0))
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

    /// An elastic file's level tables: per laddered tensor, the rung each level holds; nil for a
    /// file without levels. Checked: 1 to `maxLevels` levels, each table one I8 value per level
    /// naming a rung its tensor has, no tensor held both as one matrix and as a ladder, and no
    /// rung outside a ladder with a table.
    public static func levels(_ file: GGUFFile) throws -> [String: [Int]]? {
        let rungTensors = file.tensors.compactMap { t -> (tensor: String, rung: Int)? in
            let parts = t.name.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count >= 3, parts[parts.count - 2] == "lowbit", let k = Int(parts[parts.count - 1]) else {
                return nil
            }
            return (parts.dropLast(2).joined(separator: ".") + ".weight", k)
        }
        guard let value = file.metadata[levelsKey] else {
            if let first = rungTensors.first {
                throw LowBitError(.badFormat, "lowbit model: \(matrixName(first.tensor, rung: first.rung)) is a "
                                              + "rung of a ladder, but the file has no \(levelsKey)")
            }
            return nil
        }
        guard let count = value.intValue, (1...maxLevels).contains(count) else {
            throw LowBitError(.badFormat, "lowbit model: \(levelsKey) must be a number from 1 to \(maxLevels)")
        }
        var tables: [String: [Int]] = [:]
        for t in file.tensors where t.name.hasSuffix(".levels") {
            let tensor = String(t.name.dropLast(".levels".count)) + ".weight"
            guard t.type == .i8, t.dims == [count] else {
                throw LowBitError(.badFormat, "lowbit model: '\(t.name)' must be \(count) I8 values, one per level")
            }
            let rungs = rungCount(file, tensor)
            guard rungs > 0 else {
                throw LowBitError(.badFormat, "lowbit model: '\(t.name)' has no '\(matrixName(tensor, rung: 0))'")
            }
            guard !file.contains(matrixName(tensor)), !file.contains(tensor) else {
                throw LowBitError(.badFormat, "lowbit model: '\(tensor)' is held both as a ladder and otherwise")
            }
            let table = try file.withTensorBytes(t) { $0.map { Int(Int8(bitPattern: $0)) } }
            if let bad = table.first(where: { !(0..<rungs).contains($0) }) {
                throw LowBitError(.badFormat, "lowbit model: '\(t.name)' names rung \(bad); the tensor has \(rungs)")
            }
            tables[tensor] = table
        }
        for (tensor, rung) in rungTensors where tables[tensor] == nil || rung >= rungCount(file, tensor) {
            throw LowBitError(.badFormat, "lowbit model: '\(matrixName(tensor, rung: rung))' is outside every ladder "
                                          + "(rungs are numbered from 0, with a .levels table)")
        }
        guard !tables.isEmpty else {
            throw LowBitError(.badFormat, "lowbit model: \(levelsKey) is set, but no tensor has a .levels table")
        }
        return tables
    }

    public typealias Matrix = (matrix: QuantizedMatrix, inputScales: [Float]?)

    /// Writes `source` with the tensors named in `matrices` replaced by those matrices (and their
    /// input scales). `source` must be a model file of ggml tensors, not a lowbit one.
    public static func write(source: GGUFFile, matrices: [String: Matrix], to path: String) throws {
        try write(source: source, replacing: Set(matrices.keys), levelCount: nil, to: path) { t, writer in
            try add(matrices[t.name]!, as: t, rung: nil, to: &writer)
        }
    }

    /// Writes an elastic model file: each tensor named in `ladders` replaced by its rungs, and
    /// `levels[name]` the rung each level holds (every table of the same length).
    public static func write(source: GGUFFile, ladders: [String: [Matrix]], levels: [String: [Int]],
                             to path: String) throws {
        let count = levels.values.first?.count ?? 0
        guard (1...maxLevels).contains(count), Set(levels.keys) == Set(ladders.keys),
              levels.allSatisfy({ name, table in
                  table.count == count && table.allSatisfy { (0..<ladders[name]!.count).contains($0) }
              }),
              ladders.values.allSatisfy({ (1...maxRungs).contains($0.count) }) else {
            throw LowBitError(.invalidArgument, "an elastic model needs 1 to \(maxLevels) levels naming, for every "
                                                + "tensor, one of its 1 to \(maxRungs) rungs")
        }
        try write(source: source, replacing: Set(ladders.keys), levelCount: count, to: path) { t, writer in
            for (k, rung) in ladders[t.name]!.enumerated() { try add(rung, as: t, rung: k, to: &writer) }
            try writer.addTensor(levelsName(t.name), dims: [count], type: .i8,
                                 data: levels[t.name]!.map { UInt8($0) })
        }
    }

    private static func write(source: GGUFFile, replacing names: Set<String>, levelCount: Int?, to path: String,
                              replace: (GGUFFile.Tensor, inout GGUFWriter) throws -> Void) throws {
        guard source.metadata[versionKey] == nil else {
            throw LowBitError(.invalidArgument, "the source is already a lowbit model file: quantize its GGUF source")
        }
        if let missing = names.first(where: { !source.contains($0) }) {
            throw LowBitError(.invalidArgument, "the source has no tensor '\(missing)'")
        }
        var writer = GGUFWriter()
        for key in source.metadataOrder where key != "general.alignment" { try writer.copy(key, from: source) }
        writer.set(versionKey, uint32: version)
        if let levelCount { writer.set(levelsKey, uint32: UInt32(levelCount)) }
        for t in source.tensors {
            if names.contains(t.name) {
                try replace(t, &writer)
            } else {
                try writer.addTensor(t.name, dims: t.dims, type: t.type, data: source.withTensorBytes(t) { Array($0) })
            }
        }
        try writer.write(to: path)
    }

    private static func add(_ held: Matrix, as t: GGUFFile.Tensor, rung: Int?, to writer: inout GGUFWriter) throws {
        let (m, scales) = held
        guard m.rows == t.rows, m.cols == t.cols, scales == nil || scales!.count == m.cols else {
            throw LowBitError(.invalidArgument, "'\(t.name)' is \(t.rows) x \(t.cols), its matrix "
                                                + "\(m.rows) x \(m.cols) with \(scales?.count ?? 0) input scales")
        }
        let bytes = MatrixFile.encode(m)
        try writer.addTensor(matrixName(t.name, rung: rung), dims: [bytes.count], type: .i8, data: bytes)
        if let scales {
            try writer.addTensor(inputScalesName(t.name, rung: rung), dims: [scales.count], type: .f32,
                                 data: scales.withUnsafeBytes { Array($0) })
        }
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

extension ModelFile {
    /// The levels `quantizeElastic` makes by default: one per MiB of the range, 2 to 64 (one
    /// where the range is a single size).
    public static func defaultLevelCount(minBytes: Int, maxBytes: Int) -> Int {
        minBytes >= maxBytes ? 1 : min(64, max(2, (maxBytes - minBytes) / (1 << 20) + 1))
    }

    /// Makes an elastic model file at `output` from the GGUF model at `modelPath`: the
    /// allocations `ModelQuantizer.allocations` makes for `levelCount` sizes evenly spaced from
    /// `minBytes` to `maxBytes`, each tensor's ladder being the precisions any level gives it,
    /// smallest first. Every level is the static model `quantize(targetBytes:)` makes at its
    /// size; a level whose loss on the held-out calibration tokens is not below every smaller
    /// level's is left out, so a larger budget never runs a worse model (the allocation's
    /// predicted losses are not exact, and between neighbouring sizes its choice can cost more
    /// than it saves). Returns the ladders' precisions by tensor, and the levels' target sizes
    /// and held-out losses.
    @discardableResult
    public static func quantizeElastic(modelPath: String, output: String, minBytes: Int, maxBytes: Int,
                                       calibrationText: String, levelCount: Int? = nil,
                                       progress: (String, Int, Int) -> Void = { _, _, _ in })
        throws -> (ladders: [String: [TensorPrecision]], targets: [Int], losses: [Double]) {
        guard minBytes > 0, minBytes <= maxBytes else {
            throw LowBitError(.invalidArgument, "an elastic model needs 0 < min size <= max size, not \(minBytes) and "
                                                + "\(maxBytes) bytes")
        }
        let count = levelCount ?? defaultLevelCount(minBytes: minBytes, maxBytes: maxBytes)
        guard (1...maxLevels).contains(count), count == 1 || minBytes < maxBytes else {
            throw LowBitError(.invalidArgument, "an elastic model has 1 to \(maxLevels) levels (more than one over a "
                                                + "range of sizes), not \(count)")
        }
        let file = try GGUFFile(path: modelPath)
        guard file.metadata[versionKey] == nil else {
            throw LowBitError(.invalidArgument,
                              "'\(modelPath)' is already a lowbit model file: quantize the GGUF it was made from")
        }
        let quantizer = try ModelQuantizer(file: file, calibrationText: calibrationText)
        let targets = (0..<count).map { l in
            count == 1 ? maxBytes : minBytes + Int((Double(maxBytes - minBytes) * Double(l) / Double(count - 1)))
        }
        let allocations = try quantizer.allocations(targets: targets, text: calibrationText, progress: progress)
        // Every precision any level gives a tensor, made once.
        var made: [String: [TensorPrecision: Matrix]] = [:]
        let total = allocations[0].keys.reduce(0) { n, name in n + Set(allocations.map { $0[name]! }).count }
        var done = 0
        // In the model's order: tensors that share input rows come one after the other
        // (`ModelQuantizer.inputs`).
        let config = try LlamaConfig(file)
        let order = (0..<config.layers).flatMap { l in LlamaModel.linearNames.map { "blk.\(l).\($0).weight" } }
        let names = order.filter { allocations[0][$0] != nil } + allocations[0].keys.filter { !order.contains($0) }
        for name in names {
            for p in Set(allocations.map { $0[name]! }) {
                done += 1
                progress("quantizing", done, total)
                made[name, default: [:]][p] = try quantizer.quantize(name, type: .integer(bits: p.bits),
                                                                     groupSize: p.groupSize)
            }
        }
        let losses = try quantizer.heldOutLosses(allocations.map { a in
            Dictionary(uniqueKeysWithValues: names.map { ($0, made[$0]![a[$0]!]!) })
        }, text: calibrationText, progress: progress)
        var kept: [Int] = []
        for l in losses.indices where kept.isEmpty || losses[l] < losses[kept.last!] { kept.append(l) }
        var ladders: [String: [TensorPrecision]] = [:], levels: [String: [Int]] = [:]
        var matrices: [String: [Matrix]] = [:]
        for name in names {
            // Fewer bits first; within a width, larger groups (fewer bytes) first.
            let rungs = Set(kept.map { allocations[$0][name]! })
                .sorted { ($0.bits, -$0.groupSize) < ($1.bits, -$1.groupSize) }
            ladders[name] = rungs
            levels[name] = kept.map { rungs.firstIndex(of: allocations[$0][name]!)! }
            matrices[name] = rungs.map { made[name]![$0]! }
        }
        try write(source: file, ladders: matrices, levels: levels, to: output)
        return (ladders, kept.map { targets[$0] }, kept.map { losses[$0] })
    }
}
