import XCTest
@testable import LowBitModel

/// The scanners of `PreTokenizer` against the regular expressions they stand for: expected pieces
/// are what Python's `regex` module cuts with Llama 3's and Qwen2's patterns, as llama.cpp and
/// the Hugging Face tokenizers define them.
final class PreTokenizerTests: XCTestCase {
    func testLlama3AndQwen2PiecesMatchTheirPatterns() {
        let cases: [(maxDigits: Int, text: String, pieces: [String])] = [
            // llama3
            (3, "Hello world! It's 2024, isn't IT'S?",
             ["Hello", " world", "!", " It", "'s", " ", "202", "4", ",", " isn", "'t", " IT", "'S", "?"]),
            (3, "  leading\tand\ttabs\n\n  \nline  end   ",
             [" ", " leading", "\tand", "\ttabs", "\n\n  \n", "line", " ", " end", "   "]),
            (3, "12345 digits 7 and 9876543",
             ["123", "45", " digits", " ", "7", " and", " ", "987", "654", "3"]),
            (3, "(parens) [x]...!?\n\nnext\r\nline",
             ["(parens", ")", " [", "x", "]...!?\n\n", "next", "\r\n", "line"]),
            (3, "naïve café 東京 😀 done",
             ["naïve", " café", " 東京", " 😀", " done"]),
            (3, "don'T WE'LL they'Re",
             ["don", "'T", " WE", "'LL", " they", "'Re"]),
            (3, "a\n b  \t c",
             ["a", "\n", " b", "  \t", " c"]),
            (3, "$100.50/month -- ok:\n",
             ["$", "100", ".", "50", "/month", " --", " ok", ":\n"]),
            (3, "’curly’ quotes 'single' \"double\"",
             ["’curly", "’", " quotes", " '", "single", "'", " \"", "double", "\""]),
            // qwen2
            (1, "Hello world! It's 2024, isn't IT'S?",
             ["Hello", " world", "!", " It", "'s", " ", "2", "0", "2", "4", ",", " isn", "'t", " IT", "'S", "?"]),
            (1, "12345 digits 7 and 9876543",
             ["1", "2", "3", "4", "5", " digits", " ", "7", " and", " ", "9", "8", "7", "6", "5", "4", "3"]),
            (1, "$100.50/month -- ok:\n",
             ["$", "1", "0", "0", ".", "5", "0", "/month", " --", " ok", ":\n"])
        ]
        for c in cases {
            XCTAssertEqual(PreTokenizer.llama3(maxDigits: c.maxDigits).split(c.text), c.pieces, c.text)
        }
    }

    /// Whatever the text, the pieces are not empty and join back to it.
    func testPiecesCoverTheText() {
        var rng = TestRandom(seed: 9)
        let alphabet = Array("aZé東 \t\n\r'sSll09.,!?😀-\u{85}\u{2028}".unicodeScalars)
        for _ in 0..<300 {
            let text = String(String.UnicodeScalarView((0..<Int(rng.next() % 40)).map { _ in
                alphabet[Int(rng.next() % UInt64(alphabet.count))]
            }))
            for pre in [PreTokenizer.smollm, .llama3(maxDigits: 3), .llama3(maxDigits: 1)] {
                let pieces = pre.split(text)
                XCTAssertFalse(pieces.contains(""), "\(pre) \(text.debugDescription)")
                XCTAssertEqual(pieces.joined(), text, "\(pre)")
            }
        }
    }

    func testFileNamesMapToPreTokenizers() {
        XCTAssertEqual(PreTokenizer(fileName: "llama-bpe"), .llama3(maxDigits: 3))
        XCTAssertEqual(PreTokenizer(fileName: "qwen2"), .llama3(maxDigits: 1))
        XCTAssertEqual(PreTokenizer(fileName: "smollm"), .smollm)
        XCTAssertNil(PreTokenizer(fileName: "falcon"))
    }
}
