import XCTest
@testable import LowBit
@testable import LowBitCore

/// GPTQ's update as its paper writes it (optimal brain surgeon form), in Double: after column j
/// is rounded, every later weight of the row moves by −δⱼ·[H⁻¹]_jk / [H⁻¹]_jj, and column j then
/// leaves H⁻¹ (its Schur complement). Columns are taken in `order`; group parameters are the
/// static ones `ErrorFeedback` uses. Returns the codes, row-major.
func referenceErrorFeedbackCodes(_ w: [Float], rows: Int, cols: Int, inputs x: [Float], samples: Int,
                                 type: WeightType, groupSize: Int, dampening: Double, order: [Int]) -> [UInt8] {
    var h = [[Double]](repeating: [Double](repeating: 0, count: cols), count: cols)  // in rounding order
    for s in 0..<samples {
        for i in 0..<cols {
            for j in 0..<cols {
                h[i][j] += Double(x[s * cols + order[i]]) * Double(x[s * cols + order[j]]) / Double(samples)
            }
        }
    }
    let mean = (0..<cols).map { h[$0][$0] }.reduce(0, +) / Double(cols)
    for i in 0..<cols {
        if h[i][i] == 0 { h[i][i] = 1 }
        h[i][i] += mean > 0 ? dampening * mean : 1
    }
    // H⁻¹ by Gauss-Jordan elimination (H is positive definite: no pivoting needed).
    var inverse = (0..<cols).map { i in (0..<cols).map { j in i == j ? 1.0 : 0.0 } }
    for p in 0..<cols {
        let pivot = h[p][p]
        for j in 0..<cols { h[p][j] /= pivot; inverse[p][j] /= pivot }
        for i in 0..<cols where i != p {
            let f = h[i][p]
            for j in 0..<cols { h[i][j] -= f * h[p][j]; inverse[i][j] -= f * inverse[p][j] }
        }
    }
    // The update of step j, [H⁻¹]_jk / [H⁻¹]_jj for k > j, is the same for every row.
    var updates = [[Double]]()
    for j in 0..<cols {
        updates.append((0..<cols).map { k in k > j ? inverse[j][k] / inverse[j][j] : 0 })
        let column = (0..<cols).map { inverse[$0][j] }, pivot = inverse[j][j]
        for a in (j + 1)..<cols { for b in (j + 1)..<cols { inverse[a][b] -= column[a] * inverse[j][b] / pivot } }
    }
    let symmetric = type == .ternary
    let levels = type == .ternary ? 2 : (1 << type.storageBits) - 1
    var codes = [UInt8](repeating: 0, count: rows * cols)
    var scratch = [UInt8](repeating: 0, count: groupSize)
    for r in 0..<rows {
        let params = (0..<(cols / groupSize)).map { g in
            w.withUnsafeBufferPointer { wp in
                scratch.withUnsafeMutableBufferPointer {
                    Quantizer.quantizeGroup(UnsafeBufferPointer(rebasing: wp[(r * cols + g * groupSize)..<(r * cols
                        + (g + 1) * groupSize)]),
                                            type: type, symmetric: symmetric, codes: $0)
                }
            }
        }
        var row = (0..<cols).map { Double(w[r * cols + order[$0]]) }
        for j in 0..<cols {
            let (d, m) = params[order[j] / groupSize]
            let q = Quantizer.code(Float(row[j]), inverse: d != 0 ? 1 / d : 0, m: m, levels: levels)
            codes[r * cols + order[j]] = q
            let delta = row[j] - Double(d * Float(q) + m)
            for k in (j + 1)..<cols { row[k] -= delta * updates[j][k] }
        }
    }
    return codes
}

/// Inputs whose channels are strongly correlated (X = Z·A with A dense).
func correlatedInputs(_ rng: inout TestRandom, samples: Int, cols: Int) -> [Float] {
    let z = rng.normals(samples * cols), a = rng.normals(cols * cols, scale: 1 / Float(cols).squareRoot())
    var x = [Float](repeating: 0, count: samples * cols)
    for s in 0..<samples {
        for j in 0..<cols { for k in 0..<cols { x[s * cols + j] += z[s * cols + k] * a[k * cols + j] } }
    }
    return x
}

/// ‖(W − Q)·Xᵀ‖², the output error on the calibration inputs.
func outputError(_ w: [Float], _ q: [Float], rows: Int, cols: Int, inputs x: [Float], samples: Int) -> Double {
    var e = 0.0
    for r in 0..<rows {
        for s in 0..<samples {
            var y = 0.0
            for c in 0..<cols { y += Double(w[r * cols + c] - q[r * cols + c]) * Double(x[s * cols + c]) }
            e += y * y
        }
    }
    return e
}

final class ErrorFeedbackTests: XCTestCase {
    func errorFeedback(_ w: [Float], rows: Int, cols: Int, inputs x: [Float], samples: Int, type: WeightType,
                       groupSize: Int, dampening: Float = ErrorFeedback.defaultDampening) throws -> QuantizedMatrix {
        let c = try x.withUnsafeBufferPointer {
            try ErrorFeedback.coefficients(inputs: $0.baseAddress!, samples: samples, cols: cols, dampening: dampening)
        }
        return try w.withUnsafeBufferPointer {
            try ErrorFeedback.quantize($0.baseAddress!, rows: rows, cols: cols, type: type, groupSize: groupSize,
                                       symmetric: false, coefficients: c)
        }
    }

    func codes(_ m: QuantizedMatrix) -> [UInt8] {
        (0..<(m.rows * m.cols)).map { UInt8(m.code(row: $0 / m.cols, col: $0 % m.cols)) }
    }

    /// The Cholesky form gives GPTQ's codes, AVX2 and portable, on odd shapes and every type
    /// (a code may differ where Float and Double round a target on either side of a boundary),
    /// in order of falling input energy.
    func testMatchesTheUpdateInItsInverseForm() throws {
        var rng = TestRandom(seed: 71)
        for (rows, cols, groupSize) in [(13, 96, 32), (5, 64, 64), (3, 128, 128)] {
            let samples = 2 * cols
            var x = correlatedInputs(&rng, samples: samples, cols: cols), w = rng.normals(rows * cols)
            for s in 0..<samples { for c in 0..<cols { x[s * cols + c] *= Float(1 + (c * 7) % 5) } }  // energies spread
            let order = try x.withUnsafeBufferPointer { try ErrorFeedback.coefficients(inputs: $0.baseAddress!,
                                                                                       samples: samples,
                                                                                       cols: cols) }.order
            let energy = (0..<cols).map { c in
                (0..<samples).reduce(0.0) { $0 + Double(x[$1 * cols + c]) * Double(x[$1 * cols + c]) }
            }
            XCTAssertEqual(order.sorted(), Array(0..<cols))
            for p in 1..<cols { XCTAssertGreaterThanOrEqual(energy[order[p - 1]], energy[order[p]] * (1 - 1e-5)) }
            XCTAssertNotEqual(order, Array(0..<cols), "the spread energies reorder the columns")
            for type in allTypes {
                let expected = referenceErrorFeedbackCodes(w, rows: rows, cols: cols, inputs: x, samples: samples,
                                                           type: type, groupSize: groupSize, dampening: 0.01,
                                                           order: order)
                let plain = codes(try quantized(w, rows: rows, cols: cols, type: type, groupSize: groupSize,
                                                symmetric: type == .ternary))
                XCTAssertGreaterThan(zip(plain, expected).filter { $0 != $1 }.count, rows * cols / 10,
                                     "feedback changes codes")
                for portable in [false, true] {
                    let run = {
                        try self.errorFeedback(w, rows: rows, cols: cols, inputs: x, samples: samples, type: type,
                                               groupSize: groupSize)
                    }
                    let m = portable ? try portableOnly(run) : try run()
                    let got = codes(m)
                    let differing = zip(got, expected).filter { $0 != $1 }.count
                    XCTAssertLessThanOrEqual(differing, rows * cols / 200,
                                             "\(type) \(rows)×\(cols) g\(groupSize) portable \(portable)")
                }
            }
        }
    }

    /// Uncorrelated inputs leave nothing to feed back: the codes are plain rounding's.
    func testUncorrelatedInputsGivePlainRounding() throws {
        var rng = TestRandom(seed: 72)
        let rows = 7, cols = 96, samples = 2 * cols
        var x = [Float](repeating: 0, count: samples * cols)
        for s in 0..<samples { x[s * cols + s % cols] = Float(1 + s % 5) }  // one channel per row: H diagonal
        let w = rng.normals(rows * cols)
        for type in allTypes {
            let plain = try quantized(w, rows: rows, cols: cols, type: type, groupSize: 32, symmetric: type == .ternary)
            let fed = try errorFeedback(w, rows: rows, cols: cols, inputs: x, samples: samples, type: type,
                                        groupSize: 32)
            XCTAssertEqual(codes(fed), codes(plain), "\(type)")
            XCTAssertEqual(fed.dequantized(), plain.dequantized(), "\(type)")
        }
    }

    /// On correlated inputs the output error is well below plain rounding's at every width.
    func testLowersTheOutputErrorOnCorrelatedInputs() throws {
        var rng = TestRandom(seed: 73)
        let rows = 11, cols = 128, samples = 256
        let x = correlatedInputs(&rng, samples: samples, cols: cols), w = rng.normals(rows * cols)
        for type in allTypes {
            let plain = try quantized(w, rows: rows, cols: cols, type: type, groupSize: 64,
                                      symmetric: type == .ternary).dequantized()
            let fed = try errorFeedback(w, rows: rows, cols: cols, inputs: x, samples: samples, type: type,
                                        groupSize: 64).dequantized()
            let ratio = outputError(w, fed, rows: rows, cols: cols, inputs: x, samples: samples)
                / outputError(w, plain, rows: rows, cols: cols, inputs: x, samples: samples)
            XCTAssertLessThan(ratio, 0.8, "\(type)")
        }
    }

    /// Scaling the inputs by 1/s and the weights by s: rescaled coefficients are those of the
    /// scaled inputs (exactly so without dampening, which is taken before the scaling).
    func testRescaledCoefficientsAreThoseOfScaledInputs() throws {
        var rng = TestRandom(seed: 74)
        let cols = 24, samples = 96
        let x = correlatedInputs(&rng, samples: samples, cols: cols)
        let s = (0..<cols).map { Float(1 + ($0 % 4)) / 2 }
        var scaledX = x
        for i in 0..<samples { for c in 0..<cols { scaledX[i * cols + c] /= s[c] } }
        let rescaled = try x.withUnsafeBufferPointer {
            try ErrorFeedback.coefficients(inputs: $0.baseAddress!, samples: samples, cols: cols, dampening: 0)
        }
            .rescaled(by: s)
        let direct = try scaledX.withUnsafeBufferPointer {
            try ErrorFeedback.coefficients(inputs: $0.baseAddress!, samples: samples, cols: cols, dampening: 0,
                                           order: rescaled.order)
        }
        for (a, b) in zip(rescaled.c, direct.c) { XCTAssertEqual(a, b, accuracy: 1e-3 * max(1, abs(b))) }
        XCTAssertTrue(direct.c.contains { abs($0) > 0.05 }, "correlated inputs have coefficients to compare")
    }

    func testBadInputIsAnError() throws {
        var rng = TestRandom(seed: 75)
        let cols = 32, x = correlatedInputs(&rng, samples: 64, cols: cols), w = rng.normals(4 * cols)
        let c = try x.withUnsafeBufferPointer {
            try ErrorFeedback.coefficients(inputs: $0.baseAddress!, samples: 64, cols: cols)
        }
        try w.withUnsafeBufferPointer { wp in
            XCTAssertThrowsStatus(.unsupported,
                                  try ErrorFeedback.quantize(wp.baseAddress!, rows: 4, cols: cols,
                                                             type: .mixed(bits: 4), groupSize: 32,
                                                                           symmetric: false, coefficients: c))
            XCTAssertThrowsStatus(.invalidArgument,
                                  try ErrorFeedback.quantize(wp.baseAddress!, rows: 2, cols: 64,
                                                             type: .integer(bits: 4), groupSize: 32,
                                                                               symmetric: false, coefficients: c))
        }
        var bad = x
        bad[5] = .nan
        XCTAssertThrowsStatus(.invalidArgument,
                              try bad.withUnsafeBufferPointer { try ErrorFeedback.coefficients(inputs: $0.baseAddress!,
                                                                                               samples: 64,
                                                                                               cols: cols) })
        XCTAssertThrowsStatus(.invalidArgument,
                              try x.withUnsafeBufferPointer { try ErrorFeedback.coefficients(inputs: $0.baseAddress!,
                                                                                             samples: 0, cols: cols) })
        XCTAssertThrowsStatus(.invalidArgument, try c.rescaled(by: [Float](repeating: 1, count: 3)))
        XCTAssertThrowsStatus(.invalidArgument, try c.rescaled(by: [Float](repeating: 0, count: cols)))
        XCTAssertThrowsStatus(.invalidArgument, try x.withUnsafeBufferPointer {
            try ErrorFeedback.coefficients(inputs: $0.baseAddress!, samples: 64, cols: cols,
                                           order: [Int](repeating: 0, count: cols))
        })
    }
}
