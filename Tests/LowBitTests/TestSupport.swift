import XCTest
@testable import LowBit

/// Deterministic data: SplitMix64 and Box-Muller normals.
struct TestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
    mutating func normal() -> Float {
        let u = max(uniform(), 1e-300), v = uniform()
        return Float((-2 * log(u)).squareRoot() * cos(2 * .pi * v))
    }
    mutating func normals(_ n: Int, scale: Float = 1) -> [Float] { (0..<n).map { _ in normal() * scale } }
}

/// Y = X·Wᵀ in Float64 for row-major W (rows × cols) and X (n × cols).
func float64Product(_ w: [Float], rows: Int, cols: Int, _ x: [Float], n: Int) -> [Double] {
    var y = [Double](repeating: 0, count: n * rows)
    for i in 0..<n {
        for r in 0..<rows {
            var s: Double = 0
            for c in 0..<cols { s += Double(w[r * cols + c]) * Double(x[i * cols + c]) }
            y[i * rows + r] = s
        }
    }
    return y
}

/// ‖y − ref‖² / ‖ref‖².
func normalizedError(_ y: [Float], _ ref: [Double]) -> Double {
    var num: Double = 0, den: Double = 0
    for i in 0..<ref.count {
        let e = Double(y[i]) - ref[i]
        num += e * e
        den += ref[i] * ref[i]
    }
    return den > 0 ? num / den : num
}

func normalizedError(_ y: [Float], _ ref: [Float]) -> Double { normalizedError(y, ref.map(Double.init)) }

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
