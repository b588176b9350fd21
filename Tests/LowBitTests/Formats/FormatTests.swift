import Foundation
import XCTest
@testable import LowBit
@testable import LowBitCore

final class FormatTests: XCTestCase {
    /// Round-trip error ‖w − ŵ‖²/‖w‖² of Gaussian weights, per type, bounded by what unclipped
    /// round-to-nearest over each group's full range gives (1-bit with its least-squares levels
    /// ≈ 1 − 2/π ≈ 0.36; each further bit divides the error by 3 to 4).
    func testQuantizerRoundTripErrorPerBitWidth() throws {
        var rng = TestRandom(seed: 21)
        let rows = 64, cols = 512
        let w = rng.normals(rows * cols)
        let bounds: [(WeightType, Bool, Double)] = [
            (.integer(bits: 1), false, 0.40), (.integer(bits: 1), true, 0.40),
            (.integer(bits: 2), false, 0.145), (.integer(bits: 2), true, 0.165),
            (.integer(bits: 3), false, 0.045), (.integer(bits: 3), true, 0.05),
            (.integer(bits: 4), false, 0.011), (.integer(bits: 4), true, 0.012),
            (.ternary, true, 0.25),
        ]
        var previous = [Bool: Double]()
        for (type, symmetric, bound) in bounds {
            let m = try quantized(w, rows: rows, cols: cols, type: type, groupSize: 64, symmetric: symmetric)
            let err = normalizedError(m.dequantized(), w)
            XCTAssertLessThanOrEqual(err, bound, "\(type) symmetric=\(symmetric)")
            if case .integer = type {
                if let p = previous[symmetric] { XCTAssertLessThan(err, p / 2, "each extra bit must cut the error") }
                previous[symmetric] = err
            }
            // Codes stay in range; symmetric groups have m = −d·(2ᵇ − 1)/2.
            for r in stride(from: 0, to: rows, by: 7) {
                for c in stride(from: 0, to: cols, by: 13) {
                    XCTAssertLessThanOrEqual(m.code(row: r, col: c), type.maxCode)
                }
                if symmetric {
                    let d = m.scale(row: r, group: 0)
                    XCTAssertEqual(m.offset(row: r, group: 0),
                                   -d * Float(type.maxCode == 2 ? 1 : Float(type.maxCode) / 2), accuracy: 1e-6)
                }
            }
        }
    }

    /// A group's codes written plane byte by plane byte read back code by code, and as a group.
    func testGroupCodesReadBack() throws {
        var rng = TestRandom(seed: 12)
        for type in allTypes {
            let m = try QuantizedMatrix(rows: 3, cols: 128, groupSize: 64, type: type, symmetric: false)
            var q = [UInt8](repeating: 0, count: 64)
            for r in 0..<3 {
                for g in 0..<2 {
                    for k in 0..<64 { q[k] = UInt8(rng.next() % (1 << UInt64(type.storageBits))) }
                    q.withUnsafeBufferPointer { m.setGroupCodes($0.baseAddress!, row: r, group: g) }
                    for k in 0..<64 {
                        XCTAssertEqual(m.code(row: r, col: 64 * g + k), Int(q[k]), "\(type) [\(r), \(64 * g + k)]")
                    }
                    var back = [UInt8](repeating: 0xFF, count: 64)
                    back.withUnsafeMutableBufferPointer { m.groupCodes(row: r, group: g, into: $0.baseAddress!) }
                    XCTAssertEqual(back, q, "\(type) group (\(r), \(g))")
                }
            }
        }
    }

    /// Rows rounded a chunk at a time (a model's large tensors at load) give the matrix that
    /// all rows at once give, bit for bit, at every width and for mixed types; a weight out of
    /// range is named by its row in the matrix, not in its chunk.
    func testQuantizingInChunksEqualsAllAtOnce() throws {
        var rng = TestRandom(seed: 13)
        let rows = 23, cols = 96
        let w = rng.normals(rows * cols)
        for type in allTypes + [.mixed(bits: 3), .mixed(bits: 4)] {
            let whole = try quantized(w, rows: rows, cols: cols, type: type, groupSize: 32)
            for chunkRows in [1, 5, 23, 40] {
                var scratch = [Float](repeating: .nan, count: min(rows, chunkRows) * cols)
                var calls: [Range<Int>] = []
                let chunked = try Quantizer.quantize(rows: rows, cols: cols, type: type, groupSize: 32,
                                                     symmetric: false, chunkRows: chunkRows,
                                                     scratch: &scratch) { range, out in
                    calls.append(range)
                    for i in 0..<(range.count * cols) { out[i] = w[range.lowerBound * cols + i] }
                }
                XCTAssertEqual(calls.first?.lowerBound, 0)
                XCTAssertEqual(calls.last?.upperBound, rows)
                XCTAssert(calls.allSatisfy { $0.count <= chunkRows }, "\(calls)")
                XCTAssertEqual(chunked.dequantized(), whole.dequantized(), "\(type) chunks of \(chunkRows)")
                for r in 0..<rows { for c in 0..<cols {
                    XCTAssertEqual(chunked.code(row: r, col: c), whole.code(row: r, col: c), "\(type) [\(r), \(c)]")
                } }
            }
        }
        var bad = w
        bad[17 * cols + 3] = .infinity
        var scratch = [Float](repeating: 0, count: 5 * cols)
        do {
            _ = try Quantizer.quantize(rows: rows, cols: cols, type: .integer(bits: 4), groupSize: 32, symmetric: false,
                                       chunkRows: 5, scratch: &scratch) { range, out in
                for i in 0..<(range.count * cols) { out[i] = bad[range.lowerBound * cols + i] }
            }
            XCTFail("an infinite weight was taken")
        } catch let error as LowBitError {
            XCTAssertEqual(error.status, .invalidArgument)
            XCTAssert(error.message.contains("weight [17, 3]"), error.message)
        }
    }

    func testConstantAndZeroGroupsAreExact() throws {
        let w = [Float](repeating: 0.25, count: 64) + [Float](repeating: 0, count: 64)
        for type in allTypes {
            let m = try quantized(w, rows: 2, cols: 64, type: type, groupSize: 32)
            let back = m.dequantized()
            XCTAssertEqual(Array(back[64...]), [Float](repeating: 0, count: 64), "\(type)")
            if type != .ternary { XCTAssertEqual(Array(back[..<64]), [Float](repeating: 0.25, count: 64), "\(type)") }
        }
    }

    func testShapeAndOptionErrors() {
        let w = [Float](repeating: 1, count: 4096)
        XCTAssertThrowsStatus(.invalidArgument,
                              try quantized(w, rows: 1, cols: 4095, type: .integer(bits: 4), groupSize: 128))
        XCTAssertThrowsStatus(.unsupported, try quantized(w, rows: 1, cols: 96, type: .integer(bits: 4), groupSize: 48))
        XCTAssertThrowsStatus(.invalidArgument,
                              try quantized(w, rows: 0, cols: 64, type: .integer(bits: 4), groupSize: 64))
        XCTAssertThrowsStatus(.unsupported, try WeightType(code: 5))
        XCTAssertThrowsStatus(.unsupported, try WeightType(code: 0))
        XCTAssertThrowsStatus(.overflow, try validateShape(rows: Int.max / 2, cols: 1 << 20, groupSize: 32))
        var bad = w
        bad[7] = .infinity
        XCTAssertThrowsStatus(.invalidArgument,
                              try quantized(bad, rows: 2, cols: 64, type: .integer(bits: 2), groupSize: 32))
    }

    /// Packs codes the GPTQ way (as a checkpoint holds them) and checks the import reproduces
    /// w = scale·(q − z) exactly, for both zero conventions.
    func testGPTQImport() throws {
        var rng = TestRandom(seed: 22)
        for bits in [1, 2, 4] {
            let rows = 64, cols = 256, g = 128, pack = 32 / bits, groups = cols / g
            let q = (0..<(rows * cols)).map { _ in Int(rng.next() % UInt64(1 << bits)) }
            let z = (0..<(groups * rows)).map { _ in Int(rng.next() % UInt64(1 << bits)) }
            let scales = (0..<(groups * rows)).map { _ in Float(rng.uniform() * 0.1 + 0.01) }
            var qweight = [Int32](repeating: 0, count: cols / pack * rows)
            for r in 0..<rows { for c in 0..<cols {
                let word = Int32(bitPattern: UInt32(q[r * cols + c]) << UInt32((c % pack) * bits))
                qweight[(c / pack) * rows + r] |= word
            } }
            for zeros in [Importer.GPTQZeros.storedMinusOne, .exact] {
                let stored = z.map { zeros == .storedMinusOne ? max($0 - 1, 0) : $0 }
                var qzeros = [Int32](repeating: 0, count: groups * rows / pack)
                for gi in 0..<groups { for r in 0..<rows {
                    let word = Int32(bitPattern: UInt32(stored[gi * rows + r]) << UInt32((r % pack) * bits))
                    qzeros[gi * (rows / pack) + r / pack] |= word
                } }
                let m = try Importer.gptq(qweight: qweight, qzeros: qzeros, scales: scales, rows: rows, cols: cols,
                                          bits: bits, groupSize: g, zeros: zeros)
                let back = m.dequantized()
                for r in 0..<rows { for c in stride(from: 0, to: cols, by: 5) {
                    let gi = c / g
                    let zz = Float(stored[gi * rows + r]) + (zeros == .storedMinusOne ? 1 : 0)
                    XCTAssertEqual(back[r * cols + c], scales[gi * rows + r] * (Float(q[r * cols + c]) - zz),
                                   accuracy: 1e-6)
                } }
            }
        }
        XCTAssertThrowsStatus(.unsupported,
                              try Importer.gptq(qweight: [0], qzeros: [0], scales: [1], rows: 32, cols: 32,
                                                             bits: 3, groupSize: 32))
        XCTAssertThrowsStatus(.invalidArgument,
                              try Importer.gptq(qweight: [Int32](repeating: 0, count: 64), qzeros: [0],
                                                scales: [Float](repeating: 1, count: 12),
                                                                 rows: 12, cols: 32, bits: 4, groupSize: 32))
    }

    func testTernaryImport() throws {
        var rng = TestRandom(seed: 23)
        let rows = 5, cols = 64
        let t = (0..<(rows * cols)).map { _ in Int8(Int(rng.next() % 3) - 1) }
        for scaleCount in [1, rows, rows * 2] {
            let scales = (0..<scaleCount).map { Float($0 + 1) * 0.5 }
            let m = try Importer.ternary(values: t, scales: scales, scaleCount: scaleCount, rows: rows, cols: cols,
                                         groupSize: 32)
            let back = m.dequantized()
            for r in 0..<rows { for c in 0..<cols {
                let s = scaleCount == 1 ? scales[0] : scaleCount == rows ? scales[r] : scales[r * 2 + c / 32]
                XCTAssertEqual(back[r * cols + c], s * Float(t[r * cols + c]))
            } }
        }
        var bad = t
        bad[3] = 2
        XCTAssertThrowsStatus(.invalidArgument,
                              try Importer.ternary(values: bad, scales: [1], scaleCount: 1, rows: rows, cols: cols,
                                                   groupSize: 32))
        XCTAssertThrowsStatus(.sizeMismatch,
                              try Importer.ternary(values: t, scales: [1, 2, 3], scaleCount: 3, rows: rows, cols: cols,
                                                   groupSize: 32))
    }

    // MARK: files

    func sampleMatrix(_ type: WeightType = .integer(bits: 3)) throws -> QuantizedMatrix {
        var rng = TestRandom(seed: 24)
        return try quantized(rng.normals(9 * 128), rows: 9, cols: 128, type: type, groupSize: 64, symmetric: true)
    }

    func testFileRoundTripIsExactAndDeterministic() throws {
        for type in allTypes {
            let m = try sampleMatrix(type)
            let bytes = MatrixFile.encode(m)
            XCTAssertEqual(bytes, MatrixFile.encode(m), "writer must be deterministic")
            let back = try bytes.withUnsafeBytes { try MatrixFile.decode($0) }
            XCTAssertEqual(back.dequantized(), m.dequantized())
            XCTAssertEqual(back.type, type)
            XCTAssertEqual(back.symmetric, m.symmetric)
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("lowbit-test-\(type).lbm").path
            try MatrixFile.save(m, to: path)
            XCTAssertEqual(try MatrixFile.load(path).dequantized(), m.dequantized())
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    func decodeStatus(_ bytes: [UInt8]) -> LowBitStatus? {
        do {
            _ = try bytes.withUnsafeBytes { try MatrixFile.decode($0) }
            return nil
        } catch let e as LowBitError {
            return e.status
        } catch {
            return .internal
        }
    }

    /// Rewrites a header field and its checksum, so the field's own check is what fails.
    func withField(_ bytes: [UInt8], at offset: Int, _ value: UInt64, size: Int) -> [UInt8] {
        var b = bytes
        for i in 0..<size { b[offset + i] = UInt8((value >> (8 * UInt64(i))) & 0xFF) }
        let crc = b.withUnsafeBytes { CRC32.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<120])) }
        for i in 0..<4 { b[120 + i] = UInt8((crc >> (8 * UInt32(i))) & 0xFF) }
        return b
    }

    /// Whole files come back byte for byte: empty, exactly a read's size, and /proc files
    /// (whose st_size is 0), which are read to their end.
    func testFileReadReturnsEveryByte() throws {
        let path = NSTemporaryDirectory() + "lowbit-read-\(getpid())"
        defer { unlink(path) }
        var rng = TestRandom(seed: 91)
        for count in [0, 1, 4095, 4096, 70_001] {
            let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            try FileIO.writeAtomically(bytes, to: path)
            XCTAssertEqual(try FileIO.read(path), bytes, "\(count) bytes")
        }
        let status = String(decoding: try FileIO.read("/proc/self/status"), as: UTF8.self)
        XCTAssertTrue(status.contains("Name:") && status.contains("VmRSS"), status)
    }

    func testMalformedFilesAreRejected() throws {
        let good = MatrixFile.encode(try sampleMatrix())
        XCTAssertNil(decodeStatus(good))
        var magic = good; magic[0] = UInt8(ascii: "X")
        let cases: [(String, [UInt8])] = [
            ("bad magic", magic),
            ("version", withField(good, at: 8, 2, size: 4)),
            ("header size", withField(good, at: 12, 64, size: 4)),
            ("zero rows", withField(good, at: 16, 0, size: 8)),
            ("huge rows", withField(good, at: 16, 1 << 62, size: 8)),
            ("rows larger than data", withField(good, at: 16, 10, size: 8)),
            ("group size", withField(good, at: 32, 48, size: 4)),
            ("cols not multiple", withField(good, at: 24, 96, size: 8)),
            ("bit width", withField(good, at: 36, 5, size: 4)),
            ("flags", withField(good, at: 40, 6, size: 4)),
            ("section offset", withField(good, at: 48, 64, size: 8)),
            ("section length", withField(good, at: 56, 1 << 40, size: 8)),
            ("empty", []),
            ("trailing bytes", good + [0]),
        ]
        for (name, bytes) in cases {
            XCTAssertEqual(decodeStatus(bytes), .badFormat, name)
        }
        // Every truncation and every single-byte flip is caught.
        for cut in stride(from: 0, to: good.count, by: 7) {
            XCTAssertEqual(decodeStatus(Array(good[..<cut])), .badFormat, "cut at \(cut)")
        }
        for i in 0..<good.count {
            var flipped = good
            flipped[i] ^= 0x10
            XCTAssertEqual(decodeStatus(flipped), .badFormat, "flip at \(i)")
        }
        XCTAssertThrowsStatus(.io, try MatrixFile.load("/nonexistent/dir/x.lbm"))
        XCTAssertThrowsStatus(.io, try MatrixFile.save(try sampleMatrix(), to: "/nonexistent/dir/x.lbm"))
    }

    /// The sliced CRC-32 equals the byte-at-a-time definition at every length and alignment,
    /// and the standard check value ("123456789" → CBF43926).
    func testCRC32SlicingMatchesTheDefinition() {
        XCTAssertEqual(Array("123456789".utf8).withUnsafeBytes { CRC32.checksum($0) }, 0xCBF4_3926)
        var rng = SplitMix64(seed: 3)
        let bytes = (0..<300).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        bytes.withUnsafeBytes { raw in
            for start in 0..<9 {
                for end in stride(from: start, through: raw.count, by: 7) {
                    let part = UnsafeRawBufferPointer(rebasing: raw[start..<end])
                    XCTAssertEqual(CRC32.checksum(part, seed: 0x1234), CRC32.reference(part, seed: 0x1234))
                }
            }
        }
    }
}

/// Activation-aware scaling: the search keeps plain rounding among its candidates, prefers
/// scaling when a few channels carry large activations, and the scaled layer computes W·x.
final class ActivationAwareTests: XCTestCase {
    func testSearchPrefersScalingForSalientChannelsAndNeverLosesToPlainRounding() throws {
        var rng = TestRandom(seed: 61)
        let rows = 24, cols = 128
        let w = rng.normals(rows * cols)
        var x = rng.normals(64 * cols)
        for i in 0..<64 { for c in stride(from: 0, to: cols, by: 16) { x[i * cols + c] *= 30 } }  // salient channels
        let stats = x.withUnsafeBufferPointer {
            ActivationAwareScaling.Statistics($0.baseAddress!, samples: 64, cols: cols)
        }
        func weightedError(_ s: [Float]) throws -> Double {
            var scaled = w
            for r in 0..<rows { for c in 0..<cols { scaled[r * cols + c] *= s[c] } }
            let back = try quantized(scaled, rows: rows, cols: cols, type: .integer(bits: 3),
                                     groupSize: 64).dequantized()
            var e = 0.0
            for r in 0..<rows {
                for c in 0..<cols {
                    let d = Double(w[r * cols + c]
                        - back[r * cols + c] / s[c]); e += Double(stats.meanSquare[c]) * d * d
                }
            }
            return e
        }
        let (scales, alpha) = try w.withUnsafeBufferPointer {
            try ActivationAwareScaling.search($0.baseAddress!, rows: rows, cols: cols, type: .integer(bits: 3),
                                              groupSize: 64, statistics: stats)
        }
        XCTAssertEqual(scales.count, cols)
        XCTAssertGreaterThan(alpha, 0)
        XCTAssertGreaterThan(scales[0], scales[1], "salient channels are scaled up")
        XCTAssertLessThan(try weightedError(scales), try weightedError([Float](repeating: 1, count: cols)))
        // Equal channels: every candidate is s = 1, and the first (α = 0) is kept.
        let flat = ActivationAwareScaling.Statistics([Float](repeating: 1, count: 4 * cols), samples: 4, cols: cols)
        let (ones, zero) = try w.withUnsafeBufferPointer {
            try ActivationAwareScaling.search($0.baseAddress!, rows: rows, cols: cols, type: .integer(bits: 4),
                                              groupSize: 32, statistics: flat)
        }
        XCTAssertEqual(zero, 0)
        XCTAssertEqual(ones, [Float](repeating: 1, count: cols))
        XCTAssertThrowsStatus(.invalidArgument, try w.withUnsafeBufferPointer {
            try ActivationAwareScaling.search($0.baseAddress!, rows: rows, cols: cols, type: .integer(bits: 4),
                                              groupSize: 32,
                                              statistics: ActivationAwareScaling.Statistics([Float](repeating: 1,
                                                                                                    count: 64),
                                                                                            samples: 1, cols: 64))
        })
    }
}
