import Foundation
import XCTest
@testable import LowBit
@testable import LowBitCore
@testable import LowBitModel
@testable import LowBitAVX2

/// Writes small GGUF files for the validation tests.
struct GGUFBuilder {
    var kv: [(String, UInt32, [UInt8])] = []
    var tensors: [(String, [UInt64], UInt32, UInt64?)] = []  // offset nil: the running sum
    var version: UInt32 = 3
    var tensorBytes: [UInt8] = []

    static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    static func str(_ s: String) -> [UInt8] { le(UInt64(s.utf8.count)) + Array(s.utf8) }

    mutating func addU32(_ key: String, _ v: UInt32) { kv.append((key, 4, GGUFBuilder.le(v))) }
    mutating func addString(_ key: String, _ v: String) { kv.append((key, 8, GGUFBuilder.str(v))) }
    mutating func addF32(_ key: String, _ v: Float) { kv.append((key, 6, GGUFBuilder.le(v.bitPattern))) }
    mutating func addBool(_ key: String, _ v: Bool) { kv.append((key, 7, [v ? 1 : 0])) }
    mutating func addI32Array(_ key: String, _ v: [Int32]) {
        kv.append((key, 9, GGUFBuilder.le(UInt32(5)) + GGUFBuilder.le(UInt64(v.count)) + v.flatMap(GGUFBuilder.le)))
    }
    mutating func addF32Array(_ key: String, _ v: [Float]) {
        kv.append((key, 9, GGUFBuilder.le(UInt32(6)) + GGUFBuilder.le(UInt64(v.count))
                   + v.flatMap { GGUFBuilder.le($0.bitPattern) }))
    }
    mutating func addStringArray(_ key: String, _ v: [String]) {
        kv.append((key, 9, GGUFBuilder.le(UInt32(8)) + GGUFBuilder.le(UInt64(v.count)) + v.flatMap(GGUFBuilder.str)))
    }

    func bytes() -> [UInt8] {
        var out = Array("GGUF".utf8) + GGUFBuilder.le(version) + GGUFBuilder.le(UInt64(tensors.count))
            + GGUFBuilder.le(UInt64(kv.count))
        for (k, t, v) in kv { out += GGUFBuilder.str(k) + GGUFBuilder.le(t) + v }
        var running: UInt64 = 0
        for (name, dims, type, offset) in tensors {
            out += GGUFBuilder.str(name) + GGUFBuilder.le(UInt32(dims.count)) + dims.flatMap(GGUFBuilder.le)
                + GGUFBuilder.le(type)
            out += GGUFBuilder.le(offset ?? running)
            let elements = dims.reduce(1, &*)  // wrapping: the overflow case must still be writable
            let size = type == 0 ? elements &* 4 : elements / 32 &* 34
            running = (running &+ size &+ 31) / 32 &* 32
        }
        while out.count % 32 != 0 { out.append(0) }
        return out + tensorBytes
    }

    /// A valid file: one F32 vector and one Q8_0 matrix.
    static func valid() -> GGUFBuilder {
        var b = GGUFBuilder()
        b.addString("general.architecture", "llama")
        b.addU32("llama.block_count", 1)
        b.addStringArray("tokenizer.ggml.tokens", ["a", "b"])
        b.tensors = [("norm", [32], 0, nil), ("w", [64, 2], 8, nil)]
        var data = (0..<32).flatMap { GGUFBuilder.le(Float(Float($0) * 0.5).bitPattern) }           // 128 bytes
        for block in 0..<4 {                                                                      // Q8_0: d = 0.25
            data += GGUFBuilder.le(Float16(0.25).bitPattern) + (0..<32).map { UInt8(bitPattern: Int8($0 - 16 + block)) }
        }
        b.tensorBytes = data  // the file ends with the last tensor
        return b
    }
}

final class GGUFTests: XCTestCase {
    func status(_ bytes: [UInt8]) -> LowBitStatus? {
        do { _ = try GGUFFile(bytes: bytes); return nil } catch let e as LowBitError { return e.status } catch {
            return .internal
        }
    }

    func testValidFileReadsAndDequantizes() throws {
        let f = try GGUFFile(bytes: GGUFBuilder.valid().bytes())
        XCTAssertEqual(f.metadata["general.architecture"], .string("llama"))
        XCTAssertEqual(f.metadata["tokenizer.ggml.tokens"]?.arrayValue?.count, 2)
        let norm = try f.dequantized(try f.tensor("norm"))
        XCTAssertEqual(norm[3], 1.5)
        let w = try f.tensor("w")
        XCTAssertEqual(w.rows, 2); XCTAssertEqual(w.cols, 64)
        let values = try f.dequantized(w)
        XCTAssertEqual(values[0], 0.25 * -16)
        XCTAssertEqual(values[32 + 5], 0.25 * Float(5 - 16 + 1))
    }

    /// A file read from its path reads its header in parts (here past the first 4 MiB, in a long
    /// metadata array) and its tensors when used: the same file as from its bytes; a file cut
    /// inside a tensor is refused at open.
    func testFileFromPathReadsAsFromBytes() throws {
        var b = GGUFBuilder.valid()
        b.kv.insert(("padding", 9, GGUFBuilder.le(UInt32(4)) + GGUFBuilder.le(UInt64(1 << 20))
                     + [UInt8](repeating: 7, count: 4 << 20)), at: 0)
        let bytes = b.bytes()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lowbit-\(getpid())-long.gguf").path
        defer { unlink(path) }
        try FileIO.writeAtomically(bytes, to: path)
        let fromPath = try GGUFFile(path: path), fromBytes = try GGUFFile(bytes: bytes)
        XCTAssertGreaterThan(fromPath.bytes.count, 1 << 22)
        XCTAssertEqual(fromPath.metadata, fromBytes.metadata)
        for t in fromBytes.tensors {
            XCTAssertEqual(try fromPath.dequantized(try fromPath.tensor(t.name)), try fromBytes.dequantized(t))
            XCTAssertEqual(try fromPath.withTensorBytes(t) { Array($0) },
                           try fromBytes.withTensorBytes(t) { Array($0) })
        }
        let w = try fromPath.tensor("w")
        var row = [Float](repeating: 0, count: 64)
        try fromPath.dequantize(w, start: 64, count: 64, into: &row)
        XCTAssertEqual(row, Array(try fromBytes.dequantized(w)[64...]))
        try FileIO.writeAtomically(Array(bytes.dropLast(10)), to: path)
        XCTAssertThrowsStatus(.badFormat, try GGUFFile(path: path))
    }

    /// Every tensor type decodes to the values llama.cpp's own `gguf` package gives, bit for bit
    /// (Tests/Fixtures/make_ggml_blocks.py wrote random blocks of each and gguf's decoding beside).
    func testEveryTensorTypeDecodesAsGGUFDoes() throws {
        let fixture = testsFolder.appendingPathComponent("Fixtures/ggml_blocks.gguf").path
        let f = try GGUFFile(path: fixture)
        var decoded: Set<GGUFFile.TensorType> = [.f32]
        for t in f.tensors where !t.name.hasSuffix(".expected") {
            let got = try f.dequantized(t), expected = try f.dequantized(try f.tensor(t.name + ".expected"))
            XCTAssertEqual(t.name, t.type.name)
            XCTAssertEqual(got.count, expected.count, t.name)
            let differing = zip(got, expected).filter { $0.bitPattern != $1.bitPattern }.count
            XCTAssertEqual(differing, 0, "\(t.name): \(differing) of \(got.count) values differ from gguf's")
            XCTAssertTrue(got.allSatisfy(\.isFinite), t.name)
            decoded.insert(t.type)
        }
        // I8 (lowbit model files' byte tensors) is each byte as a signed integer.
        var writer = GGUFWriter()
        try writer.addTensor("bytes", dims: [32], type: .i8, data: (0..<32).map { UInt8($0 * 8) })
        let bytes = try GGUFFile(bytes: writer.encoded())
        XCTAssertEqual(try bytes.dequantized(try bytes.tensor("bytes")),
                       (0..<32).map { Float(Int8(bitPattern: UInt8($0 * 8))) })
        decoded.insert(.i8)
        XCTAssertEqual(decoded, Set(GGUFFile.TensorType.allCases))
    }

    /// The types held as lowbit codes (`GGMLBlocks.integerGroupBits`) import to matrices whose
    /// values are gguf's decoding on the same random blocks, bit for bit but for a zero's sign
    /// (d·q + m gives +0 where ggml's d·(q − 8) gives −0 for a negative d); the others are refused.
    func testIntegerGroupTypesImportAsTheirOwnValues() throws {
        let fixture = testsFolder.appendingPathComponent("Fixtures/ggml_blocks.gguf").path
        let f = try GGUFFile(path: fixture)
        var imported: Set<GGUFFile.TensorType> = []
        for t in f.tensors where !t.name.hasSuffix(".expected") {
            let expected = try f.dequantized(try f.tensor(t.name + ".expected"))
            let rows = 1, cols = t.elementCount
            guard let bits = GGMLBlocks.integerGroupBits(t.type) else {
                XCTAssertThrowsStatus(.unsupported, try f.withTensorBytes(t) {
                    try Importer.ggmlBlocks($0, type: t.type, rows: rows, cols: cols)
                })
                continue
            }
            let m = try f.withTensorBytes(t) { try Importer.ggmlBlocks($0, type: t.type, rows: rows, cols: cols) }
            XCTAssertEqual(m.bits, bits, t.name)
            let differing = zip(m.dequantized(), expected).filter {
                $0.bitPattern != $1.bitPattern && !($0 == 0 && $1 == 0)
            }.count
            XCTAssertEqual(differing, 0, "\(t.name): \(differing) of \(expected.count) values differ from gguf's")
            imported.insert(t.type)
            // One block short is a size mismatch, not a crash.
            XCTAssertThrowsStatus(.sizeMismatch, try f.withTensorBytes(t) {
                try Importer.ggmlBlocks(UnsafeRawBufferPointer(rebasing: $0.dropLast(t.type.block.bytes)),
                                        type: t.type, rows: rows, cols: cols)
            })
        }
        XCTAssertEqual(imported, [.q4_0, .q4_1, .q5_0, .q5_1, .q4_K, .q5_K, .tq1_0, .tq2_0])
    }

    /// A type this reader does not decode is unsupported, named, not a malformed file.
    func testUnknownTensorTypeIsUnsupportedByName() {
        var iq2 = GGUFBuilder.valid(); iq2.tensors[1].2 = 16
        XCTAssertThrowsError(try GGUFFile(bytes: iq2.bytes())) { error in
            let e = error as? LowBitError
            XCTAssertEqual(e?.status, .unsupported)
            XCTAssertTrue(e?.message.contains("IQ2_XXS") ?? false, e?.message ?? "")
        }
    }

    /// One handcrafted file per failure class: each is a clear format error, never a crash.
    func testEveryMalformedClassIsRejected() {
        var cases: [(String, [UInt8])] = []
        var magic = GGUFBuilder.valid().bytes(); magic[0] = UInt8(ascii: "X")
        cases.append(("bad magic", magic))
        var v = GGUFBuilder.valid(); v.version = 4
        cases.append(("unsupported version", v.bytes()))
        var longString = GGUFBuilder.valid(); longString.kv[0].2 = GGUFBuilder.le(UInt64(1 << 40)) + Array("llama".utf8)
        cases.append(("truncated string", longString.bytes()))
        var longArray = GGUFBuilder.valid(); longArray.kv[2].2 = GGUFBuilder.le(UInt32(8))
            + GGUFBuilder.le(UInt64(1 << 19)) + GGUFBuilder.str("a")
        cases.append(("truncated array", longArray.bytes()))
        var dupKey = GGUFBuilder.valid(); dupKey.addU32("llama.block_count", 2)
        cases.append(("duplicate key", dupKey.bytes()))
        var dupName = GGUFBuilder.valid(); dupName.tensors[1].0 = "norm"
        cases.append(("duplicate tensor name", dupName.bytes()))
        var outside = GGUFBuilder.valid(); outside.tensors[1].3 = 1 << 30
        cases.append(("offset outside the file", outside.bytes()))
        var notRunning = GGUFBuilder.valid(); notRunning.tensors[1].3 = 160
        cases.append(("offset not the padded running sum", notRunning.bytes()))
        var overflow = GGUFBuilder.valid(); overflow.tensors[0].1 = [1 << 32, 1 << 32]
        cases.append(("dimension overflow", overflow.bytes()))
        var partialBlock = GGUFBuilder.valid(); partialBlock.tensors[1].1 = [48, 2]
        cases.append(("rows not a whole number of blocks", partialBlock.bytes()))
        var badType = GGUFBuilder.valid(); badType.kv[1].1 = 99
        cases.append(("unknown metadata type", badType.bytes()))
        for (name, bytes) in cases { XCTAssertEqual(status(bytes), .badFormat, name) }
        let good = GGUFBuilder.valid().bytes()
        for cut in 0..<good.count { XCTAssertEqual(status(Array(good[..<cut])), .badFormat, "cut at \(cut)") }
        for i in 0..<good.count {
            var flipped = good
            flipped[i] ^= 0x81
            _ = status(flipped)  // any outcome but a crash
        }
    }
}
