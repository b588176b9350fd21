#if canImport(Glibc)
import Glibc
#endif
import LowBit

/// One message of a conversation, as a chat template renders it.
public struct ChatMessage: Sendable, Equatable {
    public var role: String, content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// How the next token is picked from logits: greedy at temperature 0, otherwise sampled from
/// the softmax at that temperature, restricted to the `topK` likeliest tokens (0: all) and to the
/// smallest set whose probability reaches `topP`. Tokens among the last `repetitionWindow` of the
/// context have their logit divided by `repetitionPenalty` (multiplied, where negative), as
/// llama.cpp does. The same seed and context give the same tokens.
public struct Sampler: Sendable {
    public var temperature: Float = 0
    public var topK = 0
    public var topP: Float = 1
    public var repetitionPenalty: Float = 1
    public var repetitionWindow = 64
    var state: UInt64

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, repetitionPenalty: Float = 1,
                repetitionWindow: Int = 64, seed: UInt64 = 1) throws {
        guard temperature >= 0, temperature.isFinite, temperature <= 100 else {
            throw LowBitError(.invalidArgument, "temperature \(temperature) must be in 0...100")
        }
        guard topP > 0, topP <= 1 else { throw LowBitError(.invalidArgument, "top-p \(topP) must be in (0, 1]") }
        guard topK >= 0 else { throw LowBitError(.invalidArgument, "top-k \(topK) must be >= 0 (0: off)") }
        guard repetitionPenalty > 0, repetitionPenalty.isFinite, repetitionPenalty <= 100 else {
            throw LowBitError(.invalidArgument, "repetition penalty \(repetitionPenalty) must be in (0, 100] (1: off)")
        }
        guard repetitionWindow >= 0 else {
            throw LowBitError(.invalidArgument, "repetition window \(repetitionWindow) must be >= 0")
        }
        (self.temperature, self.topK, self.topP) = (temperature, topK, topP)
        (self.repetitionPenalty, self.repetitionWindow) = (repetitionPenalty, repetitionWindow)
        state = seed | 1  // xorshift's state must not be 0
    }

    /// The next token after `context` (the tokens before it, for the repetition penalty).
    public mutating func sample(_ logits: [Float], context: ArraySlice<Int> = []) -> Int {
        var logits = logits
        if repetitionPenalty != 1 {
            for id in Set(context.suffix(repetitionWindow)) where id >= 0 && id < logits.count {
                logits[id] = logits[id] > 0 ? logits[id] / repetitionPenalty : logits[id] * repetitionPenalty
            }
        }
        if temperature == 0 { return logits.indices.max { logits[$0] < logits[$1] }! }
        let maxLogit = logits.max()!
        var probs = logits.map { exp(($0 - maxLogit) / temperature) }
        let total = probs.reduce(0, +)
        for i in probs.indices { probs[i] /= total }
        var order = probs.indices.sorted { probs[$0] > probs[$1] }
        if topK > 0, topK < order.count { order.removeLast(order.count - topK) }
        var kept: Float = 0, cut = order.count
        for (i, id) in order.enumerated() {
            kept += probs[id]
            if kept >= topP { cut = i + 1; break }
        }
        order = Array(order[0..<cut])
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        var r = Float(Double(state >> 11) / Double(1 << 53)) * kept
        for id in order {
            r -= probs[id]
            if r <= 0 { return id }
        }
        return order.last!
    }
}

/// A model with a KV cache of its own: the state of one conversation or document. Evaluating
/// tokens appends them to the cache; generation and chat reuse the longest prefix the cache
/// already holds, so a conversation's next turn runs only its new tokens. A failed call leaves
/// the session as it was. One thread at a time per session; sessions of one model may run
/// concurrently.
public final class Session {
    public let model: LlamaModel
    let cache: KVCache
    /// The tokens whose keys and values the cache holds, in order.
    public private(set) var tokens: [Int] = []
    /// Logits after the last token of `tokens` (empty when not known: after a truncation).
    public private(set) var lastLogits: [Float] = []
    /// Tokens of the latest `prefill`'s prompt that the session already held (not run again).
    public private(set) var reusedTokens = 0

    public var capacity: Int { cache.capacity }

    /// A session holding up to `capacity` tokens (nil: the model's context length). The cache
    /// grows with the tokens held, not to its capacity at once.
    public init(model: LlamaModel, capacity: Int? = nil) throws {
        let limit = model.config.contextLength
        let capacity = capacity ?? limit
        guard capacity >= 1, capacity <= limit else {
            throw LowBitError(.invalidArgument, "context length \(capacity) must be 1...\(limit)")
        }
        self.model = model
        cache = model.makeCache(capacity: capacity)
    }

    /// Runs `newTokens` after the tokens held and returns the logits of the last one, or of each
    /// (`allLogits`: newTokens.count × vocabulary, row-major).
    public func eval(_ newTokens: [Int], allLogits: Bool = false) throws -> [Float] {
        try check(newTokens, after: tokens.count)
        let n = newTokens.count
        let logits = try model.forward(newTokens, cache: cache, logitRows: allLogits ? 0..<n : nil)
        tokens += newTokens
        let v = model.config.vocabulary
        lastLogits = Array(logits[(logits.count - v)...])
        return logits
    }

    /// Keeps the first `count` tokens held and forgets the rest.
    public func truncate(to count: Int) throws {
        guard count >= 0, count <= tokens.count else {
            throw LowBitError(.invalidArgument, "cannot keep \(count) tokens of \(tokens.count)")
        }
        keep(count)
    }

    /// Forgets every token held (the cache keeps its memory for the next ones).
    public func reset() { keep(0) }

    /// `truncate` once `count` is known to be within the tokens held.
    private func keep(_ count: Int) {
        if count == tokens.count { return }
        tokens.removeLast(tokens.count - count)
        cache.count = count
        lastLogits = []
    }

    /// Makes the session hold exactly `prompt` and returns the logits after it, running only the
    /// tokens past the longest prefix it already holds.
    public func prefill(_ prompt: [Int]) throws -> [Float] {
        guard !prompt.isEmpty else { throw LowBitError(.invalidArgument, "the prompt has no tokens") }
        var shared = zip(prompt, tokens).prefix { $0 == $1 }.count
        if shared == prompt.count, shared == tokens.count, !lastLogits.isEmpty {
            reusedTokens = shared
            return lastLogits
        }
        shared = min(shared, prompt.count - 1)  // the last token runs again for its logits
        try check(Array(prompt[shared...]), after: shared)
        try truncate(to: shared)
        _ = try eval(Array(prompt[shared...]))
        reusedTokens = shared
        return lastLogits
    }

    /// Token ids that end a turn: end of sequence and ChatML's <|im_end|>.
    public var stopTokens: Set<Int> {
        Set([model.tokenizer.eosID, model.tokenizer.endOfTurnID].compactMap { $0 })
    }

    /// Holds `prompt` (see `prefill`), then samples up to `maxTokens` tokens, each run into the
    /// cache before the next is drawn. `onToken` gets each token with the text it completes
    /// (whole UTF-8 characters: empty while a character is split over tokens) and returns false
    /// to stop. Stops too at a stop token (not returned) or when the cache is full. Returns the
    /// tokens generated.
    public func generate(prompt: [Int], maxTokens: Int, sampler: inout Sampler,
                         onToken: (Int, String) -> Bool = { _, _ in true }) throws -> [Int] {
        guard maxTokens >= 0 else { throw LowBitError(.invalidArgument, "max tokens \(maxTokens) must be >= 0") }
        var logits = try prefill(prompt)
        let stop = stopTokens
        var generated: [Int] = [], pending: [UInt8] = []
        while generated.count < maxTokens {
            let next = sampler.sample(logits, context: tokens[...])
            if stop.contains(next) { break }
            generated.append(next)
            pending += model.tokenizer.bytes(of: next)
            var piece = ""
            if let s = String(validating: pending, as: UTF8.self) { (piece, pending) = (s, []) }
            let more = onToken(next, piece)
            if !more || generated.count == maxTokens || tokens.count == capacity { break }
            logits = try eval([next])
        }
        return generated
    }

    /// One chat turn: renders `messages` in the model's chat template with the assistant's turn
    /// opened, and generates the reply (see `generate`); returns its text. Passing the reply back
    /// as the next turn's last assistant message reuses the cache up to it.
    public func chat(_ messages: [ChatMessage], maxTokens: Int, sampler: inout Sampler,
                     onToken: (Int, String) -> Bool = { _, _ in true }) throws -> String {
        let text = try model.chatPrompt(messages, addGenerationPrompt: true)
        let prompt = model.tokenizer.encode(text, addSpecial: true, parseSpecial: true)
        let reply = try generate(prompt: prompt, maxTokens: maxTokens, sampler: &sampler, onToken: onToken)
        return model.tokenizer.decode(reply)
    }

    /// Throws unless `newTokens` are vocabulary ids that fit in the cache after `count` tokens.
    func check(_ newTokens: [Int], after count: Int) throws {
        guard !newTokens.isEmpty else { throw LowBitError(.invalidArgument, "no tokens to evaluate") }
        guard newTokens.count <= capacity - count else {
            throw LowBitError(.invalidArgument, "context full: \(count) + \(newTokens.count) tokens exceed "
                              + "the context length \(capacity)")
        }
        let v = model.config.vocabulary
        if let bad = newTokens.first(where: { $0 < 0 || $0 >= v }) {
            throw LowBitError(.invalidArgument, "token id \(bad) is outside the vocabulary (0..<\(v))")
        }
    }
}
