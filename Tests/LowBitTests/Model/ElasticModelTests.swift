import Foundation
import Synchronization
import XCTest
@testable import LowBit
@testable import LowBitCore
@testable import LowBitModel

/// Elastic model files (`ModelFile.quantizeElastic`, `ElasticWeights`) on the fuzz corpus's
/// one-layer model (its context is long enough for calibration and held-out tokens).
final class ElasticModelTests: XCTestCase {
    static let text = String(repeating: ModelFileTests.text, count: 12)
    static let tokens = [70, 71, 72, 73, 74, 3, 9]

    func temporaryPath(_ name: String) -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lowbit-\(getpid())-\(name)").path
        addTeardownBlock { unlink(path) }
        return path
    }

    /// The weight bytes of the calibrated model with every layer at `bits`, groups of 32.
    func uniformBytes(_ source: String, bits: Int) throws -> Int {
        let weights = WeightChoice.requantized(type: .integer(bits: bits), groupSize: 32, kernel: .auto,
                                               calibration: ElasticModelTests.text)
        return try LlamaModel.load(path: source, weights: weights).weightBytes
    }

    /// An elastic file of up to eight levels from the 2-bit model's size to the 4-bit one's.
    func writeElastic(_ source: String) throws -> (path: String, targets: [Int], ladders: [String: [TensorPrecision]]) {
        let low = try uniformBytes(source, bits: 2), high = try uniformBytes(source, bits: 4)
        let path = temporaryPath("elastic.gguf")
        let (ladders, targets, losses) = try ModelFile.quantizeElastic(
            modelPath: source, output: path, minBytes: low, maxBytes: high, calibrationText: ElasticModelTests.text,
            levelCount: 8)
        // Levels no better than a smaller one are left out: held-out losses fall strictly.
        XCTAssertEqual(losses.count, targets.count)
        XCTAssertGreaterThan(targets.count, 1)
        XCTAssertTrue(zip(losses, losses.dropFirst()).allSatisfy { $0 > $1 }, "\(losses)")
        XCTAssertTrue(zip(targets, targets.dropFirst()).allSatisfy { $0 < $1 }, "\(targets)")
        return (path, targets, ladders)
    }

    func logits(_ m: LlamaModel) throws -> [Float] {
        let t = ElasticModelTests.tokens
        return try m.forward(t, cache: m.makeCache(capacity: 16), logitRows: 0..<t.count)
    }

    /// Each level holds the allocation `allocate` makes at its target size, computes what a
    /// static model file of the same matrices computes, and holds the same bytes.
    func testEveryLevelIsTheStaticModelOfItsSize() throws {
        let source = ModelFileTests.sourcePath
        let (path, targets, ladders) = try writeElastic(source)
        let n = targets.count
        XCTAssertEqual(Set(ladders.keys), Set(ModelFileTests.linearNames))
        let file = try GGUFFile(path: path)
        let levels = try XCTUnwrap(try ModelFile.levels(file))
        let quantizer = try ModelQuantizer(file: try GGUFFile(path: source), calibrationText: ElasticModelTests.text)
        let elastic = try LlamaModel.load(path: path, weights: .q4_1(kernel: .dequant))
        let weights = try XCTUnwrap(elastic.elastic)
        XCTAssertEqual(weights.level, n - 1, "no budget: the largest level")
        XCTAssertEqual((0..<n).map { weights.bytes(level: $0) }, (0..<n).map { weights.bytes(level: $0) }.sorted())
        var statics: [LlamaModel] = []
        for l in 0..<n {
            let chosen = try quantizer.allocate(targetBytes: targets[l], text: ElasticModelTests.text)
            var matrices: [String: ModelFile.Matrix] = [:]
            for (name, table) in levels {
                XCTAssertEqual(ladders[name]![table[l]], chosen[name], "level \(l): \(name)")
                matrices[name] = try ModelFile.matrix(file, name, rung: table[l])
            }
            let staticPath = temporaryPath("static-\(l).gguf")
            try ModelFile.write(source: try GGUFFile(path: source), matrices: matrices, to: staticPath)
            statics.append(try LlamaModel.load(path: staticPath, weights: .q4_1(kernel: .dequant)))
        }
        for l in 0..<n {
            // The largest level that fits: a later level of the same size, where there is one.
            try elastic.setBudget(weights.bytes(level: l))
            let held = try XCTUnwrap(weights.level)
            XCTAssertEqual(held, (l..<n).last { weights.bytes(level: $0) == weights.bytes(level: l) })
            XCTAssertEqual(elastic.weightBytes, statics[held].weightBytes, "level \(held)")
            XCTAssertEqual(elastic.weightBytes, weights.bytes(level: held))
            XCTAssertTrue(try logits(elastic) == logits(statics[held]), "level \(held)")
        }
        XCTAssertGreaterThan(Set((0..<n).map { weights.bytes(level: $0) }).count, 1)
    }

    /// On `auto` (the family measured here) as on a named one, a level holds exactly the bytes
    /// its headers said it would.
    func testLevelsHoldTheBytesTheirHeadersSay() throws {
        let (path, _, _) = try writeElastic(ModelFileTests.sourcePath)
        for kernel in [KernelFamily.auto, .lut, .dequant] {
            let model = try LlamaModel.load(path: path, weights: .q4_1(kernel: kernel))
            let weights = try XCTUnwrap(model.elastic)
            for l in (0..<weights.levelCount).reversed() {
                try model.setBudget(weights.bytes(level: l))
                XCTAssertEqual(model.weightBytes, weights.bytes(level: try XCTUnwrap(weights.level)), "\(kernel) \(l)")
            }
        }
    }

    /// A budget change reads only the tensors whose rung changes; a budget below the smallest
    /// level, at load or later, is refused and changes nothing.
    func testBudgetsMoveOnlyWhatChanges() throws {
        let (path, _, _) = try writeElastic(ModelFileTests.sourcePath)
        let model = try LlamaModel.load(path: path, weights: .q4_1(kernel: .dequant), budget: 1 << 40)
        let weights = try XCTUnwrap(model.elastic)
        let top = weights.levelCount - 1
        let before = try weights.names.indices.map { try weights.current($0) }
        try model.setBudget(weights.bytes(level: 0))
        XCTAssertEqual(weights.level, 0)
        for t in weights.names.indices {
            let same = try weights.current(t) === before[t]
            XCTAssertEqual(same, weights.tables[t][0] == weights.tables[t][top], weights.names[t])
        }
        XCTAssertTrue(weights.names.indices.contains { weights.tables[$0][0] != weights.tables[$0][top] })
        let bytes = model.weightBytes, logitsBefore = try logits(model)
        XCTAssertThrowsStatus(.invalidArgument, try model.setBudget(weights.bytes(level: 0) - 1))
        XCTAssertEqual(weights.level, 0)
        XCTAssertEqual(model.weightBytes, bytes)
        XCTAssertEqual(try logits(model), logitsBefore)
        XCTAssertThrowsStatus(.invalidArgument,
                              try LlamaModel.load(path: path, weights: .q4_1(kernel: .dequant), budget: 1000))

        // A damaged rung of the top level (its header intact): moving there fails, and changes nothing.
        var bytesOfFile = try FileIO.read(path)
        let file = try GGUFFile(bytes: bytesOfFile)
        let t = try XCTUnwrap(weights.names.indices.first { weights.tables[$0][0] != weights.tables[$0][top] })
        let rung = try file.tensor(ModelFile.matrixName(weights.names[t], rung: weights.tables[t][top]))
        bytesOfFile[rung.offset + rung.byteCount - 1] ^= 0x40
        let damaged = try LlamaModel(gguf: try GGUFFile(bytes: bytesOfFile), weights: .q4_1(kernel: .dequant),
                                     budget: weights.bytes(level: 0))
        let (damagedBytes, damagedLogits) = (damaged.weightBytes, try logits(damaged))
        XCTAssertThrowsStatus(.badFormat, try damaged.setBudget(1 << 40))
        XCTAssertEqual(damaged.elastic?.level, 0)
        XCTAssertEqual(damaged.weightBytes, damagedBytes)
        XCTAssertEqual(try logits(damaged), damagedLogits)
        XCTAssertThrowsStatus(.invalidArgument,
                              try LlamaModel.load(path: ModelFileTests.sourcePath, weights: .q4_1(kernel: .dequant),
                                                  budget: 1 << 30))
    }

    /// Forward passes on one thread while another moves the budget: a pass between changes
    /// computes exactly its level's logits, and the weights held never exceed the larger level.
    func testBudgetChangesWhileProductsRun() throws {
        let (path, _, _) = try writeElastic(ModelFileTests.sourcePath)
        let model = try LlamaModel.load(path: path, weights: .q4_1(kernel: .dequant))
        let weights = try XCTUnwrap(model.elastic)
        let top = weights.levelCount - 1
        let high = try logits(model)
        try model.setBudget(weights.bytes(level: 0))
        let low = try logits(model)
        XCTAssertNotEqual(high, low)
        let done = Atomic<Bool>(false), mismatches = Atomic<Int>(0)
        let changer = Thread {
            for i in 0..<40 { try? model.setBudget(weights.bytes(level: i % 2 == 0 ? top : 0)) }
            done.store(true, ordering: .sequentiallyConsistent)
        }
        changer.start()
        while !done.load(ordering: .sequentiallyConsistent) {
            // A pass that straddles a change may mix levels across layers (each product runs on
            // one rung); a pass between changes must be exactly its level's.
            let (level, changes) = (weights.level, weights.changeCount)
            if model.weightBytes > max(weights.bytes(level: 0), weights.bytes(level: top)) {
                mismatches.add(1, ordering: .relaxed)
            }
            let out = try logits(model)
            if changes % 2 == 0, weights.changeCount == changes, out != (level == top ? high : low) {
                mismatches.add(1, ordering: .relaxed)
            }
        }
        XCTAssertEqual(mismatches.load(ordering: .relaxed), 0)
    }

    /// Level tables that name a missing rung, rungs outside any ladder, a table of the wrong
    /// length, rungs without the levels key: format errors that name the tensor.
    func testMalformedLaddersAreFormatErrors() throws {
        let (path, _, _) = try writeElastic(ModelFileTests.sourcePath)
        let file = try GGUFFile(path: path)
        let count = try XCTUnwrap(file.metadata[ModelFile.levelsKey]?.intValue)
        func rewrite(skip: String? = nil, levelsKey: UInt32? = UInt32(count),
                     edit: (String, [UInt8]) -> (String, [Int], [UInt8])? = { _, _ in nil }) throws -> GGUFFile {
            var writer = GGUFWriter()
            for key in file.metadataOrder where key != ModelFile.levelsKey { try writer.copy(key, from: file) }
            if let levelsKey { writer.set(ModelFile.levelsKey, uint32: levelsKey) }
            for t in file.tensors where t.name != skip {
                let data = try file.withTensorBytes(t) { Array($0) }
                if let (name, dims, replaced) = edit(t.name, data) {
                    try writer.addTensor(name, dims: dims, type: t.type, data: replaced)
                } else {
                    try writer.addTensor(t.name, dims: t.dims, type: t.type, data: data)
                }
            }
            return try GGUFFile(bytes: writer.encoded())
        }
        func loadError(_ g: GGUFFile, mentions: String, file: StaticString = #filePath, line: UInt = #line) {
            do {
                _ = try LlamaModel(gguf: g, weights: .q4_1(kernel: .dequant))
                XCTFail("a malformed elastic model loaded", file: file, line: line)
            } catch let e as LowBitError {
                XCTAssertEqual(e.status, .badFormat, e.message, file: file, line: line)
                XCTAssertTrue(e.message.contains(mentions), e.message, file: file, line: line)
            } catch {
                XCTFail("\(error)", file: file, line: line)
            }
        }
        loadError(try rewrite { name, data in
            name == "blk.0.ffn_up.levels" ? (name, [count], [15] + data.dropFirst()) : nil
        }, mentions: "blk.0.ffn_up.levels")
        loadError(try rewrite { name, data in
            name == "blk.0.ffn_up.levels" ? (name, [count - 1], Array(data.prefix(count - 1))) : nil
        }, mentions: "blk.0.ffn_up.levels")
        loadError(try rewrite(skip: "blk.0.ffn_up.levels"), mentions: "blk.0.ffn_up.lowbit.0")
        loadError(try rewrite(levelsKey: nil), mentions: ModelFile.levelsKey)
        loadError(try rewrite(levelsKey: 0), mentions: ModelFile.levelsKey)
        // A rung whose parameters are not exact Float16s would hold more than its level says.
        let (wide, _) = try ModelFile.matrix(file, "blk.0.ffn_down.weight", rung: 0)
        wide.scales.floats()[0] = Float(Float16(wide.scales.floats()[0])) + 1e-6
        let wideBytes = MatrixFile.encode(wide)
        loadError(try rewrite { name, _ in
            name == "blk.0.ffn_down.lowbit.0" ? (name, [wideBytes.count], wideBytes) : nil
        }, mentions: "blk.0.ffn_down.lowbit.0")
        let rung = try file.tensor("blk.0.attn_k.lowbit.0")
        loadError(try rewrite { name, data in
            name == rung.name ? (name, [data.count], data.map { $0 ^ 0x20 }) : nil
        }, mentions: rung.name)
    }
}
