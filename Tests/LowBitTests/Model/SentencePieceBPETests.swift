import Foundation
import XCTest
@testable import LowBit
@testable import LowBitModel

/// SentencePiece's BPE on a vocabulary small enough to follow by hand: merges by score, the
/// space prefix, byte fallback, control tokens and malformed scores. The agreement with the
/// sentencepiece package itself, on a trained vocabulary, is a Python test
/// (test_architectures.py).
final class SentencePieceBPETests: XCTestCase {
    static let pieces: [(String, Float)] = [("▁", -10), ("a", -11), ("b", -12), ("c", -13), ("ab", -1),
                                            ("bc", -0.5), ("▁a", -2), ("abc", -3), ("▁abc", -0.1),
                                            ("é", -5)]

    /// <unk> <s> </s>, the 256 byte tokens, then `pieces`.
    func tokenizer(spacePrefix: Bool? = nil, scores: [Float]? = nil) throws -> Tokenizer {
        var names = ["<unk>", "<s>", "</s>"], types: [Int32] = [2, 3, 3], values: [Float] = [0, 0, 0]
        for b in 0..<256 {
            names.append("<0x" + String(b, radix: 16, uppercase: true).leftPadded(to: 2) + ">")
            types.append(6)
            values.append(0)
        }
        for (piece, score) in Self.pieces {
            names.append(piece)
            types.append(1)
            values.append(score)
        }
        var b = GGUFBuilder()
        b.addString("tokenizer.ggml.model", "llama")
        b.addStringArray("tokenizer.ggml.tokens", names)
        b.addF32Array("tokenizer.ggml.scores", scores ?? values)
        b.addI32Array("tokenizer.ggml.token_type", types)
        b.addU32("tokenizer.ggml.bos_token_id", 1)
        b.addU32("tokenizer.ggml.eos_token_id", 2)
        b.addU32("tokenizer.ggml.unknown_token_id", 0)
        if let spacePrefix { b.addBool("tokenizer.ggml.add_space_prefix", spacePrefix) }
        return try Tokenizer(gguf: try GGUFFile(bytes: b.bytes()))
    }

    func pieces(_ t: Tokenizer, _ text: String, special: Bool = false) -> [String] {
        t.encode(text, addSpecial: special, parseSpecial: special).map { t.tokens[$0] }
    }

    /// The pair whose joined piece scores highest merges first: in "▁abc", "bc" (−0.5) before
    /// "ab" (−1), then "▁a" (−2), and "▁a"+"bc" makes "▁abc" although "abc" is a piece too.
    func testHighestScoringMergeFirst() throws {
        let t = try tokenizer()
        XCTAssertEqual(pieces(t, "abc"), ["▁abc"])
        XCTAssertEqual(pieces(t, "ab"), ["▁", "ab"])
        XCTAssertEqual(pieces(t, "cab"), ["▁", "c", "ab"])
        XCTAssertEqual(pieces(t, "a abc"), ["▁a", "▁abc"])
        XCTAssertTrue(t.isSentencePiece)
    }

    func testSpacePrefixComesFromTheFileAndFollowsControlTokens() throws {
        let t = try tokenizer()
        XCTAssertEqual(t.encode("abc").first, 1)            // BOS by default
        XCTAssertEqual(pieces(t, "<s>abc</s>abc", special: true), ["<s>", "<s>", "▁abc", "</s>", "▁abc"])
        let bare = try tokenizer(spacePrefix: false)
        XCTAssertEqual(pieces(bare, "abc"), ["abc"])
        XCTAssertEqual(bare.decode(bare.encode(" abc", addSpecial: false)), " abc")
    }

    /// A character without a piece becomes its UTF-8 bytes; decoding puts them back together.
    func testByteFallbackAndDecoding() throws {
        let t = try tokenizer()
        XCTAssertEqual(pieces(t, "aü"), ["▁a", "<0xC3>", "<0xBC>"])
        for text in ["aé 日本 🙂", " abc  c\n", "", "▁"] {
            let ids = t.encode(text, addSpecial: true)
            // One text: the space put before it is dropped; BOS reads as its text.
            XCTAssertEqual(t.decode(ids), "<s>" + text.replacingOccurrences(of: "▁", with: " "))
            // A continuation keeps it.
            XCTAssertEqual(t.continuation(Array(ids.dropFirst())),
                           text.isEmpty ? "" : " " + text.replacingOccurrences(of: "▁", with: " "))
        }
    }

    /// "e" + U+0301 reads as "é" to Swift's String equality, but it is not the token "é".
    func testCanonicallyEquivalentTextIsAnotherToken() throws {
        let t = try tokenizer()
        XCTAssertEqual(pieces(t, "é"), ["▁", "é"])
        XCTAssertEqual(pieces(t, "e\u{301}"), ["▁", "<0x65>", "<0xCC>", "<0x81>"])
    }

    /// The heap-ordered merge gives what merging the highest-scoring leftmost pair, one at a time
    /// over the whole text, gives.
    func testHeapMergingMatchesRepeatedScans() throws {
        let t = try tokenizer()
        let score = Dictionary(uniqueKeysWithValues: Self.pieces)
        func reference(_ text: String) -> [String] {
            var symbols = ("▁" + text.replacingOccurrences(of: " ", with: "▁")).map { String($0) }
            while true {
                var best: (score: Float, at: Int)? = nil
                for i in 0..<max(symbols.count - 1, 0) {
                    if let s = score[symbols[i] + symbols[i + 1]], best == nil || s > best!.score { best = (s, i) }
                }
                guard let b = best else { return symbols }
                symbols[b.at] += symbols[b.at + 1]
                symbols.remove(at: b.at + 1)
            }
        }
        var rng = TestRandom(seed: 4)
        let alphabet = Array("abc ")
        for length in [1, 2, 3, 5, 8, 13, 40, 200] {
            for _ in 0..<20 {
                let text = String((0..<length).map { _ in alphabet[Int(rng.next() % 4)] })
                XCTAssertEqual(pieces(t, text), reference(text), text)
            }
        }
    }

    func testMalformedScoresAreRejected() throws {
        for scores in [[Float](repeating: 0, count: 3), [Float](repeating: .nan, count: 269)] {
            XCTAssertThrowsError(try tokenizer(scores: scores)) { error in
                XCTAssertEqual((error as? LowBitError)?.status, .badFormat)
            }
        }
    }
}

private extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
