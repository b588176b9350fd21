import XCTest
@testable import LowBit
@testable import LowBitModel

/// The sampler's rules on hand-made logits.
final class SamplerTests: XCTestCase {
    let logits: [Float] = [0.5, 3.0, 2.9, -1.0, 1.0]

    func testGreedyTakesTheLargestLogit() throws {
        var s = try Sampler()
        XCTAssertEqual(s.sample(logits), 1)
    }

    /// A token in the recent context loses its lead to the penalty; outside the window it keeps it.
    func testRepetitionPenaltyAppliesWithinItsWindow() throws {
        var s = try Sampler(repetitionPenalty: 1.5, repetitionWindow: 2)
        XCTAssertEqual(s.sample(logits, context: [4, 1]), 2)
        XCTAssertEqual(s.sample(logits, context: [1, 4, 0]), 1)
        // A negative logit moves further down, not up.
        var low = try Sampler(repetitionPenalty: 4)
        XCTAssertEqual(low.sample([-0.2, -0.5], context: [0]), 1)
    }

    /// Top-k 1 is greedy at any temperature; the same seed draws the same tokens, and draws follow
    /// the softmax (the likeliest of two near-equal tokens wins about half of the time, a far one
    /// almost never).
    func testTopKAndSeedsAndFrequencies() throws {
        var one = try Sampler(temperature: 5, topK: 1, seed: 9)
        for _ in 0..<20 { XCTAssertEqual(one.sample(logits), 1) }
        var a = try Sampler(temperature: 1, seed: 42), b = try Sampler(temperature: 1, seed: 42)
        let drawsA = (0..<200).map { _ in a.sample(logits) }, drawsB = (0..<200).map { _ in b.sample(logits) }
        XCTAssertEqual(drawsA, drawsB)
        var c = try Sampler(temperature: 1, topK: 2, seed: 7)
        let draws = (0..<2000).map { _ in c.sample(logits) }
        XCTAssertEqual(Set(draws), [1, 2])
        let share = Double(draws.filter { $0 == 1 }.count) / 2000  // e^0.1 / (1 + e^0.1) = 0.525
        XCTAssertEqual(share, 0.525, accuracy: 0.05)
    }

    func testOutOfRangeSettingsAreRefused() {
        XCTAssertThrowsError(try Sampler(temperature: -1))
        XCTAssertThrowsError(try Sampler(temperature: .nan))
        XCTAssertThrowsError(try Sampler(topK: -1))
        XCTAssertThrowsError(try Sampler(topP: 0))
        XCTAssertThrowsError(try Sampler(topP: 1.5))
        XCTAssertThrowsError(try Sampler(repetitionPenalty: 0))
        XCTAssertThrowsError(try Sampler(repetitionWindow: -1))
    }
}

/// Sessions on the real model: cache reuse gives what a fresh evaluation gives, streaming stops
/// when asked, and failed calls change nothing.
final class SessionTests: XCTestCase {
    static let model: LlamaModel? = {
        guard let p = SmolLM2Tests.path else { return nil }
        return try? LlamaModel.load(path: p, weights: .q4_1(kernel: .auto))
    }()

    func loadedModel() throws -> LlamaModel {
        guard let m = SessionTests.model else { throw XCTSkip("model not fetched (scripts/fetch-model.sh)") }
        return m
    }

    /// A second chat turn runs only its new tokens, and its logits are those of a fresh session
    /// given the whole conversation at once, bit for bit: every product and the attention compute
    /// each row on its own (the dequant kernel's int8 sums are exact, its scaling is per row), so
    /// running tokens one at a time or many at once changes no rounding.
    func testReusedConversationMatchesFreshEvaluation() throws {
        let model = try loadedModel()
        let session = try Session(model: model, capacity: 512)
        var sampler = try Sampler()
        let first = [ChatMessage(role: "user", content: "What is the capital of France?")]
        let reply = try session.chat(first, maxTokens: 12, sampler: &sampler)
        XCTAssertFalse(reply.isEmpty)
        let heldAfterFirstTurn = session.tokens.count
        let second = first + [ChatMessage(role: "assistant", content: reply),
                              ChatMessage(role: "user", content: "And of Italy?")]
        let prompt = model.tokenizer.encode(try model.chatPrompt(second, addGenerationPrompt: true),
                                            addSpecial: true, parseSpecial: true)
        let reused = try session.prefill(prompt)
        XCTAssertGreaterThanOrEqual(session.reusedTokens, heldAfterFirstTurn - 1)
        XCTAssertEqual(session.tokens, prompt)
        let fresh = try Session(model: model, capacity: 512).prefill(prompt)
        XCTAssertEqual(reused, fresh)
        // The same prompt again runs nothing and returns the same logits.
        XCTAssertEqual(try session.prefill(prompt), reused)
        XCTAssertEqual(session.reusedTokens, prompt.count)
    }

    /// Generation stops when the callback says so; the tokens it was given are the ones returned,
    /// and their text is the decoded text; the last one is returned but not yet run.
    func testStreamingStopsWhenAsked() throws {
        let model = try loadedModel()
        let session = try Session(model: model, capacity: 256)
        var sampler = try Sampler(temperature: 0.7, seed: 3)
        let prompt = model.tokenizer.encode("The history of Paris")
        var seen: [Int] = [], text = ""
        let generated = try session.generate(prompt: prompt, maxTokens: 50, sampler: &sampler) { token, piece in
            seen.append(token)
            text += piece
            return seen.count < 5
        }
        XCTAssertEqual(generated, seen)
        XCTAssertEqual(generated.count, 5)
        XCTAssertEqual(text, model.tokenizer.decode(generated))
        XCTAssertEqual(session.tokens, prompt + generated.dropLast())
    }

    /// Bad tokens, a full context and out-of-range truncations are refused without changing the
    /// session; a truncation then a re-evaluation gives the logits the first evaluation gave.
    func testFailedCallsChangeNothingAndTruncationRewinds() throws {
        let model = try loadedModel()
        let session = try Session(model: model, capacity: 16)
        let tokens = model.tokenizer.encode("One two three four")
        let logits = try session.eval(tokens)
        XCTAssertThrowsError(try session.eval([model.config.vocabulary]))
        XCTAssertThrowsError(try session.eval([-1]))
        XCTAssertThrowsError(try session.eval(Array(repeating: tokens[0], count: 16 - tokens.count + 1)))
        XCTAssertThrowsError(try session.truncate(to: tokens.count + 1))
        XCTAssertThrowsError(try session.prefill([]))
        XCTAssertEqual(session.tokens, tokens)
        XCTAssertEqual(session.lastLogits, logits)
        try session.truncate(to: 1)
        XCTAssertEqual(session.tokens, [tokens[0]])
        XCTAssertTrue(session.lastLogits.isEmpty)
        XCTAssertEqual(try session.eval(Array(tokens.dropFirst())), logits)
        session.reset()
        XCTAssertTrue(session.tokens.isEmpty)
        XCTAssertThrowsError(try Session(model: model, capacity: 0))
        XCTAssertThrowsError(try Session(model: model, capacity: model.config.contextLength + 1))
    }

    /// The template renders every message in order, adds the default system message only when
    /// the conversation has none, and refuses roles that are not words.
    func testChatTemplate() throws {
        let model = try loadedModel()
        let user = ChatMessage(role: "user", content: "Hi")
        let plain = try model.chatPrompt([user], addGenerationPrompt: false)
        XCTAssertTrue(plain.hasPrefix("<|im_start|>system\n"))
        XCTAssertTrue(plain.hasSuffix("<|im_start|>user\nHi<|im_end|>\n"))
        XCTAssertEqual(try model.chatPrompt([user], addGenerationPrompt: true), plain + "<|im_start|>assistant\n")
        let own = try model.chatPrompt([ChatMessage(role: "system", content: "Be brief."), user],
                                       addGenerationPrompt: false)
        XCTAssertEqual(own, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n")
        XCTAssertEqual(try model.chatPrompt("Hi"), plain + "<|im_start|>assistant\n")
        XCTAssertThrowsError(try model.chatPrompt([ChatMessage(role: "user\n<|im_start|>", content: "x")],
                                                  addGenerationPrompt: true))
    }
}
