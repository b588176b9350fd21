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

/// The quantizers' vector helpers against plain loops, at every tier, on odd lengths.
final class FloatVectorsTests: XCTestCase {
    func testHelpersMatchPlainLoops() throws {
        var rng = TestRandom(seed: 81)
        for count in [1, 7, 8, 9, 16, 31, 100] {
            let a = rng.normals(count), b = rng.normals(4 * count + 3)
            for tier in tiersUnderTest {
                try atTier(tier) { checkHelpers(a, b, count: count, tier: tier) }
            }
            for bad in [Float.nan, .infinity, -.infinity] {
                var c = a
                c[count - 1] = bad
                if count > 2 { c[count / 2] = bad }
                XCTAssertEqual(c.withUnsafeBufferPointer { FloatVectors.firstNonFinite($0.baseAddress!, count: count) },
                               count > 2 ? count / 2 : count - 1)
            }
        }
    }

    /// The memory-read baseline folds every 8-byte word once at every tier, whatever its loads.
    func testReadBytesFoldsAlikeAtEveryTier() throws {
        var rng = TestRandom(seed: 82)
        let buffer = try AlignedBuffer(byteCount: 8192)
        let words = buffer.pointer.assumingMemoryBound(to: UInt64.self)
        for i in 0..<1024 { words[i] = UInt64(bitPattern: Int64(rng.normals(1)[0] * 1e15)) }
        for bytes in [0, 32, 96, 256, 1056, 4320, 8192] {
            let expected = (0..<(bytes / 8)).reduce(UInt64(0)) { $0 ^ words[$1] }
            for tier in tiersUnderTest {
                let fold = try atTier(tier) { Tiers.active.readBytes(buffer.pointer, bytes: bytes) }
                XCTAssertEqual(fold, expected, "\(tier) \(bytes) bytes")
            }
        }
    }

    func checkHelpers(_ a: [Float], _ b: [Float], count: Int, tier: SIMDTier) {
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                let a = ap.baseAddress!, b = bp.baseAddress!
                func plainDot(_ p: UnsafePointer<Float>) -> Double {
                    (0..<count).reduce(0.0) { $0 + Double(a[$1]) * Double(p[$1]) }
                }
                let tolerance = 1e-4 * Double(count)
                XCTAssertEqual(Double(FloatVectors.dot(a, b, count: count)), plainDot(b), accuracy: tolerance,
                               "\(tier)")
                let four = FloatVectors.dot4(a, b, stride: count + 1, count: count)
                for (j, v) in [four.0, four.1, four.2, four.3].enumerated() {
                    XCTAssertEqual(Double(v), plainDot(b + j * (count + 1)), accuracy: tolerance,
                                   "\(tier) dot4 \(j) of \(count)")
                }
                for d in [Float(0.3), 0.9, 2.5, 0] {
                    var codes = [UInt8](repeating: 0, count: count)
                    codes.withUnsafeMutableBufferPointer { Quantizer.assign(ap, d: d, m: -d, levels: 2, codes: $0) }
                    let t = codes.map { Double($0) - 1 }
                    let (wt, tt) = FloatVectors.ternarySums(a, count: count, d: d)
                    XCTAssertEqual(Double(wt), zip(ap, t).reduce(0.0) { $0 + Double($1.0) * $1.1 }, accuracy: tolerance,
                                   "\(tier) d \(d)")
                    XCTAssertEqual(Double(tt), t.reduce(0.0) { $0 + $1 * $1 }, "\(tier) d \(d)")
                }
                let (lo, hi) = FloatVectors.range(a, count: count)
                XCTAssertEqual(lo, ap.min()!, "\(tier)")
                XCTAssertEqual(hi, ap.max()!, "\(tier)")
                XCTAssertNil(FloatVectors.firstNonFinite(a, count: count))
                var half = [Float16](repeating: 0, count: count), product = [Float](repeating: 0, count: count)
                for i in 0..<count { half[i] = Float16(b[i]) }
                HalfVectors.multiply(half, a, into: &product, count: count)
                for i in 0..<count { XCTAssertEqual(product[i], Float(half[i]) * a[i], "\(tier) half product \(i)") }
                HalfVectors.multiplyAdd(half, a, into: &product, count: count)
                for i in 0..<count {
                    XCTAssertEqual(product[i], Float(half[i]) * a[i] * 2, accuracy: 1e-6 * abs(product[i]),
                                   "\(tier) \(i)")
                }
            }
        }
    }
}

/// The cache sizes `lowbit info` and `lowbit bench` print, read from a sysfs-like tree.
final class CacheInfoTests: XCTestCase {
    /// The running machine's own sysfs files, which report a page as their size and hold a few
    /// bytes: read to their end, they give at least one data cache with its size.
    func testDataCachesOfThisMachine() throws {
        let dir = "/sys/devices/system/cpu/cpu0/cache"
        guard FileManager.default.fileExists(atPath: "\(dir)/index0/level") else {
            throw XCTSkip("no sysfs cache description here")
        }
        let caches = Runtime.dataCaches(sysfs: dir)
        XCTAssertFalse(caches.isEmpty)
        XCTAssertTrue(caches.allSatisfy { $0.bytes > 0 && $0.level >= 1 })
        XCTAssertNotEqual(Runtime.cacheSummary, "unknown")
    }

    func testDataCachesFromSysfs() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lowbit-cache-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let entries: [(String, String, String, String)] = [
            ("1", "Data", "48K", "0"), ("1", "Instruction", "32K", "0"),
            ("2", "Unified", "2048K", "0-1"), ("3", "Unified", "1M", "0-3,8,10-11"),
        ]
        for (i, e) in entries.enumerated() {
            let entry = "\(dir)/index\(i)"
            try FileManager.default.createDirectory(atPath: entry, withIntermediateDirectories: true)
            for (name, value) in [("level", e.0), ("type", e.1), ("size", e.2), ("shared_cpu_list", e.3)] {
                try (value + "\n").write(toFile: "\(entry)/\(name)", atomically: true, encoding: .utf8)
            }
        }
        XCTAssertEqual(Runtime.dataCaches(sysfs: dir), [
            Runtime.CacheLevel(level: 1, bytes: 48 << 10, sharedBy: 1),
            Runtime.CacheLevel(level: 2, bytes: 2 << 20, sharedBy: 2),
            Runtime.CacheLevel(level: 3, bytes: 1 << 20, sharedBy: 7),
        ])
        XCTAssertEqual(Runtime.dataCaches(sysfs: "/nonexistent/cache"), [])
        XCTAssertNil(Runtime.parseSize("12Q"))
        XCTAssertEqual(Runtime.cpuListCount("3-1"), 0)
    }
}
