import Foundation
import XCTest
@testable import LowBit
@testable import LowBitCore
@testable import LowBitModel

/// lowbit model files (`ModelFile`, written through `GGUFWriter`), on the fuzz corpus's one-layer
/// model: width 32, feed-forward 64, Q4_0, F16 and Q8_0 tensors, a tied Q8_0 embedding.
final class ModelFileTests: XCTestCase {
    static let sourcePath = FuzzCorpusTests.corpus.appendingPathComponent("gguf/llama-complete.gguf").path
    static let text = String(repeating: "Hello, He said. Hell! ", count: 8)
    static let linearNames = LlamaModel.linearNames.map { "blk.0.\($0).weight" } + ["token_embd.weight"]

    func temporaryPath(_ name: String) -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lowbit-\(getpid())-\(name)").path
        addTeardownBlock { unlink(path) }
        return path
    }

    /// Every linear layer and the tied output at 4 bits, group 32, calibrated on `text`.
    func writeCalibrated(to path: String) throws -> GGUFFile {
        let source = try GGUFFile(path: ModelFileTests.sourcePath)
        let quantizer = try ModelQuantizer(file: source, calibrationText: ModelFileTests.text)
        var matrices: [String: (matrix: QuantizedMatrix, inputScales: [Float]?)] = [:]
        for name in ModelFileTests.linearNames {
            matrices[name] = try quantizer.quantize(name, type: .integer(bits: 4), groupSize: 32)
        }
        try ModelFile.write(source: source, matrices: matrices, to: path)
        return source
    }

    /// The source's metadata entries and other tensors are copied byte for byte; each layer is
    /// replaced by its matrix and input scales.
    func testWriterCopiesEverythingButTheLayers() throws {
        let path = temporaryPath("copy.gguf")
        let source = try writeCalibrated(to: path)
        let written = try GGUFFile(path: path)
        for key in source.metadataOrder { XCTAssertEqual(written.metadata[key], source.metadata[key], key) }
        XCTAssertEqual(written.metadata[ModelFile.versionKey]?.intValue, Int(ModelFile.version))
        let listed = try ModelFile.precisions(written)
        XCTAssertEqual(Set(listed.keys), Set(ModelFileTests.linearNames))
        XCTAssertTrue(listed.values.allSatisfy {
            $0.count == 1 && $0[0].type == .integer(bits: 4) && $0[0].groupSize == 32
        })
        for t in source.tensors {
            if ModelFileTests.linearNames.contains(t.name) {
                XCTAssertFalse(written.tensorNames.contains(t.name), t.name)
                XCTAssertTrue(ModelFile.holds(written, t.name), t.name)
                XCTAssertTrue(written.tensorNames.contains(ModelFile.inputScalesName(t.name)), t.name)
            } else {
                let copy = try written.tensor(t.name)
                XCTAssertEqual(copy.dims, t.dims)
                XCTAssertEqual(copy.type, t.type)
                XCTAssertEqual(try written.withTensorBytes(copy) { Array($0) },
                               try source.withTensorBytes(t) { Array($0) })
            }
        }
        XCTAssertThrowsStatus(.invalidArgument, try ModelFile.write(source: written, matrices: [:], to: path))
    }

    /// A written model is the model the loader makes with the same quantization: equal logits
    /// on the same kernel and equal weight bytes; on float weights, the same model to rounding.
    func testLoadsAsTheModelItWasMadeFrom() throws {
        let path = temporaryPath("model.gguf")
        _ = try writeCalibrated(to: path)
        let tokens = [70, 71, 72, 73, 74, 3, 9]
        func logits(_ m: LlamaModel) throws -> [Float] {
            try m.forward(tokens, cache: m.makeCache(capacity: 16), logitRows: 0..<tokens.count)
        }
        let made = try LlamaModel.load(path: ModelFileTests.sourcePath,
                                       weights: .requantized(type: .integer(bits: 4), groupSize: 32,
                                                             kernel: .dequant, calibration: ModelFileTests.text))
        let loaded = try LlamaModel.load(path: path, weights: .q4_1(kernel: .dequant))
        XCTAssertTrue(loaded.isLowbitModelFile)
        XCTAssertEqual(try logits(loaded), try logits(made))
        XCTAssertEqual(loaded.weightBytes, made.weightBytes)
        let exact = try LlamaModel.load(path: path, weights: .q4_1(kernel: .dequant, activationBits: 32))
        let reference = try LlamaModel.load(path: path, weights: .reference)
        for (a, b) in zip(try logits(exact), try logits(reference)) { XCTAssertEqual(a, b, accuracy: 1e-4) }
    }

    /// A damaged matrix, input scales that are not positive, or a layer held both ways: format
    /// errors that name the tensor.
    func testMalformedLayersAreFormatErrors() throws {
        let path = temporaryPath("bad.gguf")
        let source = try writeCalibrated(to: path)
        func loadError(_ bytes: [UInt8]) throws -> String {
            do {
                _ = try LlamaModel(gguf: try GGUFFile(bytes: bytes), weights: .q4_1(kernel: .dequant))
                XCTFail("a malformed model loaded")
                return ""
            } catch let e as LowBitError {
                XCTAssertEqual(e.status, .badFormat, e.message)
                return e.message
            }
        }
        var bytes = try FileIO.read(path)
        let written = try GGUFFile(bytes: bytes)
        let blob = try written.tensor("blk.0.attn_v.lowbit")
        bytes[blob.offset + blob.byteCount - 1] ^= 0x40
        XCTAssertTrue(try loadError(bytes).contains("blk.0.attn_v.lowbit"))

        let (m, _) = try ModelQuantizer(file: source, calibrationText: nil)
            .quantize("blk.0.attn_q.weight", type: .integer(bits: 2), groupSize: 32)
        var scales = [Float](repeating: 1, count: 32)
        scales[5] = 0
        try ModelFile.write(source: source, matrices: ["blk.0.attn_q.weight": (m, scales)], to: path)
        XCTAssertTrue(try loadError(try FileIO.read(path)).contains("input_scales"))

        var writer = GGUFWriter()
        for key in source.metadataOrder { try writer.copy(key, from: source) }
        for t in source.tensors {
            try writer.addTensor(t.name, dims: t.dims, type: t.type, data: source.withTensorBytes(t) { Array($0) })
        }
        let lbm = MatrixFile.encode(m)
        try writer.addTensor("blk.0.attn_q.lowbit", dims: [lbm.count], type: .i8, data: lbm)
        XCTAssertTrue(try loadError(writer.encoded()).contains("both"))
    }

    /// The `--target-size` allocation: every tensor gets a candidate precision, the model fits
    /// the target, and a target below the smallest model is refused.
    func testAllocationMeetsTheTargetSize() throws {
        let source = try GGUFFile(path: ModelFileTests.sourcePath)
        let text = String(repeating: ModelFileTests.text, count: 12)
        XCTAssertThrowsStatus(.invalidArgument,
                              try ModelQuantizer(file: source, calibrationText: ModelFileTests.text)
                                .allocate(targetBytes: 1 << 30, text: ModelFileTests.text))
        let quantizer = try ModelQuantizer(file: source, calibrationText: text)
        let smallest = try LlamaModel(gguf: source, weights: .requantized(type: .integer(bits: 2), groupSize: 128,
                                                                         kernel: .auto)).weightBytes
        let largest = try LlamaModel(gguf: source, weights: .requantized(type: .integer(bits: 4), groupSize: 32,
                                                                        kernel: .auto)).weightBytes
        let target = (smallest + largest) / 2
        let chosen = try quantizer.allocate(targetBytes: target, text: text, lossTokens: 32)
        XCTAssertEqual(Set(chosen.keys), Set(ModelFileTests.linearNames))
        XCTAssertTrue(chosen.values.allSatisfy { TensorPrecision.candidates.contains($0) })
        var matrices: [String: (matrix: QuantizedMatrix, inputScales: [Float]?)] = [:]
        for (name, p) in chosen {
            matrices[name] = try quantizer.quantize(name, type: .integer(bits: p.bits), groupSize: p.groupSize)
        }
        let path = temporaryPath("allocated.gguf")
        try ModelFile.write(source: source, matrices: matrices, to: path)
        let model = try LlamaModel.load(path: path, weights: .q4_1(kernel: .auto))
        XCTAssertLessThanOrEqual(model.weightBytes, target)
        XCTAssertThrowsStatus(.invalidArgument,
                              try quantizer.allocate(targetBytes: smallest / 2, text: text, lossTokens: 32))
    }
}
