import LowBit

/// `lowbit gguf FILE`: metadata and tensors of a GGUF file (after full validation).
func runGGUF(_ args: Arguments) throws {
    try args.allow([])
    guard args.words.count >= 2 else { throw CLIError("usage: lowbit gguf FILE.gguf") }
    let file = try GGUFFile(path: args.words[1])
    print("GGUF v\(file.version): \(file.metadata.count) metadata entries, \(file.tensors.count) tensors, alignment \(file.alignment)")
    for key in file.metadataOrder {
        let v = file.metadata[key]!
        let shown: String
        switch v {
        case .array(let a): shown = "[\(a.count) items: \(a.prefix(3).map { describe($0) }.joined(separator: ", "))\(a.count > 3 ? ", ..." : "")]"
        default: shown = describe(v)
        }
        print("  \(key) = \(shown)")
    }
    var byType: [String: (Int, Int)] = [:]
    for t in file.tensors {
        let k = "\(t.type)"
        byType[k] = ((byType[k]?.0 ?? 0) + 1, (byType[k]?.1 ?? 0) + t.byteCount)
    }
    print("tensors by type: " + byType.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.0) (\(formatBytes($0.value.1)))" }.joined(separator: ", "))
    for t in file.tensors.prefix(12) { print("  \(t.name.padded(28)) \(t.type) \(t.dims)") }
    if file.tensors.count > 12 { print("  ... \(file.tensors.count - 12) more") }
}

func describe(_ v: GGUFFile.Value) -> String {
    switch v {
    case .int(let x): return "\(x)"
    case .uint(let x): return "\(x)"
    case .float(let x): return "\(x)"
    case .bool(let x): return "\(x)"
    case .string(let s): return s.count > 60 ? "\"\(String(s.prefix(60)).replacingAll("\n", "\\n"))...\"" : "\"\(s.replacingAll("\n", "\\n"))\""
    case .array(let a): return "[\(a.count) items]"
    }
}
