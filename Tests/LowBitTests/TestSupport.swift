import Foundation
import XCTest
@testable import LowBit
@testable import LowBitCore

/// The repository's Tests folder, where the fixtures and the fuzz corpus are.
let testsFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()

/// Deterministic data for every test (the library's SplitMix64).
typealias TestRandom = SplitMix64

extension QuantizedMatrix {
    func product(_ x: [Float], n: Int, kernel: KernelFamily, activationBits: Int = 8) throws -> [Float] {
        var y = [Float](repeating: .nan, count: n * rows)
        try x.withUnsafeBufferPointer { xp in
            try y.withUnsafeMutableBufferPointer { yp in
                try multiply(xp.baseAddress!, n: n, into: yp.baseAddress!, kernel: kernel,
                             activationBits: activationBits)
            }
        }
        return y
    }
}

func quantized(_ w: [Float], rows: Int, cols: Int, type: WeightType, groupSize: Int,
               symmetric: Bool = false) throws -> QuantizedMatrix {
    try w.withUnsafeBufferPointer {
        try Quantizer.quantize($0.baseAddress!, rows: rows, cols: cols, type: type, groupSize: groupSize,
                               symmetric: symmetric)
    }
}

let allTypes: [WeightType] = [.integer(bits: 1), .integer(bits: 2), .integer(bits: 3), .integer(bits: 4), .ternary]

func XCTAssertThrowsStatus(_ status: LowBitStatus, _ body: @autoclosure () throws -> Any,
                           file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try body()
        XCTFail("expected error \(status)", file: file, line: line)
    } catch let e as LowBitError {
        XCTAssertEqual(e.status, status, e.message, file: file, line: line)
        XCTAssertFalse(e.message.isEmpty, file: file, line: line)
    } catch {
        XCTFail("unexpected error \(error)", file: file, line: line)
    }
}

/// Runs body at `tier`; the tier the suite runs at (`LOWBIT_SIMD`, else the best) is back
/// afterwards, also on a throw.
func atTier<T>(_ tier: SIMDTier, _ body: () throws -> T) throws -> T {
    let previous = Runtime.simdTier
    try Runtime.setSIMDTier(tier)
    defer { try? Runtime.setSIMDTier(previous) }
    return try body()
}

/// The tiers this CPU runs, up to the one the suite runs at: tests of one kernel at every tier.
let tiersUnderTest = SIMDTier.supported.prefix { $0 != Runtime.simdTier } + [Runtime.simdTier]

/// Runs body with the portable kernels: the reference the suite's tier is compared with.
func portableOnly<T>(_ body: () throws -> T) throws -> T { try atTier(.portable, body) }

/// Skips a test that compares a SIMD tier with the portable one where the suite runs portable
/// (`LOWBIT_SIMD=portable`, or a CPU without AVX2): `scripts/test.sh` runs the suite once per tier.
func requireSIMDTier() throws {
    guard Runtime.simdTier != .portable else { throw XCTSkip("the suite runs at the portable tier") }
}
