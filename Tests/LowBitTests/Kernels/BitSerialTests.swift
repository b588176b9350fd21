import Foundation
import XCTest
@testable import LowBit
@testable import LowBitCore
@testable import LowBitAVX2

/// The bit-serial family: the popcount kernels against the bit-by-bit reference, their sums at
/// their bounds, the SIMD activation input.
final class BitSerialTests: XCTestCase {
    /// Word-wide popcount sums equal the bit-by-bit definition exactly, for every A; the tier's
    /// kernel's (nibble popcounts, int16 plane sums, lane-wise float terms) equal them to float
    /// rounding, on shapes with padded chunks and every group size, and for the 5-plane value
    /// codes of mixed types (int32 plane sums). AVX-512 takes chunks by pairs: 1, 3 and 9 chunks
    /// end on a lone one, 4 do not.
    func testMatchesBitReference() throws {
        var rng = TestRandom(seed: 7)
        for (rows, cols, g) in [(9, 256, 64), (5, 96, 32), (7, 640, 128), (3, 2112, 64), (4, 1024, 32)] {
            let w = rng.normals(rows * cols), x = rng.normals(3 * cols)
            for type in allTypes + [.mixed(bits: 3), .mixed(bits: 4)] {
                let q = try quantized(w, rows: rows, cols: cols, type: type, groupSize: g)
                let m = type.isMixed ? try q.valueCodes() : q  // what a mixed matrix's products run on
                for a in [2, 4, 8] {
                    var slow = [Float](repeating: 0, count: 3 * rows)
                    let bytes = 3 * BitSerialKernel.activationBytes(m, activationBits: a)
                    let ws = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
                    defer { ws.deallocate() }
                    try x.withUnsafeBufferPointer { xp in
                        try slow.withUnsafeMutableBufferPointer { yp in
                            try BitSerialKernel.multiply(m, x: xp.baseAddress!, n: 3, y: yp.baseAddress!,
                                                         activationBits: a,
                                                         workspace: ws, reference: true)
                        }
                    }
                    let portable = try portableOnly { try m.product(x, n: 3, kernel: .bitSerial, activationBits: a) }
                    XCTAssertEqual(portable, slow, "portable \(type) \(rows)x\(cols) g\(g) A=\(a)")
                    let fast = try m.product(x, n: 3, kernel: .bitSerial, activationBits: a)
                    XCTAssertLessThan(normalizedError(fast, slow), 1e-6,
                                      "\(Runtime.simdTier) \(type) \(rows)x\(cols) g\(g) A=\(a)")
                }
            }
        }
    }

    /// The tier kernel's int16 plane sums at their bounds: top codes everywhere (one 0 per group
    /// sets the range) against activations that all round to +127, then all to −127. An
    /// overflow would be off by 2^16 in some lane.
    func testExtremeSumsStayExact() throws {
        let rows = 5, cols = 512, g = 128
        for bits in [1, 2, 3, 4] {
            var w = [Float](repeating: 1, count: rows * cols)
            for i in Swift.stride(from: 0, to: w.count, by: g) { w[i] = 0 }
            let m = try quantized(w, rows: rows, cols: cols, type: .integer(bits: bits), groupSize: g)
            for value: Float in [1, -1] {
                // N = 1 and 2: the AVX-512 tier runs the AVX2 kernel for one row, its own for more.
                for (a, n) in [(2, 1), (4, 1), (8, 1), (2, 2), (4, 2), (8, 2)] {
                    let x = [Float](repeating: value, count: n * cols)
                    var slow = [Float](repeating: 0, count: n * rows)
                    let ws = UnsafeMutableRawPointer.allocate(byteCount: n * BitSerialKernel.activationBytes(m,
                        activationBits: a), alignment: 64)
                    defer { ws.deallocate() }
                    try x.withUnsafeBufferPointer { xp in
                        try slow.withUnsafeMutableBufferPointer { yp in
                            try BitSerialKernel.multiply(m, x: xp.baseAddress!, n: n, y: yp.baseAddress!,
                                                         activationBits: a,
                                                         workspace: ws, reference: true)
                        }
                    }
                    let fast = try m.product(x, n: n, kernel: .bitSerial, activationBits: a)
                    XCTAssertLessThan(normalizedError(fast, slow), 1e-6, "\(bits)-bit x = \(value) A=\(a) n=\(n)")
                }
            }
        }
    }

    /// The AVX2 planes (`vpmovmskb`, A = 2 and 4) are the bit-by-bit ones, and at A = 8 each
    /// column's integer sits where the masked sums look for it.
    func testAVX2ActivationInput() throws {
        try requireSIMDTier()
        var rng = TestRandom(seed: 12)
        for (cols, g) in [(96, 32), (576, 64)] {
            var x = rng.normals(cols)
            x[1] = 0; x[2] = -x[3]
            for a in [2, 4, 8] {
                let acts = BitSerialActivations(cols: cols, groupSize: g, bits: a)
                var fast = [UInt8](repeating: 0xAA, count: acts.byteCount), slow = [UInt8](repeating: 0x55,
                    count: acts.byteCount)
                x.withUnsafeBufferPointer { xp in
                    fast.withUnsafeMutableBytes { BitSerialKernelAVX2.prepare(acts, xp.baseAddress!,
                                                                              into: $0.baseAddress!) }
                    slow.withUnsafeMutableBytes { acts.prepare(xp.baseAddress!, into: $0.baseAddress!) }
                }
                let intBytes = Int8Activations.byteCount(cols: cols, groupSize: g)
                if a == 8 {
                    // Column k: chunk k / 256, byte (k % 256) / 8 of vector k % 8 (nibble h, bit j).
                    let order = fast.withUnsafeMutableBytes {
                        Array(UnsafeBufferPointer(start: acts.maskedSumOrder($0.baseAddress!),
                                                  count: 8 * acts.planeStride))
                    }
                    var expected = [Int8](repeating: 0, count: 8 * acts.planeStride)
                    fast.withUnsafeMutableBytes { f in
                        let codes = acts.ints.codes(f.baseAddress!)
                        for k in 0..<cols { expected[256 * (k / 256) + 32 * (k % 8) + (k % 256) / 8] = codes[k] }
                    }
                    XCTAssertEqual(order, expected, "cols \(cols) masked-sum order")
                } else {
                    XCTAssertEqual(Array(fast[intBytes..<(intBytes + a * acts.planeStride)]),
                                   Array(slow[intBytes..<(intBytes + a * acts.planeStride)]), "cols \(cols) A=\(a)")
                }
            }
        }
    }

    /// With the activations it rounded, bit-serial is exact up to float rounding (≤ 1e-6).
    func testExactForQuantizedActivations() throws {
        var rng = TestRandom(seed: 8)
        let rows = 13, cols = 192, g = 64
        let w = rng.normals(rows * cols), x = rng.normals(cols)
        for type in allTypes {
            let m = try quantized(w, rows: rows, cols: cols, type: type, groupSize: g)
            for a in [2, 4, 8] {
                // Round the activations exactly as the kernel does, then take the Float64 product.
                let limit = Float((1 << (a - 1)) - 1)
                var xq = [Float](repeating: 0, count: cols)
                for gi in 0..<(cols / g) {
                    let part = x[(gi * g)..<((gi + 1) * g)]
                    let scale = part.map(abs).max()! / limit
                    for k in 0..<g {
                        let q = (x[gi * g + k] * (1 / scale)).rounded(.toNearestOrEven)
                        xq[gi * g + k] = scale * min(max(q, -limit), limit)
                    }
                }
                let ref = float64Product(m.dequantized(), rows: rows, cols: cols, xq, n: 1)
                let y = try m.product(x, n: 1, kernel: .bitSerial, activationBits: a)
                XCTAssertLessThanOrEqual(normalizedError(y, ref), 1e-6, "\(type) A=\(a)")
            }
        }
    }
}
