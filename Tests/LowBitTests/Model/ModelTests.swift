import Foundation
import XCTest
@testable import LowBit
@testable import LowBitCore
@testable import LowBitModel
@testable import LowBitAVX2

/// Tests on the real model, fetched by scripts/fetch-model.sh ($LOWBIT_MODEL or .cache/models).
final class SmolLM2Tests: XCTestCase {
    static let path: String? = {
        let repository = testsFolder.deletingLastPathComponent()
        var candidates: [String] = [
            repository.appendingPathComponent(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf").path
        ]
        if let env = ProcessInfo.processInfo.environment["LOWBIT_MODEL"] { candidates.insert(env, at: 0) }
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }()

    func modelFile() throws -> GGUFFile {
        guard let p = SmolLM2Tests.path else { throw XCTSkip("model not fetched (scripts/fetch-model.sh)") }
        return try GGUFFile(path: p)
    }

    func testTokenizerRoundTripsAndSpecialTokens() throws {
        let t = try Tokenizer(gguf: try modelFile())
        let gpl = String(decoding: try FileIO.read("/usr/share/common-licenses/GPL-3").prefix(20000), as: UTF8.self)
        for text in [gpl, "Hello, world! 1234 numbers,  two  spaces\n\n\ttabs", "naïve café — 日本語 🙂 'tis we'll",
                     " leading", "trailing \n"] {
            XCTAssertEqual(t.decode(t.encode(text)), text)
        }
        // Digits are split one by one (the smollm pre-tokenizer).
        XCTAssertEqual(t.encode("2024").count, 4)
        let chat = t.encode("<|im_start|>user", parseSpecial: true)
        XCTAssertEqual(chat.first, 1)
        XCTAssertNotEqual(t.encode("<|im_start|>user", parseSpecial: false).first, 1)
        XCTAssertEqual(t.decode(chat), "<|im_start|>user")
    }

    /// The file's Q4_1 blocks run through lowbit agree with the Float32 reference model token
    /// by token under teacher forcing (mean |Δ log p| of the targets).
    func testQ4_1AgreesWithReferenceUnderTeacherForcing() throws {
        let g = try modelFile()
        let reference = try LlamaModel(gguf: g, weights: .reference)
        let q41 = try LlamaModel(gguf: g, weights: .q4_1(kernel: .auto))
        // The roofline's read of every layer's bytes: some time, far below a second for 92 MiB.
        let readSeconds = try XCTUnwrap(q41.weightReadSeconds(runs: 3))
        XCTAssertTrue(readSeconds > 0 && readSeconds < 1, "\(readSeconds) s")
        let text = String(decoding: try FileIO.read("/usr/share/common-licenses/GPL-3").prefix(3000), as: UTF8.self)
        let tokens = Array(reference.tokenizer.encode(text).prefix(257))
        XCTAssertEqual(tokens.count, 257)
        func logProbs(_ m: LlamaModel) throws -> [Double] {
            let cache = m.makeCache(capacity: 257)
            let logits = try m.forward(Array(tokens.dropLast()), cache: cache, logitRows: 0..<256)
            let v = m.config.vocabulary
            return (0..<256).map { i in
                let l = logits[(i * v)..<((i + 1) * v)]
                let mx = l.max()!
                let lse = log(l.reduce(0.0) { $0 + Double(exp($1 - mx)) }) + Double(mx)
                return Double(l[l.startIndex + tokens[i + 1]]) - lse
            }
        }
        let a = try logProbs(reference), b = try logProbs(q41)
        let meanDelta = zip(a, b).map { abs($0 - $1) }.reduce(0, +) / 256
        // The default q4_1 runs 16-bit activations (two int8 passes): the model issue's bound.
        XCTAssertLessThanOrEqual(meanDelta, 0.02)
        // Int8 activations, as llama.cpp rounds them, move log p by ~0.07 per token here.
        let int8 = try LlamaModel(gguf: g, weights: .q4_1(kernel: .auto, activationBits: 8))
        let meanDeltaInt8 = zip(a, try logProbs(int8)).map { abs($0 - $1) }.reduce(0, +) / 256
        XCTAssertLessThanOrEqual(meanDeltaInt8, 0.08)
        XCTAssertLessThan(meanDelta, meanDeltaInt8 / 10)
        // Perplexity by llama-perplexity's protocol (2 chunks of 512) agrees within 1%, and the
        // reference is within 3% of llama.cpp's 18.44 on the same file.
        let gpl = String(decoding: try FileIO.read("/usr/share/common-licenses/GPL-3"), as: UTF8.self)
        let pplReference = try reference.perplexity(gpl, context: 512, chunks: 2).perplexity
        let pplQ41 = try q41.perplexity(gpl, context: 512, chunks: 2).perplexity
        XCTAssertLessThanOrEqual(abs(pplQ41 / pplReference - 1), 0.01, "q4_1 \(pplQ41) vs reference \(pplReference)")
        // And the model knows its facts: greedy continuation starts with " Paris".
        let (out, _) = try q41.generate("The capital of France is", maxTokens: 2)
        XCTAssertTrue(out.hasPrefix(" Paris"), out)
    }

    /// Sensitivity on a stack of two of the model's matrices: a positive, finite loss increase per
    /// matrix; the re-ordered file keeps level 0 first; bad layer names and shapes are refused.
    func testStackSensitivityMeasuresEachMatrix() throws {
        let g = try modelFile()
        let names = ["blk.0.attn_v.weight", "blk.5.ffn_down.weight"]
        let weights = try names.map { try g.dequantized(try g.tensor($0)) }
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("lowbit-sensitivity-\(getpid()).lbs").path
        defer { unlink(path) }
        var options = StackBuilder.Options()
        options.blocks = 3
        let matrices = try weights[0].withUnsafeBufferPointer { a in
            try weights[1].withUnsafeBufferPointer { b in
                let t0 = try g.tensor(names[0]), t1 = try g.tensor(names[1])
                return try StackBuilder.build([StackBuilder.Input(name: names[0], weights: a.baseAddress!,
                                                                  rows: t0.rows, cols: t0.cols),
                                               StackBuilder.Input(name: names[1], weights: b.baseAddress!,
                                                                  rows: t1.rows, cols: t1.cols)],
                                              path: path, options: options)
            }
        }
        let text = String(decoding: try FileIO.read("/usr/share/common-licenses/Apache-2.0").prefix(2000),
                          as: UTF8.self)
        let increase = try StackSensitivity.lossIncrease(modelPath: SmolLM2Tests.path!,
                                                         stack: try Stack(path: path, budget: Int.max),
                                                         level: 2, text: text, tokens: 48)
        XCTAssertEqual(Set(increase.keys), Set(names))
        // Losing a block of an approximation of a real matrix costs loss (the other matrix is
        // approximated too, so the base is already off the reference).
        for (name, d) in increase { XCTAssertTrue(d.isFinite && d > 0, "\(name): \(d)") }
        options.sensitivity = StackBuilder.sensitivities(matrices, lossIncrease: increase, level: 2)
        try StackBuilder.write(matrices, path: path, options: options)
        let reordered = try Stack(path: path, budget: Int.max)
        XCTAssertEqual(reordered.index.blocks.prefix(2).map(\.level), [0, 0])
        XCTAssertEqual(reordered.index.blocks.count, 6)
        let model = try LlamaModel(gguf: g, weights: .reference)
        XCTAssertThrowsStatus(.invalidArgument,
                              try model.replaceLinear("blk.99.attn_q.weight",
                                                      with: try FloatLinear([Float](repeating: 0, count: 576 * 576),
                                                                            rows: 576, cols: 576)))
        XCTAssertThrowsStatus(.invalidArgument,
                              try model.replaceLinear("blk.0.attn_k.weight",
                                                      with: try FloatLinear([Float](repeating: 0, count: 576 * 576),
                                                                            rows: 576, cols: 576)))
    }

    /// Calibrated requantization (activation-aware scales, error feedback) lowers 3-bit perplexity
    /// on the model, calibrated on a text other than the evaluation text.
    func testCalibratedRequantizationHelps() throws {
        let g = try modelFile()
        let apache = String(decoding: try FileIO.read("/usr/share/common-licenses/Apache-2.0"), as: UTF8.self)
        let gpl = String(decoding: try FileIO.read("/usr/share/common-licenses/GPL-3"), as: UTF8.self)
        let plain = try LlamaModel(gguf: g,
                                   weights: .requantized(type: .integer(bits: 3), groupSize: 64, kernel: .auto))
        let aware = try LlamaModel(gguf: g,
                                   weights: .requantized(type: .integer(bits: 3), groupSize: 64, kernel: .auto,
                                                         calibration: apache))
        let a = try plain.perplexity(gpl, context: 256, chunks: 1).perplexity
        let b = try aware.perplexity(gpl, context: 256, chunks: 1).perplexity
        XCTAssertLessThan(b, a * 0.8, "3-bit g64: plain \(a), calibrated \(b)")
        // Auto holds the smallest layout: not dequant's, which stores 3-bit codes in 4 bits (at
        // the portable tier every family reads the canonical codes, so any family is as small).
        for kind in ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]
        where Tiers.packed != nil {
            let layer = try XCTUnwrap(plain.linear("blk.0.\(kind).weight") as? QuantizedLinear)
            XCTAssertNotEqual(layer.kernel, .dequant, kind)
        }
    }
}

final class StackSensitivitySmoothingTests: XCTestCase {
    /// Noisy per-matrix increases become layer mean × kind mean / overall mean; other names keep theirs.
    func testSmoothingFitsLayerTimesKind() {
        var raw: [String: Double] = [:]
        let layerFactor = [2.0, 1.0, 0.5], kindFactor = ["ffn_down": 3.0, "attn_q": 1.0]
        for (l, a) in layerFactor.enumerated() {
            for (k, b) in kindFactor { raw["blk.\(l).\(k).weight"] = a * b }
        }
        raw["blk.1.attn_q.weight"] = -0.2  // noise below zero
        raw["output.weight"] = 7
        let s = StackSensitivity.smoothed(raw)
        let blocks = raw.filter { $0.key.hasPrefix("blk.") }.values
        let mean = blocks.reduce(0, +) / Double(blocks.count)
        XCTAssertEqual(s["output.weight"], 7)
        let layer1 = (3.0 - 0.2) / 2, attnQ = (2.0 - 0.2 + 0.5) / 3
        XCTAssertEqual(s["blk.1.attn_q.weight"]!, layer1 * attnQ / mean, accuracy: 1e-12)
        XCTAssertGreaterThan(s["blk.1.attn_q.weight"]!, 0, "no tensor keeps a negative score")
        XCTAssertGreaterThan(s["blk.0.ffn_down.weight"]!, s["blk.2.ffn_down.weight"]!)
        XCTAssertGreaterThan(s["blk.0.ffn_down.weight"]!, s["blk.0.attn_q.weight"]!)
    }
}

/// A runner layer's products, at the tier under test and the portable one, within 1e-6 of the
/// Float64 product of its weights w, for each activation row count.
func assertMatchesFloat64(_ layer: Linear, weights w: [Float], activationRows: [Int], _ rng: inout TestRandom,
                          file: StaticString = #filePath, line: UInt = #line) throws {
    let rows = layer.rows, cols = layer.cols
    for n in activationRows {
        let x = rng.normals(n * cols)
        let ref = float64Product(w, rows: rows, cols: cols, x, n: n)
        func run() throws -> [Float] {
            var y = [Float](repeating: .nan, count: n * rows)
            try x.withUnsafeBufferPointer { xp in
                try y.withUnsafeMutableBufferPointer { try layer.forward(xp.baseAddress!, n: n, into: $0.baseAddress!) }
            }
            return y
        }
        XCTAssertLessThanOrEqual(normalizedError(try run(), ref), 1e-6, "\(rows)x\(cols) n=\(n)", file: file,
                                 line: line)
        XCTAssertLessThanOrEqual(normalizedError(try portableOnly { try run() }, ref), 1e-6,
                                 "portable \(rows)x\(cols) n=\(n)", file: file, line: line)
    }
}

/// The attention kernel at every tier against the formula in Float64, on head sizes that
/// take every path, lengths around the 8-key step and the 64-key value block, one query or a
/// group of three sharing the keys, with a cache stride wider than a head; keys and values are
/// Float16, as the KV cache holds them.
final class AttentionTests: XCTestCase {
    func testAttendMatchesTheFormula() throws {
        var rng = TestRandom(seed: 101)
        for dim in [64, 128, 24, 20] {
            for length in [1, 7, 8, 9, 33, 100, 129] {
                for queries in [1, 3] {
                    let stride = dim * 3
                    let q = rng.normals(queries * dim), keys = rng.normals(length * stride).map { Float16($0) },
                        values = rng.normals(length * stride).map { Float16($0) }
                    let scale = 1 / Float(dim).squareRoot()
                    var expected = [Double]()
                    for j in 0..<queries {
                        var logits = (0..<length).map { t in
                            let dot = (0..<dim).reduce(0.0) { sum, i in
                                sum + Double(q[j * dim + i]) * Double(keys[t * stride + i])
                            }
                            return dot * Double(scale)
                        }
                        let top = logits.max()!
                        logits = logits.map { Foundation.exp($0 - top) }
                        let total = logits.reduce(0, +)
                        expected += (0..<dim).map { i in
                            (0..<length).reduce(0.0) { $0 + logits[$1] / total * Double(values[$1 * stride + i]) }
                        }
                    }
                    for tier in tiersUnderTest {
                        var out = [Float](repeating: .nan, count: queries * dim),
                            scores = [Float](repeating: 0, count: queries * length)
                        try atTier(tier) {
                            Attention.attend(q, queries: queries, keys: keys, values: values, stride: stride,
                                             length: length,
                                             dim: dim, scale: scale, scores: &scores, into: &out)
                        }
                        for i in 0..<queries * dim {
                            XCTAssertEqual(Double(out[i]), expected[i], accuracy: 1e-5,
                                           "dim \(dim) length \(length) queries \(queries) \(tier) [\(i)]")
                        }
                    }
                }
            }
        }
    }

    /// The cache's Float16 conversions: every Float16 widens to the Float that `Float(h)` gives
    /// (`HalfFloats`, the portable tier's), and Floats round to Float16 alike at every tier: ties
    /// to even, subnormals, and values beyond ±65504 saturated rather than made infinite.
    func testHalvesRoundAlikeAtEveryTier() throws {
        for bits in 0...UInt16.max {
            let h = Float16(bitPattern: bits), expected = Float(h)
            let got = HalfFloats.float(h)
            XCTAssert(got.bitPattern == expected.bitPattern || (got.isNaN && expected.isNaN), "\(bits)")
        }
        let all = (0...UInt16.max).map { Float16(bitPattern: $0) }
        var widened = [Float](repeating: 0, count: all.count)
        HalfFloats.widen(all, into: &widened, count: all.count)
        for i in all.indices where !all[i].isNaN {
            XCTAssertEqual(widened[i].bitPattern, Float(all[i]).bitPattern, "\(i)")
        }
        XCTAssertEqual(widened.indices.filter { widened[$0].isNaN }, all.indices.filter { all[$0].isNaN })
        var rng = TestRandom(seed: 102)
        var x = rng.normals(1000).map { $0 * 300 } + rng.normals(100).map { $0 * 1e-6 }
        x += [65504, 65519, 65520, 1e9, -1e9, .infinity, -.infinity, 0, -0.0, 1 + 1.0 / 2048, 1 + 3.0 / 2048,
              Float(Float16.leastNonzeroMagnitude) / 2, Float(Float16.leastNonzeroMagnitude) * 1.5]
        let expected = x.map { Float16(min(max($0, -65504), 65504)) }
        XCTAssertEqual(expected[1103].bitPattern, Float16(65504).bitPattern)
        XCTAssertEqual(Float(expected[1109]), 1, "a tie rounds to even")
        XCTAssertEqual(Float(expected[1110]), 1 + 4.0 / 2048, "a tie rounds to even")
        for tier in tiersUnderTest {
            for count in [x.count, 13, 8, 7] {
                var out = [Float16](repeating: .nan, count: count)
                try atTier(tier) { Tiers.active.halves(x, into: &out, count: count) }
                XCTAssertEqual(out.map(\.bitPattern), expected[0..<count].map(\.bitPattern), "\(tier) \(count)")
            }
        }
    }

    /// `ExponentialAVX2.exp8` within 1.2e-7 relative of exp in Float64 over its range of normal results
    /// (a sweep and the points where n changes), 0 below -87.68, and NaN through.
    func testExp8MatchesExp() throws {
        guard SIMDTier.supported.contains(.avx2) else { throw XCTSkip("this CPU has no AVX2") }
        var xs: [Float] = stride(from: Float(-87.3), through: 88.3, by: 0.0137).map { $0 }
        xs += (-126...127).flatMap { n -> [Float] in
            let x = Float(n) * Float(M_LN2)
            return [x.nextDown, x, x.nextUp, x + 0.3465, x - 0.3465]
        }.filter { $0 >= ExponentialAVX2.lowest && $0 <= ExponentialAVX2.highest }
        xs += [0, -0.0, 1e-8, -1e-8, 1, -1, ExponentialAVX2.lowest, ExponentialAVX2.highest]
        var worst = 0.0
        for start in stride(from: 0, to: xs.count, by: 8) {
            var lanes = [Float](repeating: 0, count: 8)
            for i in 0..<8 { lanes[i] = xs[min(start + i, xs.count - 1)] }
            let out = ExponentialAVX2.exp8(lanes)
            for i in 0..<8 {
                let exact = Foundation.exp(Double(lanes[i]))
                worst = max(worst, abs(Double(out[i]) - exact) / exact)
            }
        }
        XCTAssertLessThan(worst, 1.2e-7)
        let edge = ExponentialAVX2.exp8([-87.7, -100, -.infinity, .nan, -.nan, 100, .infinity, 0])
        XCTAssertEqual(Array(edge[0..<3]), [0, 0, 0])
        XCTAssertTrue(edge[3].isNaN && edge[4].isNaN)
        XCTAssertEqual(edge[5], Float(Foundation.exp(Double(ExponentialAVX2.highest))), accuracy: 1e32)
        XCTAssertEqual(edge[6], edge[5])
        XCTAssertEqual(edge[7], 1)
    }
}

/// The reference model's float layer (`FloatTile` panels), AVX2 tile and portable path, against
/// the Float64 product on row and activation counts that leave every kind of remainder (partial
/// panels of 16 rows, every n mod 6, several activation blocks at 300).
final class FloatLinearTests: XCTestCase {
    func testMatchesFloat64Product() throws {
        var rng = TestRandom(seed: 22)
        for (rows, cols) in [(1, 8), (5, 24), (34, 576)] {
            let w = rng.normals(rows * cols)
            let layer = try FloatLinear(w, rows: rows, cols: cols)
            try assertMatchesFloat64(layer, weights: w, activationRows: [1, 2, 3, 4, 5, 7, 9, 300], &rng)
        }
        XCTAssertThrowsStatus(.unsupported, try FloatLinear([Float](repeating: 0, count: 12), rows: 1, cols: 12))
    }
}

/// Which tensor's input rows a tensor sees (calibration records those rows once).
final class InputSourceTests: XCTestCase {
    func testSharedInputsMapToTheirFirstTensor() {
        XCTAssertEqual(LlamaModel.inputSource("blk.3.attn_k.weight"), "blk.3.attn_q.weight")
        XCTAssertEqual(LlamaModel.inputSource("blk.3.attn_v.weight"), "blk.3.attn_q.weight")
        XCTAssertEqual(LlamaModel.inputSource("blk.12.ffn_up.weight"), "blk.12.ffn_gate.weight")
        for own in ["blk.3.attn_q.weight", "blk.3.attn_output.weight", "blk.3.ffn_down.weight", "token_embd.weight",
                    "output.weight"] {
            XCTAssertEqual(LlamaModel.inputSource(own), own)
        }
    }
}
