import Foundation
import XCTest
@testable import LowBit
@testable import LowBitCore
@testable import LowBitAVX2

/// The LUT family's SIMD kernels against its portable reference: odd shapes, every width, the
/// int16 bounds of its sums, activation tiles across table chunks.
final class LUTTests: XCTestCase {
    /// The tier's LUT kernel (AVX2; at AVX-512, its own from 2 to 4 bits) does the portable
    /// path's integer sums: results agree to float rounding.
    func testTierMatchesPortable() throws {
        try requireSIMDTier()
        var rng = TestRandom(seed: 6)
        defer { try? Runtime.setThreads(0) }
        for (rows, cols, g) in [(17, 96, 32), (50, 256, 64), (33, 640, 128), (149, 128, 64), (97, 96, 32)] {
            let w = rng.normals(rows * cols), x = rng.normals(11 * cols)
            for type in allTypes + [.mixed(bits: 3), .mixed(bits: 4)] {  // value codes of 4 and 5 planes
                let m = try quantized(w, rows: rows, cols: cols, type: type, groupSize: g)
                // N = 1 takes a thread's row blocks by quads (`LUTLayout`): whole quads of 4 and
                // a last quad of 2 together, a last quad of 3 block by block (17, 50, 33, 149 and
                // 97 rows: 2, 4, 3, 4+4+2 and 4+3 blocks, split over 1 or 2 threads); N = 2 and 3
                // (at 1 bit every N) run each quad once per row that way; N = 6, 7, 11 mix the
                // 4-row activation tiles, pairs and single rows; N = 5 and 9 run a quad's tiles
                // and then its lone last row in the one-row kernel. (1-bit tiles run for sign
                // matrices only: `SignMatrixTests`, `StackTests`.)
                for n in [1, 2, 3, 5, 6, 7, 9, 11] {
                    let xs = Array(x[0..<(n * cols)])
                    let portable = try portableOnly { try m.product(xs, n: n, kernel: .lut) }
                    for threads in [1, 2] {
                        try Runtime.setThreads(threads)
                        let fast = try m.product(xs, n: n, kernel: .lut)
                        XCTAssertLessThan(normalizedError(fast, portable), 1e-10,
                                          "\(type) \(rows)x\(cols) g\(g) n=\(n) threads=\(threads)")
                    }
                }
            }
        }
        // Parameters that are not exact Float16s stay Float32 (`GroupParameters`), a kernel
        // specialization of their own: 90 rows, quads of 4 and 2.
        let tiny = rng.normals(90 * 128, scale: 1e-7), x = rng.normals(5 * 128)
        for type in allTypes + [.mixed(bits: 4)] {
            let m = try quantized(tiny, rows: 90, cols: 128, type: type, groupSize: 32)
            XCTAssertFalse(try m.lutLayout().halfParams, "\(type)")
            for n in [1, 5] {
                let xs = Array(x[0..<(n * 128)])
                let portable = try portableOnly { try m.product(xs, n: n, kernel: .lut) }
                XCTAssertLessThan(normalizedError(try m.product(xs, n: n, kernel: .lut), portable), 1e-10,
                                  "Float32 parameters \(type) n=\(n)")
            }
        }
    }

    /// The tier's LUT kernel's int16 group sums at their bound: top codes everywhere (one 0 per
    /// group sets the range) against activations whose every table lookup is +127, then −127;
    /// at 4 bits and G = 128 a row's sum per lane reaches 15·127·16 = 30480. An overflow would
    /// be off by 2^16 in some row. N = 1 (quads), N = 5 (tiles of 4, then a lone row through the
    /// quad kernel) and N = 7 (tiles of 4, a pair and a single row).
    func testExtremeSumsStayExact() throws {
        try requireSIMDTier()
        let rows = 70, cols = 256, g = 128
        for type in allTypes + [.mixed(bits: 3), .mixed(bits: 4)] {
            var w = [Float](repeating: 1, count: rows * cols)
            for i in Swift.stride(from: 0, to: w.count, by: g) { w[i] = 0 }
            let m = try quantized(w, rows: rows, cols: cols, type: type, groupSize: g)
            for value: Float in [1, -1] {
                for n in [1, 5, 7] {
                    let x = [Float](repeating: value, count: n * cols)
                    let portable = try portableOnly { try m.product(x, n: n, kernel: .lut) }
                    let fast = try m.product(x, n: n, kernel: .lut)
                    XCTAssertLessThan(normalizedError(fast, portable), 1e-10, "\(type) x = \(value) n=\(n)")
                }
            }
        }
    }

    /// N > 1 runs the activation tiles (at 3 bits) or rows one by one (at 1 bit) in chunks of
    /// `tableChunkBytes` of tables: a product spanning three chunks and a partial one gives the
    /// portable sums, for 1 and 2 threads.
    func testTierAcrossTableChunks() throws {
        try requireSIMDTier()
        var rng = TestRandom(seed: 12)
        defer { try? Runtime.setThreads(0) }
        let rows = 37, cols = 96, g = 32
        let tableStride = LUTTables.stride(cols: cols, groupSize: g)
        let tilesPerChunk = LUTKernelAVX2.tilesPerChunk(tableStride: tableStride)
        let n = 3 * tilesPerChunk * LUTKernelAVX2.tileRows + 5
        let x = rng.normals(n * cols)
        for type in [WeightType.integer(bits: 1), .integer(bits: 3)] {
            let m = try quantized(rng.normals(rows * cols), rows: rows, cols: cols, type: type, groupSize: g)
            let portable = try portableOnly { try m.product(x, n: n, kernel: .lut) }
            try Runtime.setThreads(1)
            let one = try m.product(x, n: n, kernel: .lut)
            XCTAssertLessThan(normalizedError(one, portable), 1e-10, "\(type) n=\(n)")
            try Runtime.setThreads(2)
            XCTAssertEqual(try m.product(x, n: n, kernel: .lut), one, "\(type) n=\(n): 2 threads")
        }
    }
}

final class LUTTableTests: XCTestCase {
    /// The AVX2 table builder writes the same bytes as the readable scalar one.
    func testTierTablesEqualScalarTables() throws {
        try requireSIMDTier()
        var rng = TestRandom(seed: 31)
        for (cols, g) in [(32, 32), (192, 64), (512, 128)] {
            var x = rng.normals(cols)
            x[3] = 0; x[7] = -x[6]  // exact zeros and cancellations
            let tables = LUTTables(cols: cols, groupSize: g)
            let size = LUTTables.byteCount(cols: cols, groupSize: g)
            var fast = [UInt8](repeating: 0, count: size), slow = [UInt8](repeating: 1, count: size)
            fast.withUnsafeMutableBytes { f in tables.build(x, into: f.baseAddress!) }
            slow.withUnsafeMutableBytes { s in tables.buildScalar(x, into: s.baseAddress!) }
            XCTAssertEqual(Array(fast[0..<(cols * 4)]), Array(slow[0..<(cols * 4)]), "tables cols=\(cols)")
            // Scales exactly; group sums to float rounding (different summation order).
            let groups = cols / g
            fast.withUnsafeBytes { f in slow.withUnsafeBytes { s in
                for i in 0..<groups {
                    XCTAssertEqual(f.load(fromByteOffset: cols * 4 + 4 * i, as: Float.self),
                                   s.load(fromByteOffset: cols * 4 + 4 * i, as: Float.self))
                    XCTAssertEqual(f.load(fromByteOffset: cols * 4 + 4 * (groups + i), as: Float.self),
                                   s.load(fromByteOffset: cols * 4 + 4 * (groups + i), as: Float.self), accuracy: 1e-4)
                }
            } }
            // Antisymmetry: entry 15 − i is the negation of entry i.
            var t = [Int8](repeating: 0, count: size)
            t.withUnsafeMutableBytes { tables.build(x, into: $0.baseAddress!) }
            for kg in 0..<(cols / 4) { for i in 0..<8 { XCTAssertEqual(t[16 * kg + 15 - i], -t[16 * kg + i]) } }
        }
    }
}
