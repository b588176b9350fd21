import LowBit

/// The tokenizer a GGUF file describes (`tokenizer.ggml.*`): GPT-2's byte-level BPE (Llama 3,
/// Qwen, SmolLM2) or SentencePiece's BPE (Llama 2, Mistral), over one vocabulary. Control and
/// user-defined tokens (<|im_start|>, <s> …) are recognised in text only when asked (`parseSpecial`).
public final class Tokenizer: @unchecked Sendable {
    public let tokens: [String]
    public let bosID: Int?, eosID: Int?
    public let addBOS: Bool
    /// The end of a chat turn: the file's `tokenizer.ggml.eot_token_id`, else ChatML's <|im_end|>
    /// or Llama 3's <|eot_id|> where the vocabulary has it.
    public let endOfTurnID: Int?
    /// How pieces of plain text become tokens: the file's `tokenizer.ggml.model`.
    enum Scheme {
        case byteLevel(ByteLevelBPE)        // "gpt2"
        case sentencePiece(SentencePieceBPE) // "llama"
    }
    let scheme: Scheme
    let ids: TokenIDs
    let specialIDs: Set<Int>        // control and user-defined tokens
    let specialTrie: SpecialTokenTrie

    public init(gguf: GGUFFile) throws {
        func bad(_ why: String) -> LowBitError { LowBitError(.badFormat, "GGUF tokenizer: \(why)") }
        guard let model = gguf.metadata["tokenizer.ggml.model"]?.stringValue else {
            throw bad("no tokenizer.ggml.model")
        }
        guard model == "gpt2" || model == "llama" else {
            throw LowBitError(.unsupported, "GGUF tokenizer: model '\(model)' is not supported (gpt2: "
                              + "byte-level BPE of Llama 3, Qwen, SmolLM2; llama: SentencePiece of Llama 2, Mistral)")
        }
        guard let names = gguf.metadata["tokenizer.ggml.tokens"]?.arrayValue?.stringValues, !names.isEmpty else {
            throw bad("no token list of strings")
        }
        tokens = names
        let ids = TokenIDs(names)
        self.ids = ids
        // Token types as llama.cpp writes them: 1 normal, 2 unknown, 3 control, 4 user-defined,
        // 5 unused, 6 byte; a missing entry is normal.
        let typeList = gguf.metadata["tokenizer.ggml.token_type"]?.arrayValue
        let types = (0..<names.count).map { i in
            typeList.flatMap { i < $0.count ? $0[i].intValue : nil } ?? TokenType.normal
        }
        // Control and user-defined tokens; the trie leaves out an empty one, which would match
        // everywhere without consuming text.
        let specialIDs = names.indices.filter { types[$0] == TokenType.control || types[$0] == TokenType.userDefined }
        self.specialIDs = Set(specialIDs)
        specialTrie = SpecialTokenTrie(specialIDs.map { (Array(names[$0].utf8), $0) })
        func tokenID(_ key: String) -> Int? {
            guard let v = gguf.metadata[key]?.intValue, v >= 0, v < names.count else { return nil }
            return v
        }
        bosID = tokenID("tokenizer.ggml.bos_token_id")
        eosID = tokenID("tokenizer.ggml.eos_token_id")
        endOfTurnID = tokenID("tokenizer.ggml.eot_token_id") ?? ids["<|im_end|>"] ?? ids["<|eot_id|>"]
        if model == "gpt2" {
            scheme = .byteLevel(try ByteLevelBPE(gguf: gguf))
        } else {
            scheme = .sentencePiece(try SentencePieceBPE(gguf: gguf, names: names, types: types, ids: ids,
                                                         unknownID: tokenID("tokenizer.ggml.unknown_token_id")))
        }
        // SentencePiece models begin every text with BOS unless the file says otherwise.
        let bosByDefault = model == "llama"
        let addBOSFlag = gguf.metadata["tokenizer.ggml.add_bos_token"].map { $0 == .bool(true) } ?? bosByDefault
        addBOS = addBOSFlag && bosID != nil
    }

    public var vocabularySize: Int { tokens.count }

    // MARK: encoding

    /// Token ids of `text`. `addSpecial`: prepend BOS when the model asks for it;
    /// `parseSpecial`: turn control-token text such as <|im_start|> into those tokens.
    public func encode(_ text: String, addSpecial: Bool = true, parseSpecial: Bool = false) -> [Int] {
        var out: [Int] = []
        if addSpecial, addBOS, let bos = bosID { out.append(bos) }
        // SentencePiece's space prefix goes before the text and after each control token in it,
        // where the model saw a word begin in training.
        var afterSpecial = true
        for (segment, special) in splitSpecial(text, parse: parseSpecial) {
            if let id = special {
                out.append(id)
                afterSpecial = true
                continue
            }
            switch scheme {
            case .byteLevel(let bpe):
                for piece in bpe.preTokenizer.split(segment) { out.append(contentsOf: bpe.merge(piece, ids: ids)) }
            case .sentencePiece(let spm):
                guard !segment.isEmpty else { continue }
                spm.encode(spm.addSpacePrefix && afterSpecial ? " " + segment : segment, ids: ids, into: &out)
            }
            afterSpecial = false
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

    // MARK: decoding

    /// The bytes a token stands for, as a piece of streamed text (control and user-defined
    /// tokens: their text).
    public func bytes(of token: Int) -> [UInt8] {
        guard token >= 0, token < tokens.count else { return [] }
        if specialIDs.contains(token) { return Array(tokens[token].utf8) }
        switch scheme {
        case .byteLevel(let bpe): return bpe.bytes(of: tokens[token])
        case .sentencePiece(let spm): return spm.bytes(of: token, text: tokens[token])
        }
    }

    /// Whether this byte alone survives encoding; a byte without a token is dropped, as
    /// llama.cpp drops it.
    public func hasToken(forByte b: UInt8) -> Bool {
        switch scheme {
        case .byteLevel(let bpe): return bpe.hasToken(forByte: b, ids: ids)
        case .sentencePiece(let spm): return spm.hasToken(forByte: b, ids: ids)
        }
    }

    /// `ids` as one text: their bytes in order, less the space a SentencePiece model puts before
    /// a text (`encode`), as SentencePiece's own decoder gives it. Streamed text uses `bytes(of:)`,
    /// which keeps every space: a continuation's first word needs its space.
    public func decode(_ ids: [Int]) -> String {
        var out: [UInt8] = []
        var dropSpacePrefix = false
        if case .sentencePiece(let spm) = scheme { dropSpacePrefix = spm.addSpacePrefix }
        for id in ids {
            let piece = bytes(of: id)
            if dropSpacePrefix, !specialIDs.contains(id) {
                out += piece.first == UInt8(ascii: " ") ? piece.dropFirst() : piece[...]
                dropSpacePrefix = false
            } else {
                out += piece
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `ids` as text that follows other text: every token's bytes, spaces and all.
    public func continuation(_ ids: [Int]) -> String {
        String(decoding: ids.flatMap { bytes(of: $0) }, as: UTF8.self)
    }

    /// Whether the file's tokenizer is SentencePiece's ("llama"), whose `decode` drops the space
    /// it puts before a text.
    public var isSentencePiece: Bool {
        if case .sentencePiece = scheme { return true }
        return false
    }
}

/// Token ids by their text, compared byte for byte: Swift's String equality is canonical
/// equivalence, under which "e\u{301}" and "é" would be one token, where tokenizers tell them apart.
struct TokenIDs: Sendable {
    private struct Key: Hashable {
        let text: String
        static func == (a: Key, b: Key) -> Bool { a.text.utf8.elementsEqual(b.text.utf8) }
        func hash(into hasher: inout Hasher) {
            for byte in text.utf8 { hasher.combine(byte) }
        }
    }
    private let ids: [Key: Int]

    /// The first of tokens with the same text wins.
    init(_ names: [String]) {
        var ids: [Key: Int] = [:]
        for (i, t) in names.enumerated() where ids[Key(text: t)] == nil { ids[Key(text: t)] = i }
        self.ids = ids
    }

    subscript(_ text: String) -> Int? { ids[Key(text: text)] }
}

/// Token types as GGUF files give them (`tokenizer.ggml.token_type`).
enum TokenType {
    static let normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
}

/// Repeatedly merges the adjacent pair of symbols that `priority` ranks first (lowest; the
/// leftmost on ties) until no pair has a priority, and returns the symbols left. Candidate
/// merges wait in a heap, and an entry whose symbols have changed since is skipped when it comes
/// up, so n symbols take O(n log n) lookups however long the text is.
func mergePairs<P: Comparable>(_ initial: [String], priority: (String, String) -> P?) -> [String] {
    var symbols = initial
    let n = symbols.count
    var next = Array(1...max(n, 1)), previous = Array(-1..<max(n - 1, 0))
    var alive = [Bool](repeating: true, count: n)
    var heap = MergeHeap<P>()
    func consider(_ left: Int) {
        let right = next[left]
        guard right < n, let p = priority(symbols[left], symbols[right]) else { return }
        heap.push(MergeHeap.Entry(priority: p, left: left, leftLength: symbols[left].utf8.count,
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
    return symbols.indices.filter { alive[$0] }.map { symbols[$0] }
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

/// A binary min-heap of candidate merges ordered by priority, then by position (leftmost first).
struct MergeHeap<Priority: Comparable> {
    struct Entry {
        let priority: Priority, left: Int, leftLength: Int, rightLength: Int
        func precedes(_ o: Entry) -> Bool { priority != o.priority ? priority < o.priority : left < o.left }
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
