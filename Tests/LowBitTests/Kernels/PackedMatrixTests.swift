import Foundation
import XCTest
@testable import LowBit
@testable import LowBitCore
@testable import LowBitAVX2

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
                            try x.withUnsafeBufferPointer { xp in
                                try y.withUnsafeMutableBufferPointer {
                                    try p.multiply(xp.baseAddress!, n: n, into: $0.baseAddress!, activationBits: bits)
                                }
                            }
                            XCTAssertEqual(y, try m.product(x, n: n, kernel: family, activationBits: bits),
                                           "\(type) \(family) A\(bits) \(rows)x\(cols)")
                        }
                    }
                    var row = [Float](repeating: .nan, count: cols)
                    for r in [0, rows / 2, rows - 1] {
                        row.withUnsafeMutableBufferPointer { p.weights(row: r, into: $0.baseAddress!) }
                        for c in 0..<cols {
                            XCTAssertEqual(row[c], m.weight(row: r, col: c), accuracy: 1e-6 * max(1,
                                abs(m.weight(row: r, col: c))), "\(type) \(family) [\(r), \(c)]")
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
        let tiny = try quantized(rng.normals(16 * 64, scale: 1e-7), rows: 16, cols: 64, type: .integer(bits: 4),
                                 groupSize: 64)
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

    /// `isHalf` and `halfBits` read the bits where the conversion would round: they must agree
    /// with it on every Float16 (normal, subnormal, zero, infinite), on the Floats between
    /// neighbouring Float16s and on random Floats of every scale.
    func testHalfExactnessFromTheBitsMatchesTheConversion() {
        for bits in 0...UInt16.max {
            let h = Float16(bitPattern: bits), x = Float(h)
            guard !h.isNaN else { XCTAssertFalse(GroupParameters.isHalf(x)); continue }
            XCTAssertTrue(GroupParameters.isHalf(x), "\(x)")
            XCTAssertEqual(GroupParameters.halfBits(x), bits, "\(x)")
            for next in [x.nextUp, x.nextDown] {
                XCTAssertEqual(GroupParameters.isHalf(next), Float(Float16(next)) == next, "\(next)")
            }
        }
        var rng = TestRandom(seed: 34)
        for _ in 0..<100_000 {
            let x = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
            XCTAssertEqual(GroupParameters.isHalf(x), Float(Float16(x)) == x, "\(x)")
        }
    }

    /// The memory roofline's read (`readOnce`, `readLayout`, `PackedMatrix.readWeights`) folds
    /// every 8-byte word of the buffers a product streams: each family's layout at a SIMD tier,
    /// the canonical codes and parameters where the portable tier has none.
    func testReadsFoldEveryByteAProductStreams() throws {
        var rng = TestRandom(seed: 32)
        func fold(_ buffers: [AlignedBuffer]) -> UInt64 {
            var x: UInt64 = 0
            for b in buffers {
                for i in 0..<(b.byteCount / 32 * 4) { x ^= b.pointer.load(fromByteOffset: 8 * i, as: UInt64.self) }
            }
            return x
        }
        for type in [WeightType.integer(bits: 2), .integer(bits: 4), .ternary] {
            let m = try quantized(rng.normals(40 * 256), rows: 40, cols: 256, type: type, groupSize: 64)
            for family in [KernelFamily.lut, .dequant, .bitSerial] {
                let expected: UInt64
                if let layout = try family.kernels?.pack(m) {
                    expected = fold(layout.buffers)
                    XCTAssertEqual(layout.readOnce(), expected, "\(type) \(family)")
                    if PackedMatrix.canPack(m, family: family) {
                        XCTAssertEqual(try PackedMatrix(m, family: family).readWeights(), expected)
                    }
                } else {
                    expected = fold([m.codes, m.scales, m.offsets])
                }
                XCTAssertNotEqual(expected, 0, "\(type) \(family): random codes fold to a nonzero word")
                XCTAssertEqual(try m.readLayout(family), expected, "\(type) \(family)")
            }
        }
    }
}
