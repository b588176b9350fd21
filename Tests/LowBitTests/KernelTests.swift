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
                        XCTAssertLessThanOrEqual(err, bound(k == .auto ? try m.autoKernel(n: n) : k), "\(k) \(type) sym=\(symmetric) \(rows)x\(cols) g\(groupSize) n=\(n)")
                    }
                    if families.contains(.dequant) {
                        let yf = try m.product(xs, n: n, kernel: .dequant, activationBits: 32)
                        XCTAssertLessThanOrEqual(normalizedError(yf, ref), 1e-6, "dequant float \(type) n=\(n)")
                        // Two int8 passes (x, then its rounding residual): ~250× closer than int8.
                        let y16 = try m.product(xs, n: n, kernel: .dequant, activationBits: 16)
                        let y8 = try m.product(xs, n: n, kernel: .dequant, activationBits: 8)
                        XCTAssertLessThanOrEqual(normalizedError(y16, ref), 2e-6, "dequant 16-bit \(type) n=\(n)")
                        XCTAssertLessThan(normalizedError(y16, ref), normalizedError(y8, ref) / 20, "dequant 16-bit \(type) n=\(n)")
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

    /// The AVX2 LUT kernel does the portable path's integer sums: results agree to float rounding.
    func testLUTAVX2MatchesPortable() throws {
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
                        XCTAssertLessThan(normalizedError(fast, portable), 1e-10, "\(type) \(rows)x\(cols) g\(g) n=\(n) threads=\(threads)")
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
                XCTAssertLessThan(normalizedError(try m.product(xs, n: n, kernel: .lut), portable), 1e-10, "Float32 parameters \(type) n=\(n)")
            }
        }
    }

    /// The AVX2 LUT kernel's int16 group sums at their bound: top codes everywhere (one 0 per
    /// group sets the range) against activations whose every table lookup is +127, then −127;
    /// at 4 bits and G = 128 a row's sum per lane reaches 15·127·16 = 30480. An overflow would
    /// be off by 2^16 in some row. N = 1 (quads), N = 5 (tiles of 4, then a lone row through the
    /// quad kernel) and N = 7 (tiles of 4, a pair and a single row).
    func testLUTExtremeSumsStayExact() throws {
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

    /// The AVX2 activation quantizer writes the scalar one's bytes, scales and sums: random
    /// groups, a zero group, halves that round to even, NaNs, 2-, 4- and 8-bit activations.
    func testInt8ActivationsAVX2MatchesScalar() throws {
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
                    let codes = slow.withUnsafeMutableBytes { Array(UnsafeBufferPointer(start: acts.codes($0.baseAddress!), count: cols)) }
                    XCTAssertEqual(Array(codes[(g + 1)..<(g + 8)]), [2, 2, 4, 4, 6, 6, 8], "halves round to even")
                    XCTAssertEqual(Array(codes[(g + 8)..<(g + 10)]), [-2, -4])
                }
            }
        }
    }

    /// N > 1 runs the activation tiles (at 3 bits) or rows one by one (at 1 bit) in chunks of
    /// `tableChunkBytes` of tables: a product spanning three chunks and a partial one gives the
    /// portable sums, for 1 and 2 threads.
    func testLUTAVX2AcrossTableChunks() throws {
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

    /// The AVX2 dequant kernel does the portable int8 path's integer sums, for every tile size.
    func testDequantAVX2MatchesPortable() throws {
        try requireSIMDTier()
        var rng = TestRandom(seed: 11)
        // N = 1 takes a thread's row blocks by fours, then a pair, then one: 13, 50 and 30 rows
        // at 1 thread (the last block partial in a pair, alone and in a four) cover each.
        try Runtime.setThreads(1)
        defer { try? Runtime.setThreads(0) }
        for (rows, cols, g) in [(13, 96, 32), (50, 256, 64), (9, 640, 128), (30, 128, 32)] {
            let w = rng.normals(rows * cols), x = rng.normals(7 * cols)
            for type in allTypes {
                let m = try quantized(w, rows: rows, cols: cols, type: type, groupSize: g)
                for n in [1, 2, 3, 4, 7] {
                    let xs = Array(x[0..<(n * cols)])
                    let fast = try m.product(xs, n: n, kernel: .dequant)
                    let portable = try portableOnly { try m.product(xs, n: n, kernel: .dequant) }
                    XCTAssertLessThan(normalizedError(fast, portable), 1e-10, "\(type) \(rows)x\(cols) g\(g) n=\(n)")
                    // Same int8 activations and integer sums as bit-serial with A = 8 (which adds them
                    // in another order: float rounding only).
                    XCTAssertLessThan(normalizedError(fast, try m.product(xs, n: n, kernel: .bitSerial)), 1e-6)
                }
            }
        }
    }

    /// The dequant family's int8 path without AVX2 (`unpackedInt8`: a group's codes unpacked
    /// once for every activation row) gives `portableInt8`'s results exactly: the same integer
    /// dot products and float terms in the same order. Every width and the 5-plane value codes of
    /// mixed 4-bit types, row ranges that start and end inside the matrix, 1 to 5 activation rows.
    func testDequantUnpackedMatchesItsReference() throws {
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
                            DequantKernel.portableInt8(m, acts: acts, actBase: buffer.pointer + i * stride, y: y.baseAddress! + i * rows, rows: range)
                        }
                    }
                    unpacked.withUnsafeMutableBufferPointer { y in
                        DequantKernel.unpackedInt8(m, acts: acts, actBase: buffer.pointer, actStride: stride, n: n, y: y.baseAddress!, rows: range)
                    }
                    for i in 0..<n {
                        for r in 0..<rows {
                            let k = i * rows + r
                            if range.contains(r) {
                                XCTAssertEqual(unpacked[k], reference[k], "\(type) \(rows)x\(cols) g\(g) n=\(n) [\(i), \(r)]")
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
    func testDequantFloatAVX2MatchesPortable() throws {
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
                        XCTAssertLessThan(normalizedError(fast, portable), 1e-10, "\(type) \(rows)x\(cols) g\(g) n=\(n) threads=\(threads)")
                        XCTAssertLessThan(normalizedError(fast, ref), 1e-10, "\(type) \(rows)x\(cols) g\(g) n=\(n) threads=\(threads)")
                    }
                }
            }
        }
    }

    /// Word-wide popcount sums equal the bit-by-bit definition exactly, for every A; the AVX2
    /// kernel's (nibble popcounts, int16 plane sums, lane-wise float terms) equal them to float
    /// rounding, on shapes with padded chunks and every group size, and for the 5-plane value
    /// codes of mixed types (int32 plane sums).
    func testBitSerialMatchesBitReference() throws {
        var rng = TestRandom(seed: 7)
        for (rows, cols, g) in [(9, 256, 64), (5, 96, 32), (7, 640, 128), (3, 2112, 64)] {
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
                            try BitSerialKernel.multiply(m, x: xp.baseAddress!, n: 3, y: yp.baseAddress!, activationBits: a,
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

    /// The AVX2 kernel's int16 plane sums at their bounds: top codes everywhere (one 0 per group
    /// sets the range) against activations that all round to +127, then all to −127. An
    /// overflow would be off by 2^16 in some lane.
    func testBitSerialExtremeSumsStayExact() throws {
        let rows = 5, cols = 512, g = 128
        for bits in [1, 2, 3, 4] {
            var w = [Float](repeating: 1, count: rows * cols)
            for i in Swift.stride(from: 0, to: w.count, by: g) { w[i] = 0 }
            let m = try quantized(w, rows: rows, cols: cols, type: .integer(bits: bits), groupSize: g)
            for value: Float in [1, -1] {
                for a in [2, 4, 8] {
                    let x = [Float](repeating: value, count: cols)
                    var slow = [Float](repeating: 0, count: rows)
                    let ws = UnsafeMutableRawPointer.allocate(byteCount: BitSerialKernel.activationBytes(m, activationBits: a), alignment: 64)
                    defer { ws.deallocate() }
                    try x.withUnsafeBufferPointer { xp in
                        try slow.withUnsafeMutableBufferPointer { yp in
                            try BitSerialKernel.multiply(m, x: xp.baseAddress!, n: 1, y: yp.baseAddress!, activationBits: a,
                                                         workspace: ws, reference: true)
                        }
                    }
                    let fast = try m.product(x, n: 1, kernel: .bitSerial, activationBits: a)
                    XCTAssertLessThan(normalizedError(fast, slow), 1e-6, "\(bits)-bit x = \(value) A=\(a)")
                }
            }
        }
    }

    /// The AVX2 planes (`vpmovmskb`, A = 2 and 4) are the bit-by-bit ones, and at A = 8 each
    /// column's integer sits where the masked sums look for it.
    func testBitSerialAVX2ActivationInput() throws {
        try requireSIMDTier()
        var rng = TestRandom(seed: 12)
        for (cols, g) in [(96, 32), (576, 64)] {
            var x = rng.normals(cols)
            x[1] = 0; x[2] = -x[3]
            for a in [2, 4, 8] {
                let acts = BitSerialActivations(cols: cols, groupSize: g, bits: a)
                var fast = [UInt8](repeating: 0xAA, count: acts.byteCount), slow = [UInt8](repeating: 0x55, count: acts.byteCount)
                x.withUnsafeBufferPointer { xp in
                    fast.withUnsafeMutableBytes { BitSerialKernelAVX2.prepare(acts, xp.baseAddress!, into: $0.baseAddress!) }
                    slow.withUnsafeMutableBytes { acts.prepare(xp.baseAddress!, into: $0.baseAddress!) }
                }
                let intBytes = Int8Activations.byteCount(cols: cols, groupSize: g)
                if a == 8 {
                    // Column k: chunk k / 256, byte (k % 256) / 8 of vector k % 8 (nibble h, bit j).
                    let order = fast.withUnsafeMutableBytes { Array(UnsafeBufferPointer(start: acts.maskedSumOrder($0.baseAddress!), count: 8 * acts.planeStride)) }
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
    func testBitSerialExactForQuantizedActivations() throws {
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
                    for k in 0..<g { xq[gi * g + k] = scale * min(max((x[gi * g + k] * (1 / scale)).rounded(.toNearestOrEven), -limit), limit) }
                }
                let ref = float64Product(m.dequantized(), rows: rows, cols: cols, xq, n: 1)
                let y = try m.product(x, n: 1, kernel: .bitSerial, activationBits: a)
                XCTAssertLessThanOrEqual(normalizedError(y, ref), 1e-6, "\(type) A=\(a)")
            }
        }
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
        let tall = try quantized(rng.normals(tallRows * tallCols), rows: tallRows, cols: tallCols, type: .integer(bits: 2), groupSize: 128)
        let tableTiles = LUTKernelAVX2.tilesPerChunk(tableStride: LUTTables.stride(cols: tallCols, groupSize: 128))
        // The portable tier has no table chunks: its rows split alone.
        let many = Tiers.packed == nil ? 7 : (tableTiles + 1) * LUTKernelAVX2.tileRows + 2
        let xs = rng.normals(many * tallCols)
        for (k, n) in [(KernelFamily.lut, 1), (.lut, 3), (.lut, many), (.dequant, 1), (.dequant, 3)] {
            try Runtime.setThreads(1)
            let one = try tall.product(Array(xs[0..<(n * tallCols)]), n: n, kernel: k)
            for threads in [2, 3] {
                try Runtime.setThreads(threads)
                XCTAssertEqual(one, try tall.product(Array(xs[0..<(n * tallCols)]), n: n, kernel: k), "\(k) n=\(n) threads=\(threads)")
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
                XCTAssertEqual(Array(visits[0..<count]), [Int](repeating: 1, count: count), "count \(count) chunk \(chunk) threads \(threads)")
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
        for i in 0..<64 { XCTAssertTrue(results[i] == expected[i % 8], "call \(i) differs from the same product run alone") }
    }

    func testBadProductArguments() throws {
        let m = try quantized([Float](repeating: 0.5, count: 64), rows: 2, cols: 32, type: .integer(bits: 2), groupSize: 32)
        XCTAssertThrowsStatus(.invalidArgument, try m.product([], n: 0, kernel: .lut))
        XCTAssertThrowsStatus(.unsupported, try m.product([Float](repeating: 1, count: 32), n: 1, kernel: .bitSerial, activationBits: 3))
        XCTAssertThrowsStatus(.unsupported, try m.product([Float](repeating: 1, count: 32), n: 1, kernel: .dequant, activationBits: 4))
        var x = [Float](repeating: 1, count: 32)
        x[5] = .nan
        XCTAssertThrowsStatus(.invalidArgument, try m.product(x, n: 1, kernel: .lut))
        XCTAssertThrowsStatus(.invalidArgument, try KernelFamily(code: 9))
    }
}

final class LUTTableTests: XCTestCase {
    /// The AVX2 table builder writes the same bytes as the readable scalar one.
    func testAVX2TablesEqualScalarTables() throws {
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
                    XCTAssertEqual(f.load(fromByteOffset: cols * 4 + 4 * i, as: Float.self), s.load(fromByteOffset: cols * 4 + 4 * i, as: Float.self))
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
        let key = AutoKernel.Key(rows: 10, cols: 64, groupSize: 32, typeCode: 3, nBucket: 1, threads: 1)
        AutoKernel.record(key, .dequant)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lowbit-calibration.txt").path
        try AutoKernel.save(to: path)
        AutoKernel.reset()
        try AutoKernel.load(from: path)
        XCTAssertEqual(AutoKernel.table.withLock { $0[key] }, .dequant)
        try "10 64 32 3 1 1 fastest\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsStatus(.badFormat, try AutoKernel.load(from: path))
        XCTAssertEqual(AutoKernel.table.withLock { $0[key] }, .dequant, "a bad file changes nothing")
        XCTAssertThrowsStatus(.io, try AutoKernel.load(from: "/nonexistent/calibration.txt"))
    }
}

/// A packed matrix (one family's layout, no canonical codes) gives the matrix's products bit for
/// bit and reads its weights back.
final class PackedMatrixTests: XCTestCase {
    func testProductsAndWeightsMatchTheMatrix() throws {
        guard Tiers.packed != nil else {
            var rng = TestRandom(seed: 31)
            let m = try quantized(rng.normals(8 * 64), rows: 8, cols: 64, type: .integer(bits: 2), groupSize: 32)
            XCTAssertFalse(PackedMatrix.canPack(m, family: .lut))
            XCTAssertThrowsStatus(.unsupported, try PackedMatrix(m, family: .lut))
            return
        }
        var rng = TestRandom(seed: 31)
        for (rows, cols, g) in [(7, 96, 32), (33, 384, 128), (50, 576, 64)] {
            let w = rng.normals(rows * cols, scale: 0.05)
            for type in allTypes + [.mixed(bits: 4)] {
                let m = try quantized(w, rows: rows, cols: cols, type: type, groupSize: g)
                for family in [KernelFamily.lut, .dequant] where PackedMatrix.canPack(m, family: family) {
                    let p = try PackedMatrix(m, family: family)
                    XCTAssertEqual(p.byteCount, try m.valueCodes().kernelByteCount(family))
                    for n in [1, 5] {
                        let x = rng.normals(n * cols)
                        for bits in family == .dequant ? [8, 16, 32] : [8] {
                            var y = [Float](repeating: .nan, count: n * rows)
                            try x.withUnsafeBufferPointer { xp in try y.withUnsafeMutableBufferPointer { try p.multiply(xp.baseAddress!, n: n, into: $0.baseAddress!, activationBits: bits) } }
                            XCTAssertEqual(y, try m.product(x, n: n, kernel: family, activationBits: bits), "\(type) \(family) A\(bits) \(rows)x\(cols)")
                        }
                    }
                    var row = [Float](repeating: .nan, count: cols)
                    for r in [0, rows / 2, rows - 1] {
                        row.withUnsafeMutableBufferPointer { p.weights(row: r, into: $0.baseAddress!) }
                        for c in 0..<cols {
                            XCTAssertEqual(row[c], m.weight(row: r, col: c), accuracy: 1e-6 * max(1, abs(m.weight(row: r, col: c))), "\(type) \(family) [\(r), \(c)]")
                        }
                    }
                }
            }
        }
        // The quantizer's (d, m) are exact Float16s, so layouts hold them in 2 bytes each.
        for type in allTypes {
            let q = try quantized(rng.normals(40 * 256, scale: 0.05), rows: 40, cols: 256, type: type, groupSize: 64)
            XCTAssertTrue(q.withCanonicalCodes { GroupParameters.halfExact($0) }, "\(type)")
            XCTAssertTrue(try q.lutLayout().halfParams)
            XCTAssertEqual(try q.dequantLayout().params.byteCount, 5 * 4 * 16 * 2)
            XCTAssertEqual(try q.lutLayout().paramByteCount, 3 * 4 * 32 * 2)
        }
        // Tiny scales stay Float32 rather than lose precision as Float16 subnormals.
        let tiny = try quantized(rng.normals(16 * 64, scale: 1e-7), rows: 16, cols: 64, type: .integer(bits: 4), groupSize: 64)
        XCTAssertFalse(tiny.withCanonicalCodes { GroupParameters.halfExact($0) })
        XCTAssertFalse(try tiny.lutLayout().halfParams)
        let m = try quantized(rng.normals(8 * 64), rows: 8, cols: 64, type: .mixed(bits: 4), groupSize: 32)
        XCTAssertTrue(PackedMatrix.canPack(m, family: .lut))
        XCTAssertThrowsStatus(.unsupported, try PackedMatrix(m, family: .bitSerial))
        let p = try PackedMatrix(m, family: .dequant)
        let x = [Float](repeating: 1, count: 64), bad = [Float](repeating: .infinity, count: 64)
        var y = [Float](repeating: 0, count: 8)
        XCTAssertThrowsStatus(.unsupported, try p.multiply(x, n: 1, into: &y, activationBits: 4))
        XCTAssertThrowsStatus(.invalidArgument, try p.multiply(bad, n: 1, into: &y))
        XCTAssertThrowsStatus(.invalidArgument, try p.multiply(x, n: 0, into: &y))
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
