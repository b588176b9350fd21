import Foundation
import XCTest
@testable import LowBit
@testable import LowBitCore
@testable import LowBitAVX2

/// Every family against the Float64 product of the dequantized weights.
final class KernelTests: XCTestCase {
    /// ≤ 5e-4 where tables or activations are rounded to int8 (LUT, bit-serial, dequant's
    /// default int8 path), ≤ 1e-6 on float paths (reference, dequant with float activations),
    /// ≤ 2e-6 for dequant's 16-bit activations (two int8 passes).
    func bound(_ k: KernelFamily) -> Double { k == .reference ? 1e-6 : 5e-4 }

    /// `mean` shifts weights and activations off zero: a single dot product of zero-mean data can
    /// land near 0, where any relative error is meaningless, so few-output cases use it.
    func checkFamilies(rows: Int, cols: Int, groupSize: Int, ns: [Int], families: [KernelFamily],
                       types: [WeightType] = allTypes, mean: Float = 0, seed: UInt64) throws {
        var rng = TestRandom(seed: seed)
        let w = rng.normals(rows * cols, scale: 0.05).map { $0 + mean * 0.05 }
        let maxN = ns.max()!
        let x = rng.normals(maxN * cols).map { $0 + mean }
        for type in types {
            for symmetric in [false, true] where !(type == .ternary && symmetric) {
                let m = try quantized(w, rows: rows, cols: cols, type: type, groupSize: groupSize, symmetric: symmetric)
                let wq = m.dequantized()
                for n in ns {
                    let xs = Array(x[0..<(n * cols)])
                    let ref = float64Product(wq, rows: rows, cols: cols, xs, n: n)
                    for k in families {
                        let y = try m.product(xs, n: n, kernel: k)
                        let err = normalizedError(y, ref)
                        XCTAssertLessThanOrEqual(err, bound(k == .auto ? try m.autoKernel(n: n) : k),
                                                 "\(k) \(type) sym=\(symmetric) \(rows)x\(cols) g\(groupSize) n=\(n)")
                    }
                    if families.contains(.dequant) {
                        let yf = try m.product(xs, n: n, kernel: .dequant, activationBits: 32)
                        XCTAssertLessThanOrEqual(normalizedError(yf, ref), 1e-6, "dequant float \(type) n=\(n)")
                        // Two int8 passes (x, then its rounding residual): ~250× closer than int8.
                        let y16 = try m.product(xs, n: n, kernel: .dequant, activationBits: 16)
                        let y8 = try m.product(xs, n: n, kernel: .dequant, activationBits: 8)
                        XCTAssertLessThanOrEqual(normalizedError(y16, ref), 2e-6, "dequant 16-bit \(type) n=\(n)")
                        XCTAssertLessThan(normalizedError(y16, ref), normalizedError(y8, ref) / 20,
                                          "dequant 16-bit \(type) n=\(n)")
                    }
                }
            }
        }
    }

    func testAllFamiliesSmallShapes() throws {
        try checkFamilies(rows: 7, cols: 96, groupSize: 32, ns: [1, 5, 64],
                          families: KernelFamily.allCases, seed: 1)
        try checkFamilies(rows: 1, cols: 64, groupSize: 64, ns: [1, 5], families: KernelFamily.families,
                          mean: 0.5, seed: 2)
        try checkFamilies(rows: 33, cols: 384, groupSize: 128, ns: [1, 5, 64], families: fastFamilies, seed: 3)
    }

    func testFastFamiliesTallMatrix() throws {
        try checkFamilies(rows: 4097, cols: 128, groupSize: 64, ns: [1, 5], families: fastFamilies,
                          types: [.integer(bits: 1), .integer(bits: 3), .ternary], seed: 4)
        try checkFamilies(rows: 4097, cols: 256, groupSize: 128, ns: [1], families: fastFamilies,
                          types: [.integer(bits: 2), .integer(bits: 4)], seed: 5)
    }

    func testResultsDoNotDependOnThreadCount() throws {
        var rng = TestRandom(seed: 9)
        let rows = 301, cols = 256
        let m = try quantized(rng.normals(rows * cols), rows: rows, cols: cols, type: .integer(bits: 3), groupSize: 64)
        let x = rng.normals(4 * cols)
        defer { try? Runtime.setThreads(0) }
        for k in [KernelFamily.lut, .bitSerial, .dequant] {
            try Runtime.setThreads(1)
            let one = try m.product(x, n: 4, kernel: k)
            try Runtime.setThreads(3)
            XCTAssertEqual(one, try m.product(x, n: 4, kernel: k), "\(k)")
        }
        // Enough work for `parallelChunks` to split 2-thread shares into chunks (1100 × 2048
        // at 2 bits: 69 LUT row blocks of 8 KiB in 18 quads, chunks of 1 quad, 9 per share;
        // dequant: chunks of 4 blocks, 34 per share), for N = 1, for
        // the activation tiles at N = 3, and for LUT tables of more than one table chunk
        // (130 rows with 2 MiB of L2: 1 MiB of tables).
        let (tallRows, tallCols) = (1100, 2048)
        let tall = try quantized(rng.normals(tallRows * tallCols), rows: tallRows, cols: tallCols,
                                 type: .integer(bits: 2), groupSize: 128)
        let tableTiles = LUTKernelAVX2.tilesPerChunk(tableStride: LUTTables.stride(cols: tallCols, groupSize: 128))
        // The portable tier has no table chunks: its rows split alone.
        let many = Tiers.packed == nil ? 7 : (tableTiles + 1) * LUTKernelAVX2.tileRows + 2
        let xs = rng.normals(many * tallCols)
        for (k, n) in [(KernelFamily.lut, 1), (.lut, 3), (.lut, many), (.dequant, 1), (.dequant, 3)] {
            try Runtime.setThreads(1)
            let one = try tall.product(Array(xs[0..<(n * tallCols)]), n: n, kernel: k)
            for threads in [2, 3] {
                try Runtime.setThreads(threads)
                XCTAssertEqual(one, try tall.product(Array(xs[0..<(n * tallCols)]), n: n, kernel: k),
                               "\(k) n=\(n) threads=\(threads)")
            }
        }
    }

    /// `parallelChunks` gives every index to exactly one call, for 1 to 3 threads and chunks
    /// that do and do not divide the shares; and a thread that finishes its share takes chunks
    /// of a share whose thread is held up.
    func testParallelChunksCoverEveryIndexOnceAndShareTheTail() {
        for threads in 1...3 {
            for (count, chunk) in [(0, 4), (5, 4), (200, 4), (203, 4), (1000, 1), (97, 3)] {
                let visits = UnsafeMutableBufferPointer<Int>.allocate(capacity: count + 1)
                visits.initialize(repeating: 0)
                defer { visits.deallocate() }
                parallelChunks(count, chunk: chunk, threads: threads) { range in for i in range { visits[i] += 1 } }
                XCTAssertEqual(Array(visits[0..<count]), [Int](repeating: 1, count: count),
                               "count \(count) chunk \(chunk) threads \(threads)")
                XCTAssertEqual(visits[count], 0, "count \(count) chunk \(chunk) threads \(threads): past the end")
            }
        }
        // From inside a job, the pool is busy: the caller runs every share itself.
        parallelRanges(2, threads: 2) { outer in
            guard outer.lowerBound == 0 else { return }
            let visits = UnsafeMutableBufferPointer<Int>.allocate(capacity: 300)
            visits.initialize(repeating: 0)
            defer { visits.deallocate() }
            parallelChunks(300, chunk: 4, threads: 2) { range in for i in range { visits[i] += 1 } }
            XCTAssertEqual(Array(visits), [Int](repeating: 1, count: 300), "inside a job")
        }
        // 2 shares of 16 chunks; the first share's chunks take 5 ms each, the second's nothing.
        // Stalls in earlier tests may have set the pool to run jobs alone for a while: not here.
        ThreadPool.shared.contention = ContentionGuard()
        let owner = UnsafeMutableBufferPointer<pthread_t>.allocate(capacity: 64)
        owner.initialize(repeating: pthread_t())
        defer { owner.deallocate() }
        parallelChunks(64, chunk: 2, threads: 2) { range in
            for i in range { owner[i] = pthread_self() }
            if range.lowerBound < 32 { usleep(5000) }
        }
        let stolen = (0..<32).filter { pthread_equal(owner[$0], owner[0]) == 0 }
        XCTAssertFalse(stolen.isEmpty, "the idle thread took none of the slow share's chunks")
        XCTAssertEqual(stolen, Array((stolen.first ?? 32)..<32), "chunks are taken from the back of a share")
    }

    func testConcurrentProductsOnOneMatrix() throws {
        var rng = TestRandom(seed: 10)
        let rows = 200, cols = 256
        let m = try quantized(rng.normals(rows * cols), rows: rows, cols: cols, type: .integer(bits: 4), groupSize: 128)
        let inputs = (0..<8).map { _ in rng.normals(2 * cols) }
        let kernels: [KernelFamily] = [.lut, .bitSerial, .dequant, .lut]
        let expected = try inputs.indices.map { try m.product(inputs[$0], n: 2, kernel: kernels[$0 % 4]) }
        let results = UnsafeMutableBufferPointer<[Float]>.allocate(capacity: 64)
        results.initialize(repeating: [])
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 64) { i in
            results[i] = (try? m.product(inputs[i % 8], n: 2, kernel: kernels[i % 8 % 4])) ?? []
        }
        for i in 0..<64 {
            XCTAssertTrue(results[i] == expected[i % 8], "call \(i) differs from the same product run alone")
        }
    }

    func testBadProductArguments() throws {
        let m = try quantized([Float](repeating: 0.5, count: 64), rows: 2, cols: 32, type: .integer(bits: 2),
                              groupSize: 32)
        XCTAssertThrowsStatus(.invalidArgument, try m.product([], n: 0, kernel: .lut))
        XCTAssertThrowsStatus(.unsupported,
                              try m.product([Float](repeating: 1, count: 32), n: 1, kernel: .bitSerial,
                                            activationBits: 3))
        XCTAssertThrowsStatus(.unsupported,
                              try m.product([Float](repeating: 1, count: 32), n: 1, kernel: .dequant,
                                            activationBits: 4))
        var x = [Float](repeating: 1, count: 32)
        x[5] = .nan
        XCTAssertThrowsStatus(.invalidArgument, try m.product(x, n: 1, kernel: .lut))
        XCTAssertThrowsStatus(.invalidArgument, try KernelFamily(code: 9))
    }
}
