#if canImport(Glibc)
import Glibc
#endif
import LowBit
import LowBitModel

/// One entry point per parser, each taking arbitrary bytes. A target returns normally for every
/// input, valid or not: a crash, a trap, a hang or a huge allocation in one is a bug in lowbit.
/// The same functions serve libFuzzer (`lowbit-fuzz`) and the test suite's corpus replay.
public enum FuzzTargets {
    public struct Target: Sendable {
        public let name: String
        public let run: @Sendable ([UInt8]) -> Void
    }

    public static let all: [Target] = [
        Target(name: "gguf", run: gguf),
        Target(name: "matrix", run: matrix),
        Target(name: "stack", run: stack),
        Target(name: "calibration", run: calibration),
        Target(name: "npy", run: npy),
        Target(name: "tokenizer", run: tokenizer),
    ]

    public static func named(_ name: String) -> Target? { all.first { $0.name == name } }

    /// A GGUF file: the reader, then what a model makes of it (configuration, tokenizer, and
    /// the agreement of metadata and tensors) when it parses.
    @Sendable static func gguf(_ bytes: [UInt8]) {
        guard let file = try? GGUFFile(bytes: bytes) else { return }
        for t in file.tensors.prefix(4) where t.elementCount <= 1 << 16 { _ = try? file.dequantized(t) }
        _ = try? LlamaModel(gguf: file, weights: .reference)
        if file.metadata[ModelFile.versionKey] != nil {  // a lowbit model file: its matrices and ladders
            let budget = file.metadata[ModelFile.levelsKey] != nil ? 1 << 20 : nil
            _ = try? LlamaModel(gguf: file, weights: .q4_1(kernel: .dequant), budget: budget)
        }
        guard let tokenizer = try? Tokenizer(gguf: file) else { return }
        let ids = tokenizer.encode("Hello, world! 12 <|im_start|>", parseSpecial: true)
        _ = tokenizer.decode(ids)
    }

    /// A matrix file as given, and with its checksums made right, so that mutations reach the
    /// checks behind them; a matrix that loads is multiplied by the reference kernel.
    @Sendable static func matrix(_ bytes: [UInt8]) {
        for candidate in [bytes, withMatrixChecksums(bytes)] {
            guard let m = try? candidate.withUnsafeBytes({ try MatrixFile.decode($0) }),
                  m.rows * m.cols <= 1 << 16 else { continue }
            let x = [Float](repeating: 0.5, count: m.cols)
            var y = [Float](repeating: 0, count: m.rows)
            _ = try? x.withUnsafeBufferPointer { xp in
                try y.withUnsafeMutableBufferPointer {
                    try m.multiply(xp.baseAddress!, n: 1, into: $0.baseAddress!, kernel: .reference)
                }
            }
        }
    }

    /// A stack file's index as given and with its checksums made right; an index that parses is
    /// written to a temporary file and opened, which reads and checks every block.
    @Sendable static func stack(_ bytes: [UInt8]) {
        for candidate in [bytes, withStackChecksums(bytes)] {
            let index = try? candidate.withUnsafeBytes { try StackFile.decodeIndex($0, fileSize: candidate.count) }
            guard let index, index.tensors.allSatisfy({ $0.rows * $0.cols <= 1 << 16 }) else { continue }
            let path = temporaryPath()
            defer { unlink(path) }
            guard (try? FileIO.writeAtomically(candidate, to: path)) != nil,
                  let opened = try? Stack(path: path, budget: Int.max) else { continue }
            let t = opened.index.tensors[0]
            let x = [Float](repeating: 0.25, count: t.cols)
            var y = [Float](repeating: 0, count: t.rows)
            _ = try? x.withUnsafeBufferPointer { xp in
                try y.withUnsafeMutableBufferPointer {
                    try opened.multiply(t.name, xp.baseAddress!, n: 1, into: $0.baseAddress!)
                }
            }
        }
    }

    /// An auto-kernel calibration file; the table is left as it was found.
    @Sendable static func calibration(_ bytes: [UInt8]) {
        _ = try? AutoKernel.add(calibrationText: bytes)
        AutoKernel.reset()
    }

    @Sendable static func npy(_ bytes: [UInt8]) {
        _ = try? NPYFile.decode(bytes)
    }

    /// Arbitrary text through the model's own tokenizer (`LOWBIT_MODEL`, byte-level BPE) and a
    /// SentencePiece one (the corpus's): encoding must end, and decoding gives the text back.
    /// Byte-level BPE loses only the bytes the vocabulary has no token for (llama.cpp drops them
    /// too); SentencePiece reads "▁" as the space it stands for.
    @Sendable static func tokenizer(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        if let tokenizer = vocabulary {
            let plain = tokenizer.encode(text, addSpecial: false, parseSpecial: false)
            let decoded = plain.flatMap { tokenizer.bytes(of: $0) }
            let expected = text.utf8.filter { tokenizer.hasToken(forByte: $0) }
            guard decoded == expected else {
                fatalError("tokenizer round trip: \(Array(text.utf8)) became \(decoded) through \(plain)")
            }
            _ = tokenizer.encode(text, addSpecial: true, parseSpecial: true)
        }
        if let tokenizer = sentencePieceVocabulary {
            let plain = tokenizer.encode(text, addSpecial: false, parseSpecial: false)
            var expected = String.UnicodeScalarView()
            expected.append(contentsOf: text.unicodeScalars.map { $0 == "\u{2581}" ? " " : $0 })
            guard Array(tokenizer.decode(plain).utf8) == Array(String(expected).utf8) else {
                fatalError("SentencePiece round trip: \(Array(text.utf8)) became \(tokenizer.decode(plain))")
            }
            _ = tokenizer.decode(tokenizer.encode(text, addSpecial: true, parseSpecial: true))
        }
        // Every pre-tokenizer ends and cuts the text into non-empty pieces that join back to it.
        for pre in [PreTokenizer.smollm, .llama3(maxDigits: 3), .llama3(maxDigits: 1)] {
            let pieces = pre.split(text)
            guard !pieces.contains(""), pieces.joined() == text else {
                fatalError("pre-tokenizer \(pre) on \(Array(text.utf8)) gave \(pieces)")
            }
        }
    }

    /// The tokenizer of the model named by `LOWBIT_MODEL`, loaded once.
    public static let vocabulary: Tokenizer? = {
        guard let path = FileIO.environment("LOWBIT_MODEL"), let file = try? GGUFFile(path: path) else { return nil }
        return try? Tokenizer(gguf: file)
    }()

    /// The SentencePiece seed's tokenizer: the fuzzer and the tests run from the repository root.
    public static let sentencePieceVocabulary: Tokenizer? = {
        guard let file = try? GGUFFile(path: "Tests/Fuzz/Corpus/gguf/tokenizer-sentencepiece.gguf") else { return nil }
        return try? Tokenizer(gguf: file)
    }()

    static func temporaryPath() -> String {
        let directory = FileIO.environment("TMPDIR") ?? "/tmp"
        return "\(directory)/lowbit-fuzz-\(getpid())-\(pthread_self()).lbs"
    }

    /// Matrix file bytes with the header's and each section's CRC-32 recomputed.
    public static func withMatrixChecksums(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.count >= 128 else { return bytes }
        var out = bytes
        out.withUnsafeMutableBytes { raw in
            for i in 0..<3 {
                let offset = raw.loadUnaligned(fromByteOffset: 48 + 24 * i, as: UInt64.self)
                let length = raw.loadUnaligned(fromByteOffset: 56 + 24 * i, as: UInt64.self)
                guard offset <= UInt64(raw.count), length <= UInt64(raw.count) - offset else { continue }
                let section = UnsafeRawBufferPointer(rebasing: raw[Int(offset)..<Int(offset + length)])
                raw.storeBytes(of: CRC32.checksum(section).littleEndian, toByteOffset: 64 + 24 * i, as: UInt32.self)
            }
            let header = UnsafeRawBufferPointer(rebasing: raw[0..<120])
            raw.storeBytes(of: CRC32.checksum(header).littleEndian, toByteOffset: 120, as: UInt32.self)
        }
        return out
    }

    /// Stack file bytes with the index's and the header's CRC-32 recomputed (block checksums
    /// stay as they are: a mutated block is caught by them, which is what the reader must do).
    public static func withStackChecksums(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.count >= 64 else { return bytes }
        var out = bytes
        out.withUnsafeMutableBytes { raw in
            let indexBytes = raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
            if indexBytes <= UInt64(raw.count - 64) {
                let index = UnsafeRawBufferPointer(rebasing: raw[64..<(64 + Int(indexBytes))])
                raw.storeBytes(of: CRC32.checksum(index).littleEndian, toByteOffset: 48, as: UInt32.self)
            }
            let header = UnsafeRawBufferPointer(rebasing: raw[0..<56])
            raw.storeBytes(of: CRC32.checksum(header).littleEndian, toByteOffset: 56, as: UInt32.self)
        }
        return out
    }
}
