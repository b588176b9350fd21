import Foundation
import XCTest
@testable import LowBit
@testable import LowBitCore
@testable import LowBitAVX2

/// The dequant family's SIMD kernels (int8 and float activations) and its unpacked portable path
/// against their references; the activation quantizer at every tier.
final class DequantTests: XCTestCase {
    /// The AVX2 activation quantizer writes the scalar one's bytes, scales and sums: random
    /// groups, a zero group, halves that round to even, NaNs, 2-, 4- and 8-bit activations.
    func testInt8ActivationsTierMatchesScalar() throws {
        try requireSIMDTier()
        var rng = TestRandom(seed: 14)
        for (cols, g) in [(96, 32), (576, 64), (384, 128)] {
            var x = rng.normals(cols).map { $0 * 3 }
            for k in 0..<g { x[k] = 0 }                                  // a zero group: scale 0
            x[g] = 127; for k in 1..<8 { x[g + k] = Float(k) + 0.5 }     // x/sa = k + 0.5: ties to even
            x[g + 8] = -2.5; x[g + 9] = -3.5
            x[2 * g] = .nan; x[3 * g - 4] = .nan; x[cols - 1] = .nan    // skipped by the max, coded 0
            for bits in [2, 4, 8] {
                let acts = Int8Activations(cols: cols, groupSize: g, bits: bits)
                let n = Int8Activations.byteCount(cols: cols, groupSize: g)
                var fast = [UInt8](repeating: 0xAA, count: n), slow = [UInt8](repeating: 0x55, count: n)
                x.withUnsafeBufferPointer { xp in
                    fast.withUnsafeMutableBytes { acts.quantize(xp.baseAddress!, into: $0.baseAddress!) }
                    slow.withUnsafeMutableBytes { acts.quantizeScalar(xp.baseAddress!, into: $0.baseAddress!) }
                }
                let used = cols + 8 * (cols / g)
                XCTAssertEqual(Array(fast[0..<used]), Array(slow[0..<used]), "cols \(cols) g\(g) A=\(bits)")
                if bits == 8 {
                    let codes = slow.withUnsafeMutableBytes {
                        Array(UnsafeBufferPointer(start: acts.codes($0.baseAddress!), count: cols))
                    }
                    XCTAssertEqual(Array(codes[(g + 1)..<(g + 8)]), [2, 2, 4, 4, 6, 6, 8], "halves round to even")
                    XCTAssertEqual(Array(codes[(g + 8)..<(g + 10)]), [-2, -4])
                }
            }
        }
    }

    /// The active tier's dequant kernels (AVX2; AVX-512 VNNI) do the
    /// portable int8 path's integer sums: every code width (2, 4 and the 8-bit value codes of a
    /// mixed type), every tile size, partial row blocks and register tiles, 1 and 2 threads.
    func testTierMatchesPortable() throws {
        try requireSIMDTier()
        var rng = TestRandom(seed: 11)
        defer { try? Runtime.setThreads(0) }
        // AVX2 at N = 1 takes a thread's row blocks by fours, then a pair, then one: 13, 50 and
        // 30 rows at 1 thread (the last block partial in a pair, alone and in a four) cover each.
        // AVX-512 at N = 1 takes 8 row blocks at a time (70 rows: 8, then 1); for N > 2 a tile
        // is 4 row blocks × 4 activation rows: 50 and 70 rows end in a tile of 3 and of 1 block,
        // N = 3, 5, 7 and 9 in a tile of 3, 1, 3 and 1 activation rows.
        for threads in [1, 2] {
            try Runtime.setThreads(threads)
            for (rows, cols, g) in [(13, 96, 32), (50, 256, 64), (9, 640, 128), (30, 128, 32), (70, 192, 64)] {
                let w = rng.normals(rows * cols), x = rng.normals(9 * cols)
                for type in allTypes + [.mixed(bits: 4)] {
                    let m = try quantized(w, rows: rows, cols: cols, type: type, groupSize: g)
                    for n in [1, 2, 3, 4, 5, 7, 9] {
                        let xs = Array(x[0..<(n * cols)])
                        let fast = try m.product(xs, n: n, kernel: .dequant)
                        let portable = try portableOnly { try m.product(xs, n: n, kernel: .dequant) }
                        let what = "\(type) \(rows)x\(cols) g\(g) n=\(n) threads \(threads)"
                        XCTAssertLessThan(normalizedError(fast, portable), 1e-10, what)
                        // Same int8 activations and integer sums as bit-serial with A = 8 (which adds
                        // them in another order: float rounding only).
                        guard !type.isMixed else { continue }
                        let bitSerial = try m.product(xs, n: n, kernel: .bitSerial)
                        XCTAssertLessThan(normalizedError(fast, bitSerial), 1e-6, what)
                    }
                }
            }
        }
    }

    /// The dequant family's int8 path without AVX2 (`unpackedInt8`: a group's codes unpacked
    /// once for every activation row) gives `portableInt8`'s results exactly: the same integer
    /// dot products and float terms in the same order. Every width and the 5-plane value codes of
    /// mixed 4-bit types, row ranges that start and end inside the matrix, 1 to 5 activation rows.
    func testUnpackedMatchesItsReference() throws {
        var rng = TestRandom(seed: 21)
        for (rows, cols, g) in [(13, 96, 32), (7, 320, 64), (5, 384, 128)] {
            let w = rng.normals(rows * cols), x = rng.normals(5 * cols)
            for type in allTypes + [.mixed(bits: 4)] {
                var m = try quantized(w, rows: rows, cols: cols, type: type, groupSize: g)
                if type.isMixed { m = try m.valueCodes() }
                let acts = Int8Activations(cols: cols, groupSize: g)
                let stride = Int8Activations.byteCount(cols: cols, groupSize: g)
                for n in [1, 2, 5] {
                    let buffer = try AlignedBuffer(byteCount: n * stride)
                    x.withUnsafeBufferPointer { xp in
                        for i in 0..<n { acts.quantize(xp.baseAddress! + i * cols, into: buffer.pointer + i * stride) }
                    }
                    let range = 1..<(rows - 1)
                    var reference = [Float](repeating: .nan, count: n * rows), unpacked = reference
                    reference.withUnsafeMutableBufferPointer { y in
                        for i in 0..<n {
                            DequantKernel.portableInt8(m, acts: acts, actBase: buffer.pointer + i * stride,
                                                       y: y.baseAddress! + i * rows, rows: range)
                        }
                    }
                    unpacked.withUnsafeMutableBufferPointer { y in
                        DequantKernel.unpackedInt8(m, acts: acts, actBase: buffer.pointer, actStride: stride, n: n,
                                                   y: y.baseAddress!, rows: range)
                    }
                    for i in 0..<n {
                        for r in 0..<rows {
                            let k = i * rows + r
                            if range.contains(r) {
                                XCTAssertEqual(unpacked[k], reference[k],
                                               "\(type) \(rows)x\(cols) g\(g) n=\(n) [\(i), \(r)]")
                            } else {
                                XCTAssertTrue(unpacked[k].isNaN, "row \(r) outside the range was written")
                            }
                        }
                    }
                }
            }
        }
    }

    /// The AVX2 float-activation dequant kernel against the portable float path and the Float64
    /// product, for every code width (2 bits: 1-, 2-bit and ternary; 4: 3- and 4-bit; 8: the
    /// value codes of mixed 4-bit types), tiles of 4, 2 and 1 activation rows (N = 7 takes all
    /// three), partial last row blocks, and 1 or 2 threads.
    func testFloatActivationsTierMatchesPortable() throws {
        try requireSIMDTier()
        var rng = TestRandom(seed: 14)
        defer { try? Runtime.setThreads(0) }
        for (rows, cols, g) in [(13, 96, 32), (50, 256, 64), (9, 640, 128)] {
            let w = rng.normals(rows * cols), x = rng.normals(7 * cols)
            for type in allTypes + [.mixed(bits: 4)] {
                let m = try quantized(w, rows: rows, cols: cols, type: type, groupSize: g)
                let wq = m.dequantized()
                for n in [1, 2, 3, 4, 7] {
                    let xs = Array(x[0..<(n * cols)])
                    let ref = float64Product(wq, rows: rows, cols: cols, xs, n: n)
                    let portable = try portableOnly { try m.product(xs, n: n, kernel: .dequant, activationBits: 32) }
                    for threads in [1, 2] {
                        try Runtime.setThreads(threads)
                        let fast = try m.product(xs, n: n, kernel: .dequant, activationBits: 32)
                        XCTAssertLessThan(normalizedError(fast, portable), 1e-10,
                                          "\(type) \(rows)x\(cols) g\(g) n=\(n) threads=\(threads)")
                        XCTAssertLessThan(normalizedError(fast, ref), 1e-10,
                                          "\(type) \(rows)x\(cols) g\(g) n=\(n) threads=\(threads)")
                    }
                }
            }
        }
    }
}
