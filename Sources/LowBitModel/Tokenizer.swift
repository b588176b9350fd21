import LowBit

/// GPT-2 byte-level BPE, as a GGUF file describes it (`tokenizer.ggml.*`), with the pre-tokenizer
/// the file names (`PreTokenizer`). Control tokens (<|im_start|> …) are recognised in text only
/// when asked (`parseSpecial`).
public final class Tokenizer: @unchecked Sendable {
    public let tokens: [String]
    public let bosID: Int?, eosID: Int?
    public let addBOS: Bool
    public let preTokenizer: PreTokenizer
    /// The end of a chat turn: the file's `tokenizer.ggml.eot_token_id`, else ChatML's <|im_end|>
    /// or Llama 3's <|eot_id|> where the vocabulary has it.
    public let endOfTurnID: Int?
    let ids: [String: Int]
    let mergeRanks: [String: Int]   // "left right" → rank
    let specialIDs: Set<Int>        // control and user-defined tokens
    let specialTrie: SpecialTokenTrie
    let byteToChar: [Character]
    let charToByte: [Character: UInt8]

    public init(gguf: GGUFFile) throws {
        func bad(_ why: String) -> LowBitError { LowBitError(.badFormat, "GGUF tokenizer: \(why)") }
        // A file without a tokenizer model is malformed; one with another model (SentencePiece's
        // "llama" of Llama 2 and Mistral files) is valid, and unsupported here.
        guard let model = gguf.metadata["tokenizer.ggml.model"]?.stringValue else {
            throw bad("no tokenizer.ggml.model")
        }
        guard model == "gpt2" else {
            throw LowBitError(.unsupported, "GGUF tokenizer: model '\(model)' is not supported (only gpt2, "
                                            + "byte-level BPE: Llama 3, Qwen, SmolLM2)")
        }
        let pre = gguf.metadata["tokenizer.ggml.pre"]?.stringValue ?? "default"
        guard let preTokenizer = PreTokenizer(fileName: pre) else {
            throw LowBitError(.unsupported, "GGUF tokenizer: pre-tokenizer '\(pre)' is not supported "
                                            + "(smollm, gpt2, llama-bpe, qwen2)")
        }
        self.preTokenizer = preTokenizer
        guard let names = gguf.metadata["tokenizer.ggml.tokens"]?.arrayValue?.stringValues, !names.isEmpty else {
            throw bad("no token list of strings")
        }
        tokens = names
        var ids: [String: Int] = [:]
        for (i, t) in names.enumerated() where ids[t] == nil { ids[t] = i }
        self.ids = ids
        var ranks: [String: Int] = [:]
        let merges = gguf.metadata["tokenizer.ggml.merges"]
        guard let mergeList = merges == nil ? [] : merges?.arrayValue?.stringValues else {
            throw bad("merges are not strings")
        }
        for (i, s) in mergeList.enumerated() where ranks[s] == nil { ranks[s] = i }
        mergeRanks = ranks
        let typeList = gguf.metadata["tokenizer.ggml.token_type"]?.arrayValue
        let types = typeList.map { a in (0..<a.count).map { a[$0].intValue ?? 1 } } ?? []
        // Control and user-defined tokens; the trie leaves out an empty one, which would match
        // everywhere without consuming text.
        let specialIDs = names.indices.filter { $0 < types.count && (types[$0] == 3 || types[$0] == 4) }
        self.specialIDs = Set(specialIDs)
        specialTrie = SpecialTokenTrie(specialIDs.map { (Array(names[$0].utf8), $0) })
        func tokenID(_ key: String) -> Int? {
            guard let v = gguf.metadata[key]?.intValue, v >= 0, v < names.count else { return nil }
            return v
        }
        bosID = tokenID("tokenizer.ggml.bos_token_id")
        eosID = tokenID("tokenizer.ggml.eos_token_id")
        endOfTurnID = tokenID("tokenizer.ggml.eot_token_id") ?? ids["<|im_end|>"] ?? ids["<|eot_id|>"]
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
            for piece in preTokenizer.split(segment) { out.append(contentsOf: bpe(piece)) }
        }
        return out
    }

    /// The text cut into plain segments and control tokens, the longest token matching first.
    /// Matching works on UTF-8 bytes: a token starts with a lead byte, so cuts fall between
    /// characters, and each position costs at most the longest token's length.
    func splitSpecial(_ text: String, parse: Bool) -> [(String, Int?)] {
        guard parse, !specialIDs.isEmpty else { return [(text, nil)] }
        let bytes = Array(text.utf8)
        var result: [(String, Int?)] = []
        var plainStart = 0, i = 0
        while i < bytes.count {
            guard let (length, id) = specialTrie.longestMatch(bytes, at: i) else { i += 1; continue }
            if plainStart < i { result.append((String(decoding: bytes[plainStart..<i], as: UTF8.self), nil)) }
            result.append((tokens[id], id))
            i += length
            plainStart = i
        }
        if plainStart < bytes.count { result.append((String(decoding: bytes[plainStart...], as: UTF8.self), nil)) }
        return result
    }

    /// Byte-level BPE of one piece: bytes → printable characters, then repeatedly the
    /// lowest-ranked adjacent merge (leftmost on ties). Candidate merges wait in a heap ordered
    /// by (rank, position), and an entry whose symbols have changed since is skipped when it
    /// comes up, so a piece of n bytes takes O(n log n) lookups however long it is.
    func bpe(_ piece: String) -> [Int] {
        var symbols = piece.utf8.map { String(byteToChar[Int($0)]) }
        let n = symbols.count
        var next = Array(1...max(n, 1)), previous = Array(-1..<max(n - 1, 0))
        var alive = [Bool](repeating: true, count: n)
        var heap = MergeHeap()
        func consider(_ left: Int) {
            let right = next[left]
            guard right < n, let rank = mergeRanks[symbols[left] + " " + symbols[right]] else { return }
            heap.push(MergeHeap.Entry(rank: rank, left: left, leftLength: symbols[left].utf8.count,
                                      rightLength: symbols[right].utf8.count))
        }
        for i in 0..<max(n - 1, 0) { consider(i) }
        while let e = heap.pop() {
            let right = next[e.left]
            // Stale: the left symbol was merged away or grew, or its right neighbour changed.
            guard alive[e.left], right < n, symbols[e.left].utf8.count == e.leftLength,
                  symbols[right].utf8.count == e.rightLength else { continue }
            symbols[e.left] += symbols[right]
            alive[right] = false
            next[e.left] = next[right]
            if next[right] < n { previous[next[right]] = e.left }
            if previous[e.left] >= 0 { consider(previous[e.left]) }
            consider(e.left)
        }
        var out: [Int] = []
        var i = 0
        while i < n {
            if let id = ids[symbols[i]] {
                out.append(id)
            } else {
                // A byte the vocabulary has no token for is dropped, as llama.cpp drops it.
                for ch in symbols[i] { if let id = ids[String(ch)] { out.append(id) } }
            }
            i = next[i]
        }
        return out
    }

    // MARK: decoding

    /// The bytes a token stands for (control tokens: their text).
    public func bytes(of token: Int) -> [UInt8] {
        guard token >= 0, token < tokens.count else { return [] }
        let t = tokens[token]
        if specialIDs.contains(token) { return Array(t.utf8) }
        return t.compactMap { charToByte[$0] }
    }

    /// Whether the vocabulary has a token for this byte alone; bytes without one are dropped
    /// when encoding, as llama.cpp drops them.
    public func hasToken(forByte b: UInt8) -> Bool { ids[String(byteToChar[Int(b)])] != nil }

    public func decode(_ ids: [Int]) -> String {
        String(decoding: ids.flatMap { bytes(of: $0) }, as: UTF8.self)
    }
}

/// Control tokens by their UTF-8 bytes, for longest-match search in text.
struct SpecialTokenTrie {
    /// Children of each node by byte, and the token that ends at it.
    private var children: [[UInt8: Int]] = [[:]]
    private var token: [Int?] = [nil]

    /// Tokens longer than this are never looked for in text: no control token comes near it,
    /// and it bounds the work per position of text.
    static let maxLength = 256

    init(_ tokens: [([UInt8], Int)]) {
        for (bytes, id) in tokens where !bytes.isEmpty && bytes.count <= SpecialTokenTrie.maxLength {
            var node = 0
            for b in bytes {
                if let child = children[node][b] {
                    node = child
                } else {
                    children.append([:])
                    token.append(nil)
                    children[node][b] = children.count - 1
                    node = children.count - 1
                }
            }
            if token[node] == nil { token[node] = id }  // the first of duplicate names wins
        }
    }

    /// The longest token that `bytes` holds at `start`: its length and id.
    func longestMatch(_ bytes: [UInt8], at start: Int) -> (length: Int, id: Int)? {
        var node = 0, best: (Int, Int)? = nil
        var i = start
        while i < bytes.count, let child = children[node][bytes[i]] {
            node = child
            i += 1
            if let id = token[node] { best = (i - start, id) }
        }
        return best
    }
}

/// A binary min-heap of candidate merges ordered by rank, then by position (leftmost first).
struct MergeHeap {
    struct Entry {
        let rank: Int, left: Int, leftLength: Int, rightLength: Int
        func precedes(_ o: Entry) -> Bool { rank != o.rank ? rank < o.rank : left < o.left }
    }
    private var items: [Entry] = []

    mutating func push(_ e: Entry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i].precedes(items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Entry? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        guard !items.isEmpty else { return top }
        items[0] = last
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var smallest = i
            if l < items.count, items[l].precedes(items[smallest]) { smallest = l }
            if r < items.count, items[r].precedes(items[smallest]) { smallest = r }
            if smallest == i { break }
            items.swapAt(i, smallest)
            i = smallest
        }
        return top
    }
}
