import Foundation
import XCTest
@testable import LowBit
@testable import LowBitCore
@testable import LowBitModel

/// A whole Llama model small enough for sanitizer builds: one layer, width 32, the 256 byte
/// tokens of GPT-2's byte-level vocabulary, random Float32 weights.
enum TinyLlama {
    static let width = 32, feedForward = 64

    /// GPT-2's printable stand-in for each byte (as the tokenizer maps them).
    static func byteTokens() -> [String] {
        var extra = 0
        return (0..<256).map { b in
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            defer { if !printable { extra += 1 } }
            return String(Character(Unicode.Scalar(UInt32(printable ? b : 256 + extra))!))
        }
    }

    static func gguf() -> [UInt8] {
        var b = GGUFBuilder()
        b.addString("general.architecture", "llama")
        for (key, value) in [("llama.block_count", 1), ("llama.embedding_length", width),
                             ("llama.feed_forward_length", feedForward), ("llama.attention.head_count", 2),
                             ("llama.context_length", 256)] {
            b.addU32(key, UInt32(value))
        }
        b.addString("tokenizer.ggml.model", "gpt2")
        b.addStringArray("tokenizer.ggml.tokens", byteTokens())
        var rng = TestRandom(seed: 77)
        let shapes: [(String, [UInt64])] = [
            ("token_embd.weight", [32, 256]), ("blk.0.attn_norm.weight", [32]),
            ("blk.0.attn_q.weight", [32, 32]), ("blk.0.attn_k.weight", [32, 32]), ("blk.0.attn_v.weight", [32, 32]),
            ("blk.0.attn_output.weight", [32, 32]), ("blk.0.ffn_norm.weight", [32]),
            ("blk.0.ffn_gate.weight", [32, 64]), ("blk.0.ffn_up.weight", [32, 64]), ("blk.0.ffn_down.weight", [64, 32]),
            ("output_norm.weight", [32]),
        ]
        for (name, dims) in shapes {
            b.tensors.append((name, dims, 0, nil))
            let count = Int(dims.reduce(1, *))
            let values = name.hasSuffix("norm.weight") ? [Float](repeating: 1, count: count)
                                                       : rng.normals(count, scale: 0.3)
            b.tensorBytes += values.flatMap { GGUFBuilder.le($0.bitPattern) }
            while b.tensorBytes.count % 32 != 0 { b.tensorBytes.append(0) }
        }
        return b.bytes()
    }
}

/// Work from several threads at once: the cases the ThreadSanitizer build runs.
final class ConcurrencyTests: XCTestCase {
    /// Generations on one model from several threads give what each gives alone: every
    /// generation has its own cache, and the model's matrices are shared read-only.
    func testParallelGenerationsMatchSerialOnes() throws {
        let file = try GGUFFile(bytes: TinyLlama.gguf())
        for weights in [WeightChoice.reference, .requantized(type: .integer(bits: 4), groupSize: 32, kernel: .lut)] {
            let model = try LlamaModel(gguf: file, weights: weights)
            let prompts = ["Hello", "lowbit", "1 2 3", "The sky"]
            let serial = try prompts.map { try model.generate($0, maxTokens: 6, temperature: 0.8, seed: 5).0 }
            XCTAssertTrue(serial.allSatisfy { !$0.isEmpty }, "\(weights): \(serial)")
            let results = Locked<[Int: String]>([:])
            DispatchQueue.concurrentPerform(iterations: 2 * prompts.count) { i in
                let prompt = prompts[i % prompts.count]
                let text = (try? model.generate(prompt, maxTokens: 6, temperature: 0.8, seed: 5).0) ?? "failed"
                results.withLock { $0[i] = text }
            }
            for i in 0..<(2 * prompts.count) {
                XCTAssertEqual(results.withLock { $0[i] }, serial[i % prompts.count], "\(weights)")
            }
        }
    }
}

/// The pool hands out every part exactly once, whoever claims it, and steps aside under contention.
final class ThreadPoolTests: XCTestCase {
    func testEveryPartRunsExactlyOnce() {
        for parts in [2, 3] {  // more would leave idle workers in the pool for the other tests
            for _ in 0..<200 {
                let counts = Locked([Int](repeating: 0, count: parts))
                ThreadPool.shared.run(parts: parts) { p in counts.withLock { $0[p] += 1 } }
                XCTAssertEqual(counts.withLock { $0 }, [Int](repeating: 1, count: parts), "\(parts) parts")
            }
        }
    }

    func testContentionGuardRunsAloneAfterStallsAndTriesAgain() {
        var guardState = ContentionGuard()
        let window = ContentionGuard.window
        // Waits within what unequal parts explain: never alone.
        for i in 0..<(3 * window) { guardState.record(own: 20e-6, wait: 5e-6, now: Double(i) * 1e-4) }
        XCTAssertFalse(guardState.runsAlone(now: 0.01))
        // Two stalls in a window: alone for the first back-off, then workers again.
        for i in 0..<window { guardState.record(own: 20e-6, wait: i < 2 ? 3e-3 : 0, now: 1.0) }
        XCTAssertTrue(guardState.runsAlone(now: 1.0 + ContentionGuard.firstBackOff / 2))
        XCTAssertFalse(guardState.runsAlone(now: 1.0 + ContentionGuard.firstBackOff * 1.01))
        // Stalls again right away: the back-off doubles; a clean window brings it back.
        for _ in 0..<window { guardState.record(own: 20e-6, wait: 3e-3, now: 2.0) }
        XCTAssertTrue(guardState.runsAlone(now: 2.0 + ContentionGuard.firstBackOff * 1.5))
        XCTAssertFalse(guardState.runsAlone(now: 2.0 + ContentionGuard.firstBackOff * 2.01))
        for _ in 0..<window { guardState.record(own: 20e-6, wait: 0, now: 3.0) }
        for _ in 0..<window { guardState.record(own: 20e-6, wait: 3e-3, now: 4.0) }
        XCTAssertFalse(guardState.runsAlone(now: 4.0 + ContentionGuard.firstBackOff * 1.01))
    }

    /// A caller on its CPU for half of its own parts' time shares its core: alone for a while,
    /// though no wait shows it; on its CPU throughout, or sampled too briefly to tell, it is not.
    func testContentionGuardRunsAloneWhenTheCallerSharesItsCore() {
        let window = ContentionGuard.window
        var shared = ContentionGuard(), own = ContentionGuard(), brief = ContentionGuard()
        for i in 0..<window {
            let sampled = i % ContentionGuard.cpuSampleEvery == 0
            shared.record(own: 100e-6, wait: 0, now: 1.0, ownCPU: sampled ? 50e-6 : nil)
            own.record(own: 100e-6, wait: 0, now: 1.0, ownCPU: sampled ? 98e-6 : nil)
            brief.record(own: 5e-6, wait: 0, now: 1.0, ownCPU: sampled ? 2e-6 : nil)
        }
        XCTAssertTrue(shared.runsAlone(now: 1.0 + ContentionGuard.firstBackOff / 2))
        XCTAssertFalse(own.runsAlone(now: 1.0 + ContentionGuard.firstBackOff / 2))
        XCTAssertFalse(brief.runsAlone(now: 1.0 + ContentionGuard.firstBackOff / 2))
    }

    func testThreadCPUTimeAdvancesWithWork() {
        let start = threadCPUSeconds()
        var x: UInt64 = 1
        for i in 0..<2_000_000 { x = x &* 6364136223846793005 &+ UInt64(i) }
        XCTAssertNotEqual(x, 0)
        XCTAssertGreaterThan(threadCPUSeconds(), start)
    }
}
