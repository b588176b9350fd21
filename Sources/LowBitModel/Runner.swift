#if canImport(Glibc)
import Glibc
#endif
import LowBit

extension LlamaModel {
    /// The prompt in the model's chat format (see `chatPrompt(_:addGenerationPrompt:)`).
    public func chatPrompt(_ user: String) throws -> String {
        try chatPrompt([ChatMessage(role: "user", content: user)], addGenerationPrompt: true)
    }

    /// `messages` in the model's chat format, then (`addGenerationPrompt`) the opening of the
    /// assistant's turn. Three formats cover the files this runner takes, recognized by their
    /// template's markers (a general template language is beyond a chat format): ChatML (SmolLM2,
    /// Qwen), with the template's default system message first when the conversation has none;
    /// Llama 3's role headers; and the [INST] turns of Llama 2 and Mistral. The tokenizer adds the
    /// first BOS. Roles are plain words (system, user, assistant, ...).
    public func chatPrompt(_ messages: [ChatMessage], addGenerationPrompt: Bool) throws -> String {
        for m in messages where m.role.isEmpty || !m.role.unicodeScalars.allSatisfy({ $0.properties.isAlphabetic }) {
            throw LowBitError(.invalidArgument, "chat role '\(m.role)' must be a word (system, user, assistant)")
        }
        guard let template = chatTemplate else {
            throw LowBitError(.unsupported, "this model has no chat template; use a plain prompt")
        }
        if template.contains("<|start_header_id|>") {
            var text = ""
            for m in messages { text += "<|start_header_id|>\(m.role)<|end_header_id|>\n\n\(m.content)<|eot_id|>" }
            return addGenerationPrompt ? text + "<|start_header_id|>assistant<|end_header_id|>\n\n" : text
        }
        if template.contains("[INST]") { return LlamaModel.instructPrompt(messages, template: template) }
        guard template.contains("<|im_start|>") else {
            throw LowBitError(.unsupported, "this model's chat template is not ChatML, Llama 3's or [INST] turns; "
                                            + "use a plain prompt")
        }
        var text = ""
        let marker = "'<|im_start|>system\n"
        if messages.first?.role != "system",
           let at = template.indices.first(where: { template[$0...].hasPrefix(marker) }) {
            // The template's default system message, used when the conversation has none.
            let rest = template[template.index(at, offsetBy: marker.count)...]
            if let end = rest.indices.first(where: { rest[$0...].hasPrefix("<|im_end|>") }) {
                text += "<|im_start|>system\n\(rest[..<end])<|im_end|>\n"
            }
        }
        for m in messages { text += "<|im_start|>\(m.role)\n\(m.content)<|im_end|>\n" }
        return addGenerationPrompt ? text + "<|im_start|>assistant\n" : text
    }

    /// Llama 2's and Mistral's turns: "[INST] question [/INST]" and the reply closed by </s>; the
    /// prompt ends at [/INST], where the reply begins. A system message goes in Llama 2's <<SYS>>
    /// block, or on a line of its own before the first question where the template has none. The
    /// template says whether a later turn starts with BOS and whether contents are trimmed.
    static func instructPrompt(_ messages: [ChatMessage], template: String) -> String {
        let systemBlock = template.contains("<<SYS>>")
        let bosInHistory = template.contains("bos_token + '[INST]")
        let trim = template.contains(".strip()")
        func trimmed(_ s: String) -> String {
            guard let first = s.firstIndex(where: { !$0.isWhitespace }),
                  let last = s.lastIndex(where: { !$0.isWhitespace }) else { return "" }
            return String(s[first...last])
        }
        var text = "[INST] ", insideTurn = true
        for m in messages {
            let content = trim ? trimmed(m.content) : m.content
            if !insideTurn {
                text += bosInHistory ? "<s>[INST] " : "[INST] "
                insideTurn = true
            }
            switch m.role {
            case "system": text += systemBlock ? "<<SYS>>\n\(content)\n<</SYS>>\n\n" : content + "\n"
            case "user": text += content + " [/INST]"
            default:
                text += content + "</s>"
                insideTurn = false
            }
        }
        return text
    }

    public struct GenerationStats: Sendable {
        public var promptTokens = 0, generatedTokens = 0
        /// Forward passes of one token (the first generated token comes from the prompt's pass).
        public var decodeSteps = 0
        public var promptSeconds = 0.0, generationSeconds = 0.0
        public var promptTokensPerSecond: Double { Double(promptTokens) / max(promptSeconds, 1e-9) }
        /// Decode speed: one-token forward passes per second (0 when none ran).
        public var generationTokensPerSecond: Double {
            decodeSteps == 0 ? 0 : Double(decodeSteps) / max(generationSeconds, 1e-9)
        }
    }

    /// Generates up to `maxTokens` tokens after `prompt` (greedy when temperature is 0), calling
    /// `onText` with each new piece of text (whole UTF-8 characters), on a session of its own
    /// (see `Session.generate`), and times the prompt and the decode steps apart.
    public func generate(_ prompt: String, chat: Bool = false, maxTokens: Int = 64, temperature: Float = 0,
                         topP: Float = 1, seed: UInt64 = 1,
                         onText: (String) -> Void = { _ in }) throws -> (String, GenerationStats) {
        guard maxTokens >= 0 else { throw LowBitError(.invalidArgument, "max tokens must be >= 0") }
        var sampler = try Sampler(temperature: temperature, topP: topP, seed: seed)
        let text = chat ? try chatPrompt(prompt) : prompt
        let tokens = tokenizer.encode(text, addSpecial: true, parseSpecial: chat)
        guard !tokens.isEmpty else { throw LowBitError(.invalidArgument, "the prompt is empty") }
        let session = try Session(model: self, capacity: min(config.contextLength, tokens.count + maxTokens + 1))
        var stats = GenerationStats()
        var t0 = monotonicSeconds()
        _ = try session.prefill(tokens)
        stats.promptSeconds = monotonicSeconds() - t0
        stats.promptTokens = tokens.count
        t0 = monotonicSeconds()
        // The session holds the prompt now, so `generate` starts from its logits.
        let generated = try session.generate(prompt: tokens, maxTokens: maxTokens, sampler: &sampler) { _, piece in
            if !piece.isEmpty { onText(piece) }
            return true
        }
        stats.generationSeconds = monotonicSeconds() - t0
        stats.generatedTokens = generated.count
        stats.decodeSteps = session.tokens.count - tokens.count
        // A reply is a text of its own; a continuation keeps the space before its first word.
        return (chat ? tokenizer.decode(generated) : tokenizer.continuation(generated), stats)
    }

    /// Perplexity by llama-perplexity's protocol: the text's tokens (BOS only if the model asks)
    /// in consecutive chunks of `context` tokens, each evaluated from an empty cache (with BOS
    /// in its first position if the model uses one) and scored on its second half.
    public func perplexity(_ text: String, context: Int = 512, chunks: Int? = nil,
                           progress: (Int, Int, Double) -> Void = { _, _, _ in }) throws -> (perplexity: Double,
                                                                                             tokens: Int) {
        guard context >= 16, context <= config.contextLength else {
            throw LowBitError(.invalidArgument, "context \(context) must be 16...\(config.contextLength)")
        }
        let tokens = tokenizer.encode(text, addSpecial: true)
        let available = tokens.count / context
        let count = min(chunks ?? available, available)
        guard count >= 1 else {
            throw LowBitError(.invalidArgument,
                              "the text has \(tokens.count) tokens, fewer than one context of \(context)")
        }
        let first = context / 2
        var nll: Double = 0, scored = 0
        let cache = makeCache(capacity: context)
        for chunk in 0..<count {
            var batch = Array(tokens[(chunk * context)..<((chunk + 1) * context)])
            if tokenizer.addBOS, let bos = tokenizer.bosID { batch[0] = bos }
            cache.reset()
            let logits = try forward(batch, cache: cache, logitRows: first..<(context - 1))
            let v = config.vocabulary, rows = context - 1 - first
            // Each scored row's −log p of its target, rows on the thread pool, summed in order.
            var rowLoss = [Double](repeating: 0, count: rows)
            logits.withUnsafeBufferPointer { lp in
                rowLoss.withUnsafeMutableBufferPointer { out in
                    parallelFor(rows) { row in
                        let l = UnsafeBufferPointer(rebasing: lp[(row * v)..<((row + 1) * v)])
                        let m = l.max()!
                        var sum: Double = 0
                        for x in l { sum += Double(exp(x - m)) }
                        let target = tokens[chunk * context + first + row + 1]
                        out[row] = -(Double(l[target] - m) - log(sum))
                    }
                }
            }
            for loss in rowLoss { nll += loss }
            scored += rows
            progress(chunk + 1, count, exp(nll / Double(scored)))
        }
        return (exp(nll / Double(scored)), scored)
    }
}
