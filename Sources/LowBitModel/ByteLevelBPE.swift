import LowBit

/// GPT-2's byte-level BPE (`tokenizer.ggml.model` "gpt2"): text is cut into pieces by the file's
/// pre-tokenizer, each piece's bytes become printable characters, and the file's merges join
/// them, lowest rank first.
struct ByteLevelBPE: Sendable {
    let preTokenizer: PreTokenizer
    let mergeRanks: [String: Int]   // "left right" → rank
    let byteToChar: [Character]
    let charToByte: [Character: UInt8]

    init(gguf: GGUFFile) throws {
        let pre = gguf.metadata["tokenizer.ggml.pre"]?.stringValue ?? "default"
        guard let preTokenizer = PreTokenizer(fileName: pre) else {
            throw LowBitError(.unsupported, "GGUF tokenizer: pre-tokenizer '\(pre)' is not supported "
                                            + "(smollm, gpt2, llama-bpe, qwen2)")
        }
        self.preTokenizer = preTokenizer
        var ranks: [String: Int] = [:]
        let merges = gguf.metadata["tokenizer.ggml.merges"]
        guard let mergeList = merges == nil ? [] : merges?.arrayValue?.stringValues else {
            throw LowBitError(.badFormat, "GGUF tokenizer: merges are not strings")
        }
        for (i, s) in mergeList.enumerated() where ranks[s] == nil { ranks[s] = i }
        mergeRanks = ranks
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

    /// The tokens of one pre-tokenized piece: its bytes as printable characters, merged.
    func merge(_ piece: String, ids: TokenIDs) -> [Int] {
        let symbols = mergePairs(piece.utf8.map { String(byteToChar[Int($0)]) }) { mergeRanks[$0 + " " + $1] }
        var out: [Int] = []
        for symbol in symbols {
            if let id = ids[symbol] {
                out.append(id)
            } else {
                // A byte the vocabulary has no token for is dropped, as llama.cpp drops it.
                for ch in symbol { if let id = ids[String(ch)] { out.append(id) } }
            }
        }
        return out
    }

    /// The bytes a normal token's text stands for.
    func bytes(of text: String) -> [UInt8] { text.compactMap { charToByte[$0] } }

    func hasToken(forByte b: UInt8, ids: TokenIDs) -> Bool { ids[String(byteToChar[Int(b)])] != nil }
}
