/// How a byte-level BPE tokenizer cuts text into pieces before merging (`tokenizer.ggml.pre`):
/// merges never cross a piece's edge. Each case is its model family's regular expression,
/// written out as a scanner that takes the pattern's first alternative matching at each point;
/// text no alternative matches is a piece of its own (llama.cpp's rule).
public enum PreTokenizer: Sendable, Equatable {
    /// SmolLM2's: every \p{N} alone, then GPT-2's pattern on the rest,
    ///   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
    case smollm
    /// Llama 3's pattern (and Qwen2's with `maxDigits` 1):
    ///   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*
    ///   |\s*[\r\n]+|\s+(?!\S)|\s+
    case llama3(maxDigits: Int)

    /// The pre-tokenizer a file names, or nil for one this tokenizer does not have.
    public init?(fileName: String) {
        switch fileName {
        case "smollm", "gpt2", "default": self = .smollm
        case "llama-bpe", "llama3", "llama-v3": self = .llama3(maxDigits: 3)
        case "qwen2", "deepseek-r1-qwen": self = .llama3(maxDigits: 1)
        default: return nil
        }
    }

    public func split(_ text: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        switch self {
        case .smollm:
            var pieces: [String] = []
            var start = 0
            for (i, s) in scalars.enumerated() where PreTokenizer.isNumber(s) {
                if start < i { pieces.append(contentsOf: PreTokenizer.gpt2Split(scalars[start..<i])) }
                pieces.append(String(s))
                start = i + 1
            }
            if start < scalars.count { pieces.append(contentsOf: PreTokenizer.gpt2Split(scalars[start...])) }
            return pieces
        case .llama3(let maxDigits):
            return PreTokenizer.llama3Split(scalars[...], maxDigits: maxDigits)
        }
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
    static func isNewline(_ s: Unicode.Scalar) -> Bool { s == "\r" || s == "\n" }
    /// [^\s\p{L}\p{N}]: punctuation, symbols and the rest.
    static func isOther(_ s: Unicode.Scalar) -> Bool { !isSpace(s) && !isLetter(s) && !isNumber(s) }

    /// The end of the contraction ('s 't 're 've 'm 'll 'd) starting at i, if one does.
    static func contractionEnd(_ s: ArraySlice<Unicode.Scalar>, at i: Int, ignoringCase: Bool) -> Int? {
        guard s[i] == "'", i + 1 < s.endIndex else { return nil }
        let rest = String(String.UnicodeScalarView(s[(i + 1)..<min(s.endIndex, i + 3)]))
        let word = ignoringCase ? rest.lowercased() : rest
        if word.hasPrefix("re") || word.hasPrefix("ve") || word.hasPrefix("ll") { return i + 3 }
        if let f = word.unicodeScalars.first, "stmd".unicodeScalars.contains(f) { return i + 2 }
        return nil
    }

    /// The end of the run of scalars from j on that satisfy `pred`.
    static func run(_ s: ArraySlice<Unicode.Scalar>, from j: Int, _ pred: (Unicode.Scalar) -> Bool) -> Int {
        var k = j
        while k < s.endIndex, pred(s[k]) { k += 1 }
        return k
    }

    /// Whitespace from i: all of it at the end of text; otherwise all but the last character,
    /// which may start the next piece (" word"); a single one stays alone (\s+(?!\S)|\s+).
    static func spaceEnd(_ s: ArraySlice<Unicode.Scalar>, at i: Int) -> Int {
        let k = run(s, from: i, isSpace)
        return k == s.endIndex || k - i == 1 ? k : k - 1
    }

    static func gpt2Split(_ s: ArraySlice<Unicode.Scalar>) -> [String] {
        var out: [String] = []
        var i = s.startIndex
        while i < s.endIndex {
            var end = contractionEnd(s, at: i, ignoringCase: false) ?? i
            if end == i {
                let j = (s[i] == " " && i + 1 < s.endIndex && !isSpace(s[i + 1])) ? i + 1 : i
                if isLetter(s[j]) { end = run(s, from: j, isLetter) }
                else if isNumber(s[j]) { end = run(s, from: j, isNumber) }
                else if isOther(s[j]) { end = run(s, from: j, isOther) }
                else { end = spaceEnd(s, at: i) }
            }
            out.append(String(String.UnicodeScalarView(s[i..<end])))
            i = end
        }
        return out
    }

    static func llama3Split(_ s: ArraySlice<Unicode.Scalar>, maxDigits: Int) -> [String] {
        var out: [String] = []
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i], next = i + 1 < s.endIndex ? s[i + 1] : nil
            let end: Int
            if let e = contractionEnd(s, at: i, ignoringCase: true) {
                end = e
            } else if isLetter(c) {
                end = run(s, from: i, isLetter)
            } else if !isNewline(c), !isNumber(c), let next, isLetter(next) {
                end = run(s, from: i + 1, isLetter)               // one leading non-letter, then letters
            } else if isNumber(c) {
                end = min(run(s, from: i, isNumber), i + maxDigits)
            } else if isOther(c) || (c == " " && next.map(isOther) == true) {
                let others = run(s, from: isOther(c) ? i : i + 1, isOther)
                end = run(s, from: others, isNewline)              // punctuation keeps its line breaks
            } else {
                // Whitespace: up to its last line break where it has one (\s*[\r\n]+).
                let k = run(s, from: i, isSpace)
                let lastBreak = s[i..<k].lastIndex(where: isNewline)
                end = lastBreak.map { $0 + 1 } ?? spaceEnd(s, at: i)
            }
            out.append(String(String.UnicodeScalarView(s[i..<end])))
            i = end
        }
        return out
    }
}
