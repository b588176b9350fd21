import LowBit
import LowBitModel

/// `lowbit gguf FILE`: metadata and tensors of a GGUF file (after full validation).
/// `--type-errors`: the round-trip error of integer and BitMoD mixed data types on its 2-D weights.
func runGGUF(_ args: Arguments) throws {
    try args.allow(["type-errors", "group-size"])
    guard args.words.count >= 2 else {
        throw CLIError("usage: lowbit gguf FILE.gguf [--type-errors [--group-size 64]]")
    }
    let file = try GGUFFile(path: args.words[1])
    let groupSize = try args.int("group-size", default: 64)
    guard supportedGroupSizes.contains(groupSize) else { throw CLIError("--group-size takes 32, 64 or 128") }
    if args.flags.contains("type-errors") { return try printTypeErrors(file, groupSize: groupSize) }
    print("GGUF v\(file.version): \(file.metadata.count) metadata entries, \(file.tensors.count) tensors, alignment "
          + "\(file.alignment)")
    for key in file.metadataOrder {
        let v = file.metadata[key]!
        let shown: String
        switch v {
        case .array(let a):
            let first = (0..<min(a.count, 3)).map { describe(a[$0]) }.joined(separator: ", ")
            shown = "[\(a.count) items: \(first)\(a.count > 3 ? ", ..." : "")]"
        default: shown = describe(v)
        }
        print("  \(key) = \(shown)")
    }
    var byType: [String: (Int, Int)] = [:]
    for t in file.tensors {
        let k = "\(t.type)"
        byType[k] = ((byType[k]?.0 ?? 0) + 1, (byType[k]?.1 ?? 0) + t.byteCount)
    }
    let counts = byType.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.0) (\(formatBytes($0.value.1)))" }
    print("tensors by type: " + counts.joined(separator: ", "))
    // Whether the runner takes this file's architecture and shape (its tensors are checked at load).
    do {
        let c = try LlamaConfig(file)
        print("model: \(c.architecture), \(c.layers) layers of width \(c.embedding), \(c.heads) query heads and "
              + "\(c.kvHeads) key/value heads of \(c.headDim), feed-forward \(c.feedForward), "
              + "vocabulary \(c.vocabulary)")
    } catch {
        print("model: the runner cannot run it: \(error)")
    }
    do {
        let t = try Tokenizer(gguf: file)
        print("tokenizer: \(t.isSentencePiece ? "SentencePiece BPE" : "byte-level BPE"), \(t.vocabularySize) tokens")
    } catch {
        print("tokenizer: the runner cannot use it: \(error)")
    }
    // How each type of 2-D tensor runs: the loader's rule for --weights file, then the others.
    let matrixTypes = Set(file.tensors.filter { $0.dims.count == 2 }.map(\.type)).sorted { "\($0)" < "\($1)" }
    print("matrices with --weights file (the default), by type:")
    for type in matrixTypes { print("  \("\(type)".padded(8)) \(FileTensorHolding(type).description)") }
    let lowbit = try ModelFile.precisions(file)
    if !lowbit.isEmpty {
        var counts: [String: Int] = [:]
        for rungs in lowbit.values { for p in rungs { counts["\(p.type) g\(p.groupSize)", default: 0] += 1 } }
        print("  lowbit matrices (a model file from `lowbit quantize`; auto kernel, int8 activations): "
              + counts.sorted { $0.key < $1.key }.map { "\($0.key) x \($0.value)" }.joined(separator: ", "))
        if let levels = try ModelFile.levels(file) {
            print("  elastic: \(levels.values.first?.count ?? 0) levels over \(levels.count) laddered tensors of "
                  + "\(lowbit.values.reduce(0) { $0 + $1.count }) rungs (run with --budget SIZE)")
        }
    }
    print("matrices of every type, held otherwise:")
    print("  --bits B              dequantized, then requantized to B bits (kernel families lut, bitserial, dequant)")
    print("  --weights reference   exact Float32 values (float kernel)")
    for t in file.tensors.prefix(12) { print("  \(t.name.padded(28)) \(t.type) \(t.dims)") }
    if file.tensors.count > 12 { print("  ... \(file.tensors.count - 12) more") }
}

func describe(_ v: GGUFFile.Value) -> String {
    switch v {
    case .int(let x): return "\(x)"
    case .uint(let x): return "\(x)"
    case .float(let x): return "\(x)"
    case .bool(let x): return "\(x)"
    case .string(let s):
        let shown = String(s.prefix(60)).replacingAll("\n", "\\n")
        return s.count > 60 ? "\"\(shown)...\"" : "\"\(shown)\""
    case .array(let a): return "[\(a.count) items]"
    }
}

/// Per data type, the normalized round-trip error ‖W − Ŵ‖/‖W‖ over all 2-D tensors whose width
/// fits the group size, and the bits per weight that costs.
func printTypeErrors(_ file: GGUFFile, groupSize: Int) throws {
    let types: [WeightType] = [.integer(bits: 3), .mixed(bits: 3), .integer(bits: 4), .mixed(bits: 4)]
    var squared = [Double](repeating: 0, count: types.count), norm = 0.0, weights = 0
    var bytes = [Int](repeating: 0, count: types.count)
    var mixedGroups = [Int](repeating: 0, count: types.count), groups = 0
    for t in file.tensors where t.dims.count == 2 && t.dims[0] % groupSize == 0 {
        let cols = t.dims[0], rows = t.dims[1]
        let w = try file.dequantized(t)
        norm += w.reduce(0.0) { $0 + Double($1) * Double($1) }
        weights += w.count
        groups += w.count / groupSize
        for (i, type) in types.enumerated() {
            let m = try w.withUnsafeBufferPointer {
                try Quantizer.quantize($0.baseAddress!, rows: rows, cols: cols, type: type, groupSize: groupSize,
                                       symmetric: false)
            }
            let back = m.dequantized()
            for k in 0..<w.count { squared[i] += Double(w[k] - back[k]) * Double(w[k] - back[k]) }
            bytes[i] += m.canonicalByteCount
            if let kinds = m.groupTypes {
                for g in 0..<kinds.byteCount where kinds.bytes()[g] != 0 { mixedGroups[i] += 1 }
            }
        }
    }
    guard weights > 0 else { throw CLIError("no 2-D tensor has a width that is a multiple of \(groupSize)") }
    print("round-trip error over \(weights) weights in 2-D tensors, group size \(groupSize):")
    print("type            error       bits/weight  groups on a float grid")
    for (i, type) in types.enumerated() {
        let share = type.isMixed ? "\(fmt(100 * Double(mixedGroups[i]) / Double(groups), 1)) %" : "-"
        print("\(type.description.padded(15)) \(sci((squared[i] / norm).squareRoot()).padded(11)) "
              + "\(fmt(Double(bytes[i]) * 8 / Double(weights), 3).padded(12)) \(share)")
    }
}
