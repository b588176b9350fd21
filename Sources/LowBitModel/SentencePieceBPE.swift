import LowBit

/// SentencePiece's BPE (`tokenizer.ggml.model` "llama": Llama 2, Mistral). Spaces become "▁",
/// the text's characters are merged pairwise, the pair whose joined piece scores highest first,
/// and a character that no piece holds falls back to its UTF-8 bytes as <0xXX> tokens.
struct SentencePieceBPE: Sendable {
    /// Each token's score: the merge that forms the higher-scoring piece comes first.
    let scores: [Float]
    /// Pieces that merges may form and text may use: normal and user-defined ones, not control,
    /// byte, unknown or unused pieces, as SentencePiece's encoder allows.
    let isPiece: [Bool]
    let byteTokens: [Int?]          // byte → its <0xXX> token
    let byteOfToken: [Int: UInt8]
    let unknownID: Int?
    /// Whether a text begins with a space, so that its first word is cut as every other word is
    /// (`tokenizer.ggml.add_space_prefix`, true unless the file says otherwise).
    let addSpacePrefix: Bool

    static let space: Unicode.Scalar = "\u{2581}"

    init(gguf: GGUFFile, names: [String], types: [Int], ids: TokenIDs, unknownID: Int?) throws {
        func bad(_ why: String) -> LowBitError { LowBitError(.badFormat, "GGUF tokenizer: \(why)") }
        if let field = gguf.metadata["tokenizer.ggml.scores"] {
            guard let list = field.arrayValue, list.count == names.count else {
                throw bad("tokenizer.ggml.scores must hold one number per token (\(names.count))")
            }
            scores = try (0..<list.count).map { i in
                guard let v = list[i].floatValue, abs(v) <= Double(Float.greatestFiniteMagnitude) else {
                    throw bad("score \(i) is not a finite number")
                }
                return Float(v)
            }
        } else {
            scores = [Float](repeating: 0, count: names.count)
        }
        isPiece = types.map { $0 == TokenType.normal || $0 == TokenType.userDefined }
        var byteTokens = [Int?](repeating: nil, count: 256)
        var byteOfToken: [Int: UInt8] = [:]
        let hex = Array("0123456789ABCDEF")
        for b in 0..<256 {
            let name = "<0x" + String(hex[b >> 4]) + String(hex[b & 15]) + ">"
            // A file without token types marks none as bytes; the name is enough then.
            if let id = ids[name], types[id] == TokenType.byte || types[id] == TokenType.normal {
                byteTokens[b] = id
                byteOfToken[id] = UInt8(b)
            }
        }
        self.byteTokens = byteTokens
        self.byteOfToken = byteOfToken
        self.unknownID = unknownID
        addSpacePrefix = gguf.metadata["tokenizer.ggml.add_space_prefix"].map { $0 == .bool(true) } ?? true
    }

    /// Appends the tokens of one plain text (no control tokens in it) to `out`.
    func encode(_ text: String, ids: TokenIDs, into out: inout [Int]) {
        let characters = text.unicodeScalars.map { String($0 == " " ? Self.space : $0) }
        let symbols = mergePairs(characters) { left, right -> Float? in
            guard let id = ids[left + right], isPiece[id] else { return nil }
            return -scores[id]
        }
        for symbol in symbols {
            if let id = ids[symbol], isPiece[id] {
                out.append(id)
                continue
            }
            let bytes = symbol.utf8.compactMap { byteTokens[Int($0)] }
            if bytes.count == symbol.utf8.count {
                out += bytes
            } else if let unknownID {
                out.append(unknownID)
            }
        }
    }

    /// Whether this byte alone encodes to itself: as its <0xXX> token, or as a piece where it is
    /// a character of its own (ASCII).
    func hasToken(forByte b: UInt8, ids: TokenIDs) -> Bool {
        if byteTokens[Int(b)] != nil { return true }
        guard b < 0x80, let id = ids[String(Unicode.Scalar(b == 0x20 ? 0x2581 : UInt32(b))!)] else { return false }
        return isPiece[id]
    }

    /// The bytes a token stands for: a byte token's byte, else its text with "▁" as a space.
    func bytes(of token: Int, text: String) -> [UInt8] {
        if let b = byteOfToken[token] { return [b] }
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: text.unicodeScalars.map { $0 == Self.space ? " " : $0 })
        return Array(String(scalars).utf8)
    }
}
