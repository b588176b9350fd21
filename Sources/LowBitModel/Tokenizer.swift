import LowBit

/// GPT-2 byte-level BPE, as a GGUF file describes it (`tokenizer.ggml.*`), with the "smollm"
/// pre-tokenizer: digits split one by one, then GPT-2's word pattern
///   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
/// with text the pattern does not match kept as pieces of its own (llama.cpp's rule).
/// Control tokens (<|im_start|> …) are recognised in text only when asked (`parseSpecial`).
public final class Tokenizer: @unchecked Sendable {
    public let tokens: [String]
    public let bosID: Int?, eosID: Int?
    public let addBOS: Bool
    let ids: [String: Int]
    let mergeRanks: [String: Int]   // "left right" → rank
    let specials: [(String, Int)]   // control and user-defined tokens, longest first
    let byteToChar: [Character]
    let charToByte: [Character: UInt8]

    public init(gguf: GGUFFile) throws {
        func bad(_ why: String) -> LowBitError { LowBitError(.badFormat, "GGUF tokenizer: \(why)") }
        guard gguf.metadata["tokenizer.ggml.model"]?.stringValue == "gpt2" else { throw bad("only the gpt2 (byte-level BPE) model is supported") }
        let pre = gguf.metadata["tokenizer.ggml.pre"]?.stringValue ?? "default"
        guard ["smollm", "gpt2", "default"].contains(pre) else { throw bad("pre-tokenizer '\(pre)' is not supported (smollm, gpt2)") }
        guard let list = gguf.metadata["tokenizer.ggml.tokens"]?.arrayValue else { throw bad("no token list") }
        let names = try list.map { guard let s = $0.stringValue else { throw bad("a token is not a string") }; return s }
        tokens = names
        var ids: [String: Int] = [:]
        for (i, t) in names.enumerated() where ids[t] == nil { ids[t] = i }
        self.ids = ids
        var ranks: [String: Int] = [:]
        for (i, m) in (gguf.metadata["tokenizer.ggml.merges"]?.arrayValue ?? []).enumerated() {
            guard let s = m.stringValue else { throw bad("a merge is not a string") }
            if ranks[s] == nil { ranks[s] = i }
        }
        mergeRanks = ranks
        let types = gguf.metadata["tokenizer.ggml.token_type"]?.arrayValue?.map { $0.intValue ?? 1 } ?? []
        specials = names.indices.filter { $0 < types.count && (types[$0] == 3 || types[$0] == 4) }
            .map { (names[$0], $0) }.sorted { $0.0.utf8.count > $1.0.utf8.count }
        func tokenID(_ key: String) -> Int? {
            guard let v = gguf.metadata[key]?.intValue, v >= 0, v < list.count else { return nil }
            return v
        }
        bosID = tokenID("tokenizer.ggml.bos_token_id")
        eosID = tokenID("tokenizer.ggml.eos_token_id")
        addBOS = (gguf.metadata["tokenizer.ggml.add_bos_token"].map { $0 == .bool(true) } ?? false) && bosID != nil
        // GPT-2's reversible byte → printable character map.
        var chars = [Character](repeating: " ", count: 256)
        var printable = Set<Int>(33...126)
        printable.formUnion(161...172)
        printable.formUnion(174...255)
        var extra = 0
        for b in 0..<256 {
            if printable.contains(b) {
                chars[b] = Character(Unicode.Scalar(UInt32(b))!)
            } else {
                chars[b] = Character(Unicode.Scalar(UInt32(256 + extra))!)
                extra += 1
            }
        }
        byteToChar = chars
        var back: [Character: UInt8] = [:]
        for (b, c) in chars.enumerated() { back[c] = UInt8(b) }
        charToByte = back
    }

    public var vocabularySize: Int { tokens.count }

    // MARK: encoding

    /// Token ids of `text`. `addSpecial`: prepend BOS when the model asks for it;
    /// `parseSpecial`: turn control-token text such as <|im_start|> into those tokens.
    public func encode(_ text: String, addSpecial: Bool = true, parseSpecial: Bool = false) -> [Int] {
        var out: [Int] = []
        if addSpecial, addBOS, let bos = bosID { out.append(bos) }
        for (segment, special) in splitSpecial(text, parse: parseSpecial) {
            if let id = special { out.append(id); continue }
            for piece in Tokenizer.preTokenize(segment) { out.append(contentsOf: bpe(piece)) }
        }
        return out
    }

    func splitSpecial(_ text: String, parse: Bool) -> [(String, Int?)] {
        guard parse, !specials.isEmpty else { return [(text, nil)] }
        var result: [(String, Int?)] = []
        var rest = Substring(text)
        var plain = ""
        outer: while !rest.isEmpty {
            for (s, id) in specials where rest.hasPrefix(s) {
                if !plain.isEmpty { result.append((plain, nil)); plain = "" }
                result.append((s, id))
                rest = rest.dropFirst(s.count)
                continue outer
            }
            plain.append(rest.first!)
            rest = rest.dropFirst()
        }
        if !plain.isEmpty { result.append((plain, nil)) }
        return result
    }

    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }
    static func isNumber(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }
    static func isSpace(_ s: Unicode.Scalar) -> Bool { s.properties.isWhitespace }

    /// The smollm pre-tokenizer: every \p{N} alone, then GPT-2's pattern on the rest.
    public static func preTokenize(_ text: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        var pieces: [String] = []
        var start = 0
        for (i, s) in scalars.enumerated() where isNumber(s) {
            if start < i { pieces.append(contentsOf: gpt2Split(Array(scalars[start..<i]))) }
            pieces.append(String(s))
            start = i + 1
        }
        if start < scalars.count { pieces.append(contentsOf: gpt2Split(Array(scalars[start...]))) }
        return pieces
    }

    static func gpt2Split(_ s: [Unicode.Scalar]) -> [String] {
        var out: [String] = []
        var i = 0
        let n = s.count
        func run(from j: Int, _ pred: (Unicode.Scalar) -> Bool) -> Int {
            var k = j
            while k < n, pred(s[k]) { k += 1 }
            return k
        }
        let other: (Unicode.Scalar) -> Bool = { !isSpace($0) && !isLetter($0) && !isNumber($0) }
        while i < n {
            var end = i
            let c = s[i]
            if c == "'" , i + 1 < n {
                let rest = String(String.UnicodeScalarView(s[(i + 1)..<min(n, i + 3)]))
                if rest.hasPrefix("re") || rest.hasPrefix("ve") || rest.hasPrefix("ll") { end = i + 3 }
                else if let f = rest.first, "stmd".contains(f) { end = i + 2 }
            }
            if end == i {
                let j = (c == " " && i + 1 < n && !isSpace(s[i + 1])) ? i + 1 : i
                if isLetter(s[j]) { end = run(from: j, isLetter) }
                else if isNumber(s[j]) { end = run(from: j, isNumber) }
                else if other(s[j]) { end = run(from: j, other) }
                else {
                    // Whitespace: all of it at the end of text; otherwise all but the last
                    // character, which may start the next piece (" word"); a single one stays alone.
                    let k = run(from: i, isSpace)
                    end = k == n || k - i == 1 ? k : k - 1
                }
            }
            out.append(String(String.UnicodeScalarView(s[i..<end])))
            i = end
        }
        return out
    }

    /// Byte-level BPE of one piece: bytes → printable characters, then repeatedly the
    /// lowest-ranked adjacent merge (leftmost on ties).
    func bpe(_ piece: String) -> [Int] {
        var symbols = piece.utf8.map { String(byteToChar[Int($0)]) }
        while symbols.count > 1 {
            var best: (rank: Int, at: Int)? = nil
            for i in 0..<(symbols.count - 1) {
                if let r = mergeRanks[symbols[i] + " " + symbols[i + 1]], best == nil || r < best!.rank { best = (r, i) }
            }
            guard let b = best else { break }
            symbols[b.at] += symbols[b.at + 1]
            symbols.remove(at: b.at + 1)
        }
        var out: [Int] = []
        for s in symbols {
            if let id = ids[s] { out.append(id); continue }
            for ch in s { if let id = ids[String(ch)] { out.append(id) } }  // byte tokens always exist in GPT-2 vocabularies
        }
        return out
    }

    // MARK: decoding

    /// The bytes a token stands for (control tokens: their text).
    public func bytes(of token: Int) -> [UInt8] {
        guard token >= 0, token < tokens.count else { return [] }
        let t = tokens[token]
        if specials.contains(where: { $0.1 == token }) { return Array(t.utf8) }
        return t.compactMap { charToByte[$0] }
    }

    public func decode(_ ids: [Int]) -> String {
        String(decoding: ids.flatMap { bytes(of: $0) }, as: UTF8.self)
    }
}
