import XCTest
@testable import LowBit

/// Deterministic data for every test (the library's SplitMix64).
typealias TestRandom = SplitMix64

extension QuantizedMatrix {
    func product(_ x: [Float], n: Int, kernel: KernelFamily, activationBits: Int = 8) throws -> [Float] {
        var y = [Float](repeating: .nan, count: n * rows)
        try x.withUnsafeBufferPointer { xp in
            try y.withUnsafeMutableBufferPointer { yp in
                try multiply(xp.baseAddress!, n: n, into: yp.baseAddress!, kernel: kernel, activationBits: activationBits)
            }
        }
        return y
    }
}

func quantized(_ w: [Float], rows: Int, cols: Int, type: WeightType, groupSize: Int, symmetric: Bool = false) throws -> QuantizedMatrix {
    try w.withUnsafeBufferPointer {
        try Quantizer.quantize($0.baseAddress!, rows: rows, cols: cols, type: type, groupSize: groupSize, symmetric: symmetric)
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

/// Runs body with the portable kernels forced; the AVX2 ones are back afterwards, also on a throw.
func portableOnly<T>(_ body: () throws -> T) rethrows -> T {
    Runtime.setPortableOnly(true)
    defer { Runtime.setPortableOnly(false) }
    return try body()
}
