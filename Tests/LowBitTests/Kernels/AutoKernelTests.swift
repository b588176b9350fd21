import Foundation
import XCTest
@testable import LowBit
@testable import LowBitCore
@testable import LowBitAVX2

final class AutoKernelTests: XCTestCase {
    func testAutoPicksAMeasuredFamilyAndKeepsIt() throws {
        AutoKernel.reset()
        var rng = TestRandom(seed: 41)
        let m = try quantized(rng.normals(64 * 256), rows: 64, cols: 256, type: .integer(bits: 2), groupSize: 64)
        let one = try m.autoKernel(n: 1), many = try m.autoKernel(n: 40)
        XCTAssertTrue([KernelFamily.lut, .dequant].contains(one))
        XCTAssertTrue([KernelFamily.lut, .dequant].contains(many))
        XCTAssertEqual(try m.autoKernel(n: 1), one, "a measured choice is kept")
        XCTAssertEqual(try m.autoKernel(n: 33), many, "33 and 40 share a bucket")
        // The auto product is the chosen family's product.
        let x = rng.normals(256)
        XCTAssertEqual(try m.product(x, n: 1, kernel: .auto), try m.product(x, n: 1, kernel: one))
        // Other precisions run the one family that has them, whatever was measured.
        for (bits, family) in [(2, KernelFamily.bitSerial), (4, .bitSerial), (16, .dequant), (32, .dequant)] {
            XCTAssertEqual(try m.product(x, n: 1, kernel: .auto, activationBits: bits),
                           try m.product(x, n: 1, kernel: family, activationBits: bits), "act bits \(bits)")
        }
        XCTAssertThrowsStatus(.unsupported, try m.product(x, n: 1, kernel: .auto, activationBits: 5))
    }

    func testBatchBucketsArePowersOfTwoUpTo256() {
        XCTAssertEqual([1, 2, 3, 4, 5, 31, 32, 33, 128, 129, 256, 5000].map(AutoKernel.bucket),
                       [1, 2, 4, 4, 8, 32, 32, 64, 128, 256, 256, 256])
    }

    func testPickMinimizesTheWorseRatioOverStreamedAndCacheHotTimes() {
        // Slightly faster cache-hot, much slower streamed: the other family.
        XCTAssertEqual(AutoKernel.pick(cold: [1.0, 1.3], hot: [1.0, 0.98]), 0)
        XCTAssertEqual(AutoKernel.pick(cold: [1.2, 1.0], hot: [1.0, 1.1]), 1)
        XCTAssertEqual(AutoKernel.pick(cold: [2, 1], hot: [2, 1]), 1)
        XCTAssertEqual(AutoKernel.pick(cold: [1, 1], hot: [1, 1]), 0, "ties go to the earlier family")
    }

    func testEvictingLayoutsFromTheCacheKeepsTheirContents() throws {
        var rng = TestRandom(seed: 43)
        for type in [WeightType.integer(bits: 3), .mixed(bits: 4)] {
            let m = try quantized(rng.normals(40 * 256), rows: 40, cols: 256, type: type, groupSize: 64)
            let x = rng.normals(2 * 256)
            for family in [KernelFamily.lut, .dequant, .bitSerial, .auto, .reference] {
                let before = try m.product(x, n: 2, kernel: family)
                m.evictLayoutFromCache(family)
                XCTAssertEqual(try m.product(x, n: 2, kernel: family), before, "\(type) \(family)")
            }
        }
    }

    func testCalibrationFileRoundTripAndErrors() throws {
        AutoKernel.reset()
        // Keyed at a fixed tier, so that lines for the tier in use (any tier, as the suite runs at
        // each) never stand for it.
        let key = AutoKernel.Key(rows: 10, cols: 64, groupSize: 32, typeCode: 3, nBucket: 1, threads: 1, tier: .neon)
        AutoKernel.record(key, .dequant)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lowbit-calibration.txt").path
        try AutoKernel.save(to: path)
        AutoKernel.reset()
        try AutoKernel.load(from: path)
        XCTAssertEqual(AutoKernel.table.withLock { $0[key] }, .dequant)
        // A line names its tier, or stands for the tier in use.
        try "10 64 32 3 1 1 lut portable\n10 64 32 3 1 2 lut\n".write(toFile: path, atomically: true, encoding: .utf8)
        try AutoKernel.load(from: path)
        let portableKey = AutoKernel.Key(rows: 10, cols: 64, groupSize: 32, typeCode: 3, nBucket: 1, threads: 1,
                                         tier: .portable)
        XCTAssertEqual(AutoKernel.table.withLock { $0[portableKey] }, .lut)
        let twoThreads = AutoKernel.Key(rows: 10, cols: 64, groupSize: 32, typeCode: 3, nBucket: 1, threads: 2)
        XCTAssertEqual(AutoKernel.table.withLock { $0[twoThreads] }, .lut)
        XCTAssertEqual(AutoKernel.table.withLock { $0[key] }, .dequant)
        for bad in ["10 64 32 3 1 1 fastest\n", "10 64 32 3 1 1 lut sse9\n", "10 64 32 3 1 1 lut avx2 x\n"] {
            try bad.write(toFile: path, atomically: true, encoding: .utf8)
            XCTAssertThrowsStatus(.badFormat, try AutoKernel.load(from: path))
        }
        try "10 64 32 3 1 1 fastest\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsStatus(.badFormat, try AutoKernel.load(from: path))
        XCTAssertEqual(AutoKernel.table.withLock { $0[key] }, .dequant, "a bad file changes nothing")
        XCTAssertThrowsStatus(.io, try AutoKernel.load(from: "/nonexistent/calibration.txt"))
    }

    /// A model layer's choice (`choice(_:oneRowAndBatch:)`): the smallest layout, and among
    /// layouts of that size the batch winner where it is within the tolerance for one row, else
    /// the one-row winner. The measurements are set here, so the rule is tested rather than this
    /// machine's timings.
    func testOneLayoutForOneRowAndBatches() throws {
        guard Tiers.packed != nil else { throw XCTSkip("no packed layouts at the portable tier") }
        AutoKernel.reset()
        defer { AutoKernel.reset() }
        var rng = TestRandom(seed: 44)
        for bits in [3, 4] {
            let m = try quantized(rng.normals(32 * 256), rows: 32, cols: 256, type: .integer(bits: bits), groupSize: 64)
            func measured(lutRatioForOneRow: Double, dequantRatioForOneRow: Double) {
                let one = AutoKernel.key(m, n: 1), batch = AutoKernel.key(m, n: 16)
                AutoKernel.table.withLock { $0[one] = lutRatioForOneRow <= dequantRatioForOneRow ? .lut : .dequant }
                AutoKernel.table.withLock { $0[batch] = .dequant }
                AutoKernel.standing.withLock { $0[one] = [.lut: lutRatioForOneRow, .dequant: dequantRatioForOneRow] }
            }
            // Dequant 5% slower for one row: chosen where its layout is no larger (4 bits: both
            // store 4-bit codes), not at 3 bits (dequant stores them in 4).
            measured(lutRatioForOneRow: 1, dequantRatioForOneRow: 1.05)
            XCTAssertEqual(try AutoKernel.choice(m, oneRowAndBatch: 16), bits == 4 ? .dequant : .lut, "\(bits)-bit")
            // 30% slower for one row: the one-row winner, whatever the bytes.
            measured(lutRatioForOneRow: 1, dequantRatioForOneRow: 1.3)
            XCTAssertEqual(try AutoKernel.choice(m, oneRowAndBatch: 16), .lut, "\(bits)-bit")
            // Dequant the fastest for one row and batches: held where its layout is the smallest.
            measured(lutRatioForOneRow: 1.5, dequantRatioForOneRow: 1)
            XCTAssertEqual(try AutoKernel.choice(m, oneRowAndBatch: 16), bits == 4 ? .dequant : .lut, "\(bits)-bit")
            XCTAssertEqual(try m.kernelByteCount(.dequant) <= m.kernelByteCount(.lut), bits == 4)
        }
    }

    /// A matrix of more than `measuredRows` rows is timed on its first rows: the sample holds
    /// exactly those rows (codes, parameters, group types), and the choice is kept for the
    /// whole matrix's key without packing any layout of the matrix itself.
    func testLargeMatricesAreMeasuredOnTheirLeadingRows() throws {
        AutoKernel.reset()
        defer { AutoKernel.reset() }
        var rng = TestRandom(seed: 45)
        let rows = AutoKernel.measuredRows + 37
        for type in [WeightType.integer(bits: 3), .mixed(bits: 4)] {
            let m = try quantized(rng.normals(rows * 64, scale: 0.05), rows: rows, cols: 64, type: type, groupSize: 32)
            let sample = try AutoKernel.measuredSample(m)
            XCTAssertEqual(sample.rows, AutoKernel.measuredRows)
            for r in [0, 1, sample.rows / 2, sample.rows - 1] {
                for c in 0..<64 { XCTAssertEqual(sample.weight(row: r, col: c), m.weight(row: r, col: c)) }
            }
            let family = try m.autoKernel(n: 1)
            XCTAssertTrue(AutoKernel.candidates.contains(family))
            XCTAssertEqual(AutoKernel.table.withLock { $0[AutoKernel.key(m, n: 1)] }, family)
            XCTAssertTrue(try m.valueCodes().packedLayouts.isEmpty, "\(type): measured on the sample only")
        }
        let small = try quantized(rng.normals(16 * 64), rows: 16, cols: 64, type: .integer(bits: 2), groupSize: 32)
        XCTAssertTrue(try AutoKernel.measuredSample(small) === small)
    }

    /// Where one candidate's layout is the smallest, the layer's choice is that family without
    /// a measurement (3-bit codes: LUT keeps 3 bits, dequant 4).
    func testTheSmallestLayoutAloneIsNotTimed() throws {
        guard Tiers.packed != nil else { throw XCTSkip("no packed layouts at the portable tier") }
        AutoKernel.reset()
        defer { AutoKernel.reset() }
        var rng = TestRandom(seed: 46)
        let m = try quantized(rng.normals(32 * 256), rows: 32, cols: 256, type: .integer(bits: 3), groupSize: 64)
        XCTAssertEqual(try AutoKernel.choice(m, oneRowAndBatch: 16), .lut)
        XCTAssertTrue(AutoKernel.table.withLock { $0.isEmpty }, "nothing measured")
    }
}
