import Foundation
import XCTest
@testable import LowBit
@testable import LowBitCore
@testable import LowBitAVX2

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
