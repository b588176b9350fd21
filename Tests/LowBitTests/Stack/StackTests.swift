import Foundation
import Synchronization
import XCTest
@testable import LowBit
@testable import LowBitCore

final class StackTests: XCTestCase {
    func tempPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("lowbit-\(name)-\(getpid())").path
    }

    func testTruncatedSVDRecoversALowRankMatrix() throws {
        var rng = TestRandom(seed: 51)
        let rows = 70, cols = 96
        let p = (0..<(rows * 2)).map { _ in abs(rng.normal()) }, q = (0..<(cols * 2)).map { _ in abs(rng.normal()) }
        var a = [Float](repeating: 0, count: rows * cols)
        for r in 0..<rows { for c in 0..<cols { a[r * cols + c] = p[2 * r] * q[2 * c] + p[2 * r + 1] * q[2 * c + 1] } }
        for k in [2, 4] {
            let (u, v) = try Decomposer.truncatedSVDOfAbs(a, rows: rows, cols: cols, rank: k, seed: 1)
            var err: Double = 0, norm: Double = 0
            for r in 0..<rows { for c in 0..<cols {
                var s: Float = 0
                for t in 0..<k { s += u[r * k + t] * v[c * k + t] }
                err += Double(a[r * cols + c] - s) * Double(a[r * cols + c] - s)
                norm += Double(a[r * cols + c] * a[r * cols + c])
            } }
            XCTAssertLessThan(err / norm, 1e-8, "rank \(k) of a rank-2 matrix")
        }
    }

    func testRankCapFollowsMatrixSize() {
        XCTAssertEqual(Decomposer.rank(rows: 4096, cols: 4096, factorShare: 0.125), 16)
        XCTAssertEqual(Decomposer.rank(rows: 576, cols: 192, factorShare: 0.25), 3)
        XCTAssertEqual(Decomposer.rank(rows: 64, cols: 64, factorShare: 0.01), 1)
    }

    func buildSample(blocks: Int = 4, sensitivity: [String: Double]? = nil,
                     maxLead: Int = 1) throws -> (String, [String: [Float]]) {
        var rng = TestRandom(seed: 52)
        let shapes = [("a", 40, 96), ("b", 33, 64)]
        var weights: [String: [Float]] = [:]
        for (name, r, c) in shapes { weights[name] = rng.normals(r * c) }
        let path = tempPath("stack\(blocks)")
        var options = StackBuilder.Options()
        options.blocks = blocks
        options.maxRank = 4
        options.sensitivity = sensitivity
        options.maxLead = maxLead
        let a = weights["a"]!, b = weights["b"]!
        try a.withUnsafeBufferPointer { ap in
            try b.withUnsafeBufferPointer { bp in
                _ = try StackBuilder.build([StackBuilder.Input(name: "a", weights: ap.baseAddress!, rows: 40, cols: 96),
                                            StackBuilder.Input(name: "b", weights: bp.baseAddress!, rows: 33,
                                                               cols: 64)],
                                           path: path, options: options)
            }
        }
        return (path, weights)
    }

    /// Products through the 1-bit LUT kernel match the dense rebuild for 1 … n resident blocks,
    /// and the rebuild's error against the original weights falls with every block.
    func testProductsMatchDenseRebuildAtEveryBudget() throws {
        let (path, weights) = try buildSample()
        defer { unlink(path) }
        let stack = try Stack(path: path, budget: Int.max)
        XCTAssertEqual(stack.residentBlockCount, 8)
        var rng = TestRandom(seed: 53)
        let x = rng.normals(3 * 96)
        // Shrink one block at a time: budgets at each prefix size.
        for count in stride(from: 8, through: 2, by: -1) {
            try stack.setBudget(stack.bytesWithPrefix(count))
            XCTAssertEqual(stack.residentBlockCount, count)
            XCTAssertLessThanOrEqual(stack.residentBytes, stack.bytesWithPrefix(count))
            let dense = try stack.denseWeights("a")
            let ref = float64Product(dense, rows: 40, cols: 96, x, n: 3)
            var y = [Float](repeating: 0, count: 3 * 40)
            try stack.multiply("a", x, n: 3, into: &y)
            XCTAssertLessThanOrEqual(normalizedError(y, ref), 5e-4, "\(count) blocks")
        }
        let full = try Stack(path: path, budget: Int.max)
        let errs = try (1...4).map { m -> Double in
            try full.setBudget(full.bytesWithPrefix(2 * m))
            return normalizedError(try full.denseWeights("a"), weights["a"]!)
        }
        for i in 1..<4 { XCTAssertLessThan(errs[i], errs[i - 1], "each block lowers the error: \(errs)") }
        XCTAssertLessThan(errs[3], 0.5)
    }

    /// A product adds the blocks in one order whatever the thread count and however many blocks
    /// share a pass (chunks): results are bit-identical; the portable path does the same sums.
    func testProductsDoNotDependOnThreadsOrChunks() throws {
        let (path, _) = try buildSample(blocks: 6)
        defer { unlink(path) }
        defer { try? Runtime.setThreads(0) }
        let stack = try Stack(path: path, budget: Int.max)
        var rng = TestRandom(seed: 57)
        for (name, rows, cols) in [("a", 40, 96), ("b", 33, 64)] {   // 3 row blocks each, the last one partial
            for n in [1, 3] {
                let x = rng.normals(n * cols)
                func product(threads: Int, chunkBytes: Int = 4 << 20) throws -> [Float] {
                    try Runtime.setThreads(threads)
                    var y = [Float](repeating: .nan, count: n * rows)
                    try stack.multiply(name, x, n: n, into: &y, chunkBytes: chunkBytes)
                    return y
                }
                let one = try product(threads: 1)
                XCTAssertEqual(try product(threads: 2), one, "\(name) n=\(n): 2 threads")
                XCTAssertEqual(try product(threads: 2, chunkBytes: 1), one, "\(name) n=\(n): a block per pass")
                XCTAssertEqual(try product(threads: 1, chunkBytes: 1), one,
                               "\(name) n=\(n): a block per pass, 1 thread")
                let portable = try portableOnly { try product(threads: 2) }
                XCTAssertLessThanOrEqual(normalizedError(portable, one), 1e-12, "\(name) n=\(n): portable")
            }
        }
    }

    /// From `rebuildMinimumRows` activation rows on, products rebuild the weights in Float32 slices:
    /// they match the Float64 product of the dense rebuild at two budgets, whatever the thread
    /// count and slice size (two rows per slice, and one slice), on AVX2 and portable paths
    /// (a 96-column tensor takes the AVX2 path's 64- and 32-column steps).
    func testManyRowProductsRebuildTheWeights() throws {
        let (path, _) = try buildSample(blocks: 6)
        defer { unlink(path) }
        defer { try? Runtime.setThreads(0) }
        let stack = try Stack(path: path, budget: Int.max)
        var rng = TestRandom(seed: 59)
        for count in [6, 2] {
            try stack.setBudget(stack.bytesWithPrefix(count))
            for (name, rows, cols) in [("a", 40, 96), ("b", 33, 64)] {
                let ref = try stack.denseWeights(name)
                for n in [Stack.rebuildMinimumRows, Stack.rebuildMinimumRows + 5] {
                    let x = rng.normals(n * cols)
                    let expected = float64Product(ref, rows: rows, cols: cols, x, n: n)
                    func product(threads: Int, sliceBytes: Int = 1 << 20) throws -> [Float] {
                        try Runtime.setThreads(threads)
                        var y = [Float](repeating: .nan, count: n * rows)
                        try stack.multiply(name, x, n: n, into: &y, chunkBytes: 4 << 20, sliceBytes: sliceBytes)
                        return y
                    }
                    let one = try product(threads: 1)
                    XCTAssertLessThanOrEqual(normalizedError(one, expected), 1e-6, "\(name) \(count) blocks n=\(n)")
                    XCTAssertEqual(try product(threads: 2), one, "\(name) n=\(n): 2 threads")
                    XCTAssertEqual(try product(threads: 2, sliceBytes: 1), one, "\(name) n=\(n): 2-row slices")
                    let portable = try portableOnly { try product(threads: 2, sliceBytes: 1) }
                    XCTAssertLessThanOrEqual(normalizedError(portable, expected), 1e-6, "\(name) n=\(n): portable")
                }
            }
        }
    }

    func testBudgetChangesReadOnlyTheDifference() throws {
        let (path, _) = try buildSample()
        defer { unlink(path) }
        let minimum = try Stack(path: path, budget: Int.max).minimumBytes
        let stack = try Stack(path: path, budget: minimum)
        XCTAssertEqual(stack.residentBlockCount, 2)
        let first = stack.bytesRead
        XCTAssertEqual(first, stack.index.blocks[2].offset, "blocks 0 and 1 with their padding")
        try stack.setBudget(stack.bytesWithPrefix(5))
        let added = stack.index.blocks[2..<5].map { $0.length }.reduce(0, +)
        let read = stack.bytesRead - first
        XCTAssertEqual(read, stack.index.blocks[5].offset - stack.index.blocks[2].offset, "only blocks 2..<5 are read")
        XCTAssertLessThan(read - added, 3 * 64, "beyond the blocks, only their alignment padding")
        let before = stack.bytesRead
        try stack.setBudget(stack.bytesWithPrefix(3))
        XCTAssertEqual(stack.bytesRead, before, "shrinking reads nothing")
        XCTAssertEqual(try stack.blocks("a").resident, 2)
        XCTAssertEqual(try stack.blocks("b").resident, 1)
        XCTAssertThrowsStatus(.invalidArgument, try stack.setBudget(stack.minimumBytes - 1))
        XCTAssertEqual(stack.residentBlockCount, 3, "a refused budget changes nothing")
        do { try stack.setBudget(10) } catch let e as LowBitError {
            XCTAssertTrue(e.message.contains("\(stack.minimumBytes)"))
        }
        XCTAssertThrowsStatus(.invalidArgument, try stack.blocks("nope"))
    }

    func testProductsStayConsistentWhileTheBudgetChanges() throws {
        let (path, _) = try buildSample()
        defer { unlink(path) }
        let stack = try Stack(path: path, budget: Int.max)
        var rng = TestRandom(seed: 54)
        let x = rng.normals(96)
        var valid: [[Float]] = []
        for count in 2...8 {
            try stack.setBudget(stack.bytesWithPrefix(count))
            var y = [Float](repeating: 0, count: 40)
            try stack.multiply("a", x, n: 1, into: &y)
            valid.append(y)
        }
        let stop = Atomic<Bool>(false)
        let changer = Thread {
            var c = 2
            while !stop.load(ordering: .relaxed) {
                try? stack.setBudget(stack.bytesWithPrefix(c))
                c = c == 8 ? 2 : c + 1
            }
        }
        changer.start()
        for _ in 0..<200 {
            var y = [Float](repeating: 0, count: 40)
            try stack.multiply("a", x, n: 1, into: &y)
            XCTAssertTrue(valid.contains(y), "a product saw a mix of two budgets")
        }
        stop.store(true, ordering: .relaxed)
        while !changer.isFinished { usleep(1000) }
    }

    func testSensitivityOrderKeepsLevelZeroFirst() throws {
        let (path, _) = try buildSample(sensitivity: ["a": 10, "b": 0.1], maxLead: 4)
        defer { unlink(path) }
        let stack = try Stack(path: path, budget: Int.max)
        let order = stack.index.blocks.map { ($0.tensor, $0.level) }
        XCTAssertEqual(order.prefix(2).map(\.1), [0, 0])
        // With "a" far more sensitive, its remaining blocks come before b's.
        XCTAssertEqual(order[2..<5].map(\.0), [0, 0, 0])
    }

    /// Measured loss increases become per-unit-gain sensitivities: noise (≤ 0) is floored, a tensor
    /// without a measurement gets the median, and a prefix of the blocks rebuilds densely.
    func testSensitivitiesFromLossIncreases() throws {
        let (path, _) = try buildSample()
        defer { unlink(path) }
        let stack = try Stack(path: path, budget: Int.max)
        XCTAssertEqual(try stack.denseWeights("a", blocks: 4), try stack.denseWeights("a"))
        XCTAssertNotEqual(try stack.denseWeights("a", blocks: 1), try stack.denseWeights("a"))
        var rng = TestRandom(seed: 57)
        let w = rng.normals(40 * 96)
        let matrices = try w.withUnsafeBufferPointer { wp in
            try ["a", "b", "c"].map {
                try Decomposer.decompose(wp.baseAddress!, rows: 40, cols: 96, blocks: 3, rank: 2, scaling: nil,
                                         name: $0) {
                    _ in
                }
            }
        }
        let s = StackBuilder.sensitivities(matrices, lossIncrease: ["a": 0.2, "b": -0.01], level: 2)
        XCTAssertEqual(s["a"]!, 0.2 / matrices[0].gains[1], accuracy: 1e-12)
        XCTAssertEqual(s["b"]!, 0.01 * 0.2 / matrices[1].gains[1], accuracy: 1e-12,
                       "floored at 1% of the mean increase")
        XCTAssertEqual(s["c"], [s["a"]!, s["b"]!].sorted()[1], "unmeasured: the median")
    }

    /// With a lead of 1 the order keeps level rounds (sorted by score inside each); a larger lead
    /// lets the more sensitive tensor run ahead.
    func testMaxLeadBoundsHowFarATensorRunsAhead() throws {
        var rng = TestRandom(seed: 58)
        let w = rng.normals(40 * 96)
        let matrices = try w.withUnsafeBufferPointer { wp in
            try ["a", "b"].map {
                try Decomposer.decompose(wp.baseAddress!, rows: 40, cols: 96, blocks: 4, rank: 2, scaling: nil,
                                         name: $0) {
                    _ in
                }
            }
        }
        let sensitivity = ["a": 1.0, "b": 1e6]
        let rounds = StackBuilder.order(matrices, sensitivity: sensitivity, maxLead: 1)
        XCTAssertEqual(rounds.map(\.1), [0, 0, 1, 1, 2, 2, 3, 3])
        XCTAssertEqual(rounds[2].0, 1, "inside a round, the higher score first")
        let greedy = StackBuilder.order(matrices, sensitivity: sensitivity, maxLead: 8)
        XCTAssertEqual(greedy.prefix(5).map(\.0), [0, 1, 1, 1, 1], "unbounded: b takes all its blocks first")
    }

    func testMalformedStackFilesAreRejected() throws {
        let (path, _) = try buildSample(blocks: 2)
        defer { unlink(path) }
        let good = try FileIO.read(path)
        let bad = tempPath("bad")
        defer { unlink(bad) }
        func status(_ bytes: [UInt8]) -> LowBitStatus? {
            do {
                try FileIO.writeAtomically(bytes, to: bad)
                let s = try Stack(path: bad, budget: Int.max)
                try s.verifyAllBlocks()
                return nil
            } catch let e as LowBitError { return e.status } catch { return .internal }
        }
        XCTAssertNil(status(good))
        for cut in stride(from: 0, to: good.count, by: 97) {
            XCTAssertEqual(status(Array(good[..<cut])), .badFormat, "cut at \(cut)")
        }
        XCTAssertEqual(status(good + [0]), .badFormat)
        for i in stride(from: 0, to: good.count, by: 13) {
            var flipped = good
            flipped[i] ^= 0x04
            XCTAssertEqual(status(flipped), .badFormat, "flip at \(i)")
        }
        XCTAssertThrowsStatus(.io, try Stack(path: "/nonexistent/x.lbs", budget: 1 << 30))
    }
}

final class SignMatrixTests: XCTestCase {
    /// Both ways of packing signs give the same layout, and products equal Σ ±x (within int8 tables);
    /// the AVX2 kernel (N = 1 and N > 1) gives the portable path's sums. Table-scale blocks of
    /// 32 to 256 columns, one or several per row.
    func testSignMatrixPackingAndProduct() throws {
        var rng = TestRandom(seed: 61)
        // 150 and 100 rows: 10 and 7 row blocks (a sign matrix's quads are single blocks).
        for (rows, cols, block) in [(1, 32, 32), (17, 96, 96), (40, 256, 256), (33, 576, 192), (5, 768, 256),
                                    (150, 96, 96), (100, 64, 64)] {
            XCTAssertEqual(try SignMatrix.groupSize(rows: rows, cols: cols), block, "\(rows)x\(cols)")
            let bits = (0..<(rows * cols / 8)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let positive = { (r: Int, c: Int) in (bits[r * cols / 8 + c / 8] >> UInt8(c % 8)) & 1 == 1 }
            let slow = try SignMatrix(rows: rows, cols: cols, positive: positive)
            let fast = try bits.withUnsafeBufferPointer {
                try SignMatrix(rows: rows, cols: cols, signBits: $0.baseAddress!)
            }
            XCTAssertEqual(Array(UnsafeBufferPointer(start: slow.layout.data.bytes(),
                                                     count: slow.layout.data.byteCount)),
                           Array(UnsafeBufferPointer(start: fast.layout.data.bytes(),
                                                     count: fast.layout.data.byteCount)))
            for r in 0..<rows { for c in 0..<cols { XCTAssertEqual(fast.isPositive(row: r, col: c), positive(r, c)) } }
            let x = rng.normals(3 * cols)
            var dense = [Float](repeating: 0, count: rows * cols)
            for r in 0..<rows { for c in 0..<cols { dense[r * cols + c] = positive(r, c) ? 1 : -1 } }
            let ref = float64Product(dense, rows: rows, cols: cols, x, n: 3)
            var y = [Float](repeating: 0, count: 3 * rows)
            try fast.multiply(x, n: 3, into: &y)
            XCTAssertLessThanOrEqual(normalizedError(y, ref), 5e-4)
            var portable = [Float](repeating: 0, count: 3 * rows)
            try portableOnly { try fast.multiply(x, n: 3, into: &portable) }
            XCTAssertLessThanOrEqual(normalizedError(portable, ref), 5e-4)
            // Same tables, same integer sums: the two paths differ only by float rounding.
            XCTAssertLessThanOrEqual(normalizedError(y, portable), 1e-12, "\(rows)x\(cols)")
            var one = [Float](repeating: 0, count: rows)
            try fast.multiply(x, n: 1, into: &one)
            XCTAssertLessThanOrEqual(normalizedError(one, portable[0..<rows]), 1e-12, "\(rows)x\(cols) n=1")
            // Any ranges of row blocks give the same rows as the whole product.
            let tables = UnsafeMutableRawPointer.allocate(byteCount: fast.tableBytes, alignment: 64)
            defer { tables.deallocate() }
            x.withUnsafeBufferPointer { fast.buildTables($0.baseAddress!, into: tables) }
            var pieces = [Float](repeating: .nan, count: rows)
            pieces.withUnsafeMutableBufferPointer { y in
                for range in [0..<min(3, fast.rowBlocks), min(3, fast.rowBlocks)..<min(6, fast.rowBlocks),
                              min(6, fast.rowBlocks)..<fast.rowBlocks] {
                    fast.multiply(tables: tables, n: 1, rowBlocks: range, into: y.baseAddress!)
                }
            }
            XCTAssertEqual(pieces, one, "\(rows)x\(cols): row blocks in pieces")
        }
        XCTAssertThrowsStatus(.invalidArgument, try SignMatrix(rows: 2, cols: 48) { _, _ in true })
    }
}
