import Foundation
import XCTest
@testable import LowBit
@testable import LowBitCore
@testable import LowBitModel
import LowBitFuzzTargets

/// Every fuzz corpus file (seeds and the inputs that once failed) through its target.
final class FuzzCorpusTests: XCTestCase {
    static let corpus = testsFolder.appendingPathComponent("Fuzz/Corpus")

    static func files(_ target: String) throws -> [URL] {
        let folder = corpus.appendingPathComponent(target)
        let files = try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
        return files.sorted { $0.path < $1.path }
    }

    func testEveryCorpusFileRunsThroughItsTarget() throws {
        // The tokenizer target checks text against the SentencePiece seed, found from the root.
        XCTAssertNotNil(FuzzTargets.sentencePieceVocabulary, "run the tests from the repository root")
        for target in FuzzTargets.all {
            let files = try FuzzCorpusTests.files(target.name)
            XCTAssertFalse(files.isEmpty, "no corpus for \(target.name)")
            for file in files { target.run(try FileIO.read(file.path)) }
        }
    }

    /// The seeds are valid files, so mutations start from inputs that reach every check.
    func testSeedsAreValidFiles() throws {
        for file in try FuzzCorpusTests.files("matrix") where file.pathExtension == "lbm" {
            XCTAssertNoThrow(try MatrixFile.load(file.path), file.lastPathComponent)
        }
        for file in try FuzzCorpusTests.files("stack") where file.pathExtension == "lbs" {
            XCTAssertNoThrow(try Stack(path: file.path, budget: Int.max), file.lastPathComponent)
        }
        for file in try FuzzCorpusTests.files("gguf") where file.pathExtension == "gguf" {
            XCTAssertNoThrow(try GGUFFile(path: file.path), file.lastPathComponent)
        }
        let completePath = FuzzCorpusTests.corpus.appendingPathComponent("gguf/llama-complete.gguf").path
        let complete = try GGUFFile(path: completePath)
        XCTAssertFalse(try LlamaModel(gguf: complete, weights: .reference).generate("He", maxTokens: 2).0.isEmpty)
        let lowbit = try GGUFFile(path: FuzzCorpusTests.corpus.appendingPathComponent("gguf/llama-lowbit.gguf").path)
        for weights in [WeightChoice.reference, .q4_1(kernel: .lut)] {
            XCTAssertFalse(try LlamaModel(gguf: lowbit, weights: weights).generate("He", maxTokens: 2).0.isEmpty)
        }
        // The elastic seed's three levels: attn_q at its 2-bit rung, then at its 4-bit one.
        let elastic = try GGUFFile(path: FuzzCorpusTests.corpus.appendingPathComponent("gguf/llama-elastic.gguf").path)
        let model = try LlamaModel(gguf: elastic, weights: .q4_1(kernel: .lut))
        XCTAssertEqual(model.elastic?.level, 2)
        XCTAssertFalse(try model.generate("He", maxTokens: 2).0.isEmpty)
        try model.setBudget(try XCTUnwrap(model.elastic).bytes(level: 1))
        XCTAssertEqual(model.elastic?.level, 1)
        XCTAssertFalse(try model.generate("He", maxTokens: 2).0.isEmpty)
        for file in try FuzzCorpusTests.files("npy") where file.pathExtension == "npy" {
            XCTAssertNoThrow(try NPYFile.load(file.path), file.lastPathComponent)
        }
    }
}

/// One regression test per class of malformed input that once crashed, hung or ballooned.
final class MalformedInputTests: XCTestCase {
    func temporaryPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("lowbit-malformed-\(name)-\(getpid())").path
    }

    func stackSeed() throws -> [UInt8] {
        try FileIO.read(FuzzCorpusTests.corpus.appendingPathComponent("stack/one-tensor.lbs").path)
    }

    func decodeStack(_ bytes: [UInt8]) throws -> StackFile.Index {
        let fixed = FuzzTargets.withStackChecksums(bytes)
        return try fixed.withUnsafeBytes { try StackFile.decodeIndex($0, fileSize: fixed.count) }
    }

    /// Byte offset of the first tensor's entry in a stack file's index (after the metadata).
    func firstTensorOffset(_ bytes: [UInt8]) throws -> Int {
        try bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw, start: 64, limit: raw.count)
            let metadata = Int(raw.loadUnaligned(fromByteOffset: 20, as: UInt32.self))
            for _ in 0..<metadata {
                _ = try r.string16()
                if try r.u8() == 1 { _ = try r.u64() } else { _ = try r.bytes(Int(try r.u32())) }
            }
            return r.offset
        }
    }

    func testStackFieldsBeyondIntAreFormatErrors() throws {
        var bytes = try stackSeed()
        XCTAssertNoThrow(try decodeStack(bytes))
        let bit63 = UInt64(1) << 63
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: bit63.littleEndian, toByteOffset: 32, as: UInt64.self) }
        XCTAssertThrowsStatus(.badFormat, try self.decodeStack(bytes))
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: UInt64.max.littleEndian, toByteOffset: 32, as: UInt64.self) }
        XCTAssertThrowsStatus(.badFormat, try self.decodeStack(bytes))
    }

    /// A small file announcing 2^31 columns fails on its index length, before the scaling
    /// vector of that length is allocated.
    func testStackAnnouncingHugeColumnsFailsBeforeAllocating() throws {
        var bytes = try stackSeed()
        let at = try firstTensorOffset(bytes)
        let nameLength = Int(bytes[at]) | Int(bytes[at + 1]) << 8
        bytes.withUnsafeMutableBytes {
            $0.storeBytes(of: UInt64(1 << 31).littleEndian, toByteOffset: at + 2 + nameLength + 8, as: UInt64.self)
        }
        do {
            _ = try decodeStack(bytes)
            XCTFail("a stack announcing 2^31 columns loaded")
        } catch let e as LowBitError {
            XCTAssertEqual(e.status, .badFormat)
            // The whole vector's length is what the reader asked for: checked in one piece.
            XCTAssertTrue(e.message.contains("needed \(4 << 31) bytes"), e.message)
        }
    }

    /// A 128-byte matrix file announcing 65536 x 65536 fails on its length before the 2 GiB of
    /// codes that shape needs are allocated.
    func testMatrixFileLengthIsCheckedBeforeAllocating() throws {
        var header = [UInt8](repeating: 0, count: 128)
        header.withUnsafeMutableBytes { raw in
            for (i, b) in "LOWBITMX".utf8.enumerated() { raw[i] = b }
            raw.storeBytes(of: UInt32(1), toByteOffset: 8, as: UInt32.self)
            raw.storeBytes(of: UInt32(128), toByteOffset: 12, as: UInt32.self)
            raw.storeBytes(of: UInt64(65536), toByteOffset: 16, as: UInt64.self)
            raw.storeBytes(of: UInt64(65536), toByteOffset: 24, as: UInt64.self)
            raw.storeBytes(of: UInt32(128), toByteOffset: 32, as: UInt32.self)
            raw.storeBytes(of: UInt32(4), toByteOffset: 36, as: UInt32.self)
        }
        let fixed = FuzzTargets.withMatrixChecksums(header)
        do {
            _ = try fixed.withUnsafeBytes { try MatrixFile.decode($0) }
            XCTFail("a 128-byte file loaded as a 65536 x 65536 matrix")
        } catch let e as LowBitError {
            XCTAssertEqual(e.status, .badFormat)
            XCTAssertTrue(e.message.contains("the file has 128 bytes"), e.message)
        }
    }

    /// A million-element metadata array is held as its file bytes and reads back element by
    /// element; a count beyond the file is an error before anything is reserved.
    func testGGUFArraysStayInTheFileBytes() throws {
        var b = GGUFBuilder.valid()
        let count = 1 << 20
        let elements = (0..<count).map { UInt8($0 & 0xFF) }
        b.kv.append(("big", 9, GGUFBuilder.le(UInt32(0)) + GGUFBuilder.le(UInt64(count)) + elements))
        let file = try GGUFFile(bytes: b.bytes())
        let array = try XCTUnwrap(file.metadata["big"]?.arrayValue)
        XCTAssertEqual(array.count, count)
        XCTAssertEqual(array[300], .uint(300 & 0xFF))
        XCTAssertTrue(array.file.withUnsafeBytes { $0.baseAddress } == file.bytes.withUnsafeBytes { $0.baseAddress },
                      "the array shares the file's storage")
        var short = GGUFBuilder.valid()
        short.kv.append(("strings", 9, GGUFBuilder.le(UInt32(8)) + GGUFBuilder.le(UInt64(1 << 20))))
        XCTAssertThrowsStatus(.badFormat, try GGUFFile(bytes: short.bytes()))
    }

    func testCalibrationNumbersOutsideTheirFieldsAreFormatErrors() {
        for line in ["1 1 32 99999999999 1 1 lut", "1 1 32 2 1 99999999999999999999 lut", "1 1 32 2 1 -1 lut",
                     "1 1 32 2 1 1 auto", "1 1 32 2 1 1"] {
            XCTAssertThrowsStatus(.badFormat, try AutoKernel.add(calibrationText: Array((line + "\n").utf8)))
        }
        XCTAssertNoThrow(try AutoKernel.add(calibrationText: Array("# comment\n64 64 32 2 1 1 lut\n".utf8)))
        AutoKernel.reset()
    }

    /// A FIFO (which would block a plain open forever), a directory and a device are refused.
    func testOnlyRegularFilesAreOpened() throws {
        let fifo = temporaryPath("fifo")
        unlink(fifo)
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        defer { unlink(fifo) }
        for path in [fifo, FileManager.default.temporaryDirectory.path, "/dev/zero"] {
            XCTAssertThrowsStatus(.io, try FileIO.read(path))
            XCTAssertThrowsStatus(.io, try GGUFFile(path: path))
            XCTAssertThrowsStatus(.io, try MatrixFile.load(path))
            XCTAssertThrowsStatus(.io, try Stack(path: path, budget: Int.max))
            XCTAssertThrowsStatus(.io, try AutoKernel.load(from: path))
        }
    }

    func testFileLargerThanTheLimitIsRefusedBeforeReading() throws {
        let path = temporaryPath("limit")
        try FileIO.writeAtomically([UInt8](repeating: 7, count: 100), to: path)
        defer { unlink(path) }
        XCTAssertThrowsStatus(.io, try FileIO.read(path, maxBytes: 99))
        XCTAssertEqual(try FileIO.read(path, maxBytes: 100).count, 100)
    }

    /// Weights whose range overflows Float32 arithmetic are refused instead of quantizing into
    /// NaN parameters (which a later load would reject).
    func testWeightsBeyondTheMagnitudeLimitAreRejected() throws {
        var w = [Float](repeating: 0.5, count: 2 * 64)
        w[5] = 3e38
        w[70] = -3e38
        for type in allTypes + [.mixed(bits: 3)] {
            XCTAssertThrowsStatus(.invalidArgument, try quantized(w, rows: 2, cols: 64, type: type, groupSize: 32))
        }
        w[5] = 0x1p59
        w[70] = -0x1p59
        let m = try quantized(w, rows: 2, cols: 64, type: .integer(bits: 4), groupSize: 32)
        XCTAssertTrue((0..<4).allSatisfy { m.scales.floats()[$0].isFinite && m.offsets.floats()[$0].isFinite })
        XCTAssertNoThrow(try MatrixFile.encode(m).withUnsafeBytes { try MatrixFile.decode($0) })
    }
}

/// The tokenizer on inputs that once hung it: empty control tokens, very long words.
final class TokenizerInputTests: XCTestCase {
    /// The tiny vocabulary of the GGUF seed: bytes 33-126, Ġ, Ċ, merges up to "Hello", and
    /// control tokens <|im_start|>, <|im_end|> and an empty one.
    func tinyTokenizer() throws -> Tokenizer {
        let path = FuzzCorpusTests.corpus.appendingPathComponent("gguf/tokenizer-only.gguf").path
        return try Tokenizer(gguf: try GGUFFile(path: path))
    }

    func testEmptyControlTokenNeverMatches() throws {
        let t = try tinyTokenizer()
        let ids = t.encode("Hello<|im_end|>Hello", addSpecial: false, parseSpecial: true)
        XCTAssertEqual(ids.map { t.tokens[$0] }, ["Hello", "<|im_end|>", "Hello"])
    }

    /// The heap-ordered merge gives what merging the lowest-ranked leftmost pair, one at a time
    /// over the whole word, gives.
    func testHeapMergingMatchesRepeatedScans() throws {
        let t = try tinyTokenizer()
        guard case .byteLevel(let bpe) = t.scheme else { return XCTFail("the seed's tokenizer is gpt2") }
        func reference(_ piece: String) -> [String] {
            var symbols = piece.utf8.map { String(bpe.byteToChar[Int($0)]) }
            while symbols.count > 1 {
                var best: (rank: Int, at: Int)? = nil
                for i in 0..<(symbols.count - 1) {
                    let rank = bpe.mergeRanks[symbols[i] + " " + symbols[i + 1]]
                    if let rank, best == nil || rank < best!.rank { best = (rank, i) }
                }
                guard let b = best else { break }
                symbols[b.at] += symbols[b.at + 1]
                symbols.remove(at: b.at + 1)
            }
            return symbols
        }
        var rng = TestRandom(seed: 9)
        let alphabet = Array("Helo")
        for length in [1, 2, 3, 5, 8, 13, 40, 200] {
            for _ in 0..<20 {
                let word = String((0..<length).map { _ in alphabet[Int(rng.next() % 4)] })
                XCTAssertEqual(bpe.merge(word, ids: t.ids).map { t.tokens[$0] }, reference(word), word)
            }
        }
    }

    /// A word of many thousand characters is one piece: it must tokenize completely.
    func testLongWordTokenizesCompletely() throws {
        let t = try tinyTokenizer()
        let word = String(repeating: "Hello", count: 2000)
        let hello = try XCTUnwrap(t.tokens.firstIndex(of: "Hello"))
        XCTAssertEqual(t.encode(word, addSpecial: false), [Int](repeating: hello, count: 2000))
    }
}

/// A model and the stack or metadata it is given must agree.
final class ModelContractTests: XCTestCase {
    func testTensorsBeyondBlockCountAreRejected() throws {
        var b = GGUFBuilder()
        b.addString("general.architecture", "llama")
        for key in ["llama.block_count", "llama.embedding_length", "llama.feed_forward_length",
                    "llama.attention.head_count", "llama.context_length"] {
            b.addU32(key, key == "llama.block_count" ? 1 : key == "llama.attention.head_count" ? 4 : 32)
        }
        b.addString("tokenizer.ggml.model", "gpt2")
        b.addStringArray("tokenizer.ggml.tokens", ["a", "b"])
        b.tensors = [("blk.1.attn_norm.weight", [32], 0, nil)]
        b.tensorBytes = [UInt8](repeating: 0, count: 128)
        do {
            _ = try LlamaModel(gguf: try GGUFFile(bytes: b.bytes()), weights: .reference)
            XCTFail("a tensor of layer 1 loaded with block_count 1")
        } catch let e as LowBitError {
            XCTAssertEqual(e.status, .badFormat)
            XCTAssertTrue(e.message.contains("block_count"), e.message)
        }
    }

    /// Each architecture's hyperparameters are checked before anything is sized from them; what
    /// the runner cannot run (another architecture, other RoPE scaling, narrower values than
    /// keys) is unsupported, named in the message.
    func testHyperparametersAreCheckedPerArchitecture() throws {
        func config(_ arch: String, _ extra: (inout GGUFBuilder) -> Void = { _ in }) throws -> LlamaConfig {
            var b = GGUFBuilder()
            b.addString("general.architecture", arch)
            for key in ["block_count", "embedding_length", "feed_forward_length", "attention.head_count",
                        "context_length"] {
                b.addU32("\(arch).\(key)", key == "attention.head_count" ? 4 : 64)
            }
            extra(&b)
            return try LlamaConfig(try GGUFFile(bytes: b.bytes()))
        }
        for arch in ["llama", "qwen2", "qwen3"] { XCTAssertEqual(try config(arch).architecture.rawValue, arch) }
        let wide = try config("qwen3") { $0.addU32("qwen3.attention.key_length", 32) }
        XCTAssertEqual([wide.headDim, wide.queryWidth, wide.embedding], [32, 128, 64])
        let scaled = try config("llama") {
            $0.addF32("llama.rope.scaling.factor", 4)
            $0.addString("llama.rope.scaling.type", "linear")
        }
        XCTAssertEqual(scaled.ropeLinearScale, 4)
        let cases: [(String, LowBitStatus, String, (inout GGUFBuilder) -> Void)] = [
            ("phi3", .unsupported, "architecture 'phi3'", { _ in }),
            ("llama", .unsupported, "RoPE scaling 'yarn'", { $0.addString("llama.rope.scaling.type", "yarn") }),
            ("qwen2", .badFormat, "rope.freq_base", { $0.addF32("qwen2.rope.freq_base", .nan) }),
            ("qwen2", .badFormat, "rope.freq_base", { $0.addF32("qwen2.rope.freq_base", -1) }),
            ("llama", .badFormat, "layer_norm_rms_epsilon", {
                $0.addF32("llama.attention.layer_norm_rms_epsilon", .infinity) }),
            ("llama", .badFormat, "rope.scale_linear", { $0.addF32("llama.rope.scale_linear", 0) }),
            ("qwen3", .unsupported, "differ in width", {
                $0.addU32("qwen3.attention.key_length", 32); $0.addU32("qwen3.attention.value_length", 16) }),
            ("qwen3", .badFormat, "key_length", { $0.addU32("qwen3.attention.key_length", 0) }),
            ("llama", .badFormat, "head_count_kv", { $0.addU32("llama.attention.head_count_kv", 3) }),
            ("llama", .badFormat, "odd width", { $0.addU32("llama.attention.key_length", 7) }),
        ]
        for (arch, status, words, extra) in cases {
            do {
                _ = try config(arch, extra)
                XCTFail("\(words): accepted")
            } catch let e as LowBitError {
                XCTAssertEqual(e.status, status, e.message)
                XCTAssertTrue(e.message.contains(words), e.message)
            }
        }
    }

    func sampleStack(_ tensors: [(String, Int, Int)]) throws -> Stack {
        var rng = TestRandom(seed: 3)
        let weights = tensors.map { rng.normals($0.1 * $0.2) }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lowbit-contract-\(getpid()).lbs").path
        var options = StackBuilder.Options()
        options.blocks = 2
        options.maxRank = 2
        try withPointers(weights) { pointers in
            _ = try StackBuilder.build(tensors.indices.map {
                StackBuilder.Input(name: tensors[$0].0, weights: pointers[$0], rows: tensors[$0].1, cols: tensors[$0].2)
            }, path: path, options: options)
        }
        defer { unlink(path) }
        return try Stack(path: path, budget: Int.max)
    }

    func testStackTensorShapesMustMatchTheModel() throws {
        let stack = try sampleStack([("blk.0.attn_q.weight", 16, 64)])
        XCTAssertNoThrow(try StackLinear(stack, name: "blk.0.attn_q.weight", rows: 16, cols: 64))
        XCTAssertThrowsStatus(.sizeMismatch, try StackLinear(stack, name: "blk.0.attn_q.weight", rows: 32, cols: 64))
        XCTAssertThrowsStatus(.sizeMismatch, try StackLinear(stack, name: "blk.0.attn_q.weight", rows: 16, cols: 32))
    }

    func testStackTensorSetMustMatchTheModel() throws {
        let names = LlamaModel.linearNames.map { "blk.0.\($0).weight" }
        let complete = try sampleStack(names.map { ($0, 8, 32) })
        func check(_ stack: Stack, layers: Int) throws {
            try LlamaModel.checkStackTensors(stack, layers: layers, outputName: "output.weight")
        }
        XCTAssertNoThrow(try check(complete, layers: 1))
        XCTAssertThrowsStatus(.badFormat, try check(complete, layers: 2))
        let missing = try sampleStack(names.dropLast().map { ($0, 8, 32) })
        XCTAssertThrowsStatus(.badFormat, try check(missing, layers: 1))
        let extra = try sampleStack((names + ["blk.7.attn_q.weight"]).map { ($0, 8, 32) })
        XCTAssertThrowsStatus(.badFormat, try check(extra, layers: 1))
    }
}

/// Pointers to each array's elements, valid inside `body`.
func withPointers<R>(_ arrays: [[Float]], _ body: ([UnsafePointer<Float>]) throws -> R) rethrows -> R {
    func step(_ i: Int, _ acc: [UnsafePointer<Float>]) throws -> R {
        if i == arrays.count { return try body(acc) }
        return try arrays[i].withUnsafeBufferPointer { try step(i + 1, acc + [$0.baseAddress!]) }
    }
    return try step(0, [])
}
