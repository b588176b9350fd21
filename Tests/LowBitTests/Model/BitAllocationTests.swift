import XCTest
@testable import LowBit
@testable import LowBitModel

final class BitAllocationTests: XCTestCase {
    typealias Option = BitAllocation.Option

    static func option(_ bytes: Int, _ loss: Double) -> Option {
        Option(precision: TensorPrecision(bits: 2, groupSize: 32), bytes: bytes, predictedLoss: loss)
    }

    /// The least total loss over every combination of options within the budget.
    static func exhaustive(_ options: [[Option]], budget: Int) -> Double? {
        var best: Double? = nil
        func walk(_ t: Int, _ bytes: Int, _ loss: Double) {
            guard bytes <= budget else { return }
            guard t < options.count else { best = min(best ?? .infinity, loss); return }
            for o in options[t] { walk(t + 1, bytes + o.bytes, loss + o.predictedLoss) }
        }
        walk(0, 0, 0)
        return best
    }

    static func loss(_ options: [[Option]], _ chosen: [Int]) -> (bytes: Int, loss: Double) {
        zip(options, chosen).reduce((0, 0)) { ($0.0 + $1.0[$1.1].bytes, $0.1 + $1.0[$1.1].predictedLoss) }
    }

    /// With the same byte steps for every tensor and convex losses (each step saves less than the
    /// one before), greedy upgrades are optimal: the choice equals the exhaustive optimum at every
    /// budget from the smallest model to the largest.
    func testChoiceIsOptimalForEqualStepsAndConvexLosses() throws {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<20 {
            let options: [[Option]] = (0..<5).map { _ in
                var loss = 1 + Double(rng.next() % 1000) / 100, saving = loss * 0.6
                let steps = (0..<4).map { step in
                    defer { loss -= saving; saving *= 0.3 + Double(rng.next() % 50) / 100 }
                    return BitAllocationTests.option(100 + 50 * step, loss)
                }
                let turn = Int(rng.next() % 4)  // options in any order
                return Array(steps[turn...] + steps[..<turn])
            }
            for budget in stride(from: 500, through: 1100, by: 25) {
                let chosen = try XCTUnwrap(BitAllocation.choose(options, budget: budget))
                let (bytes, loss) = BitAllocationTests.loss(options, chosen)
                XCTAssertLessThanOrEqual(bytes, budget)
                let best = try XCTUnwrap(BitAllocationTests.exhaustive(options, budget: budget))
                XCTAssertEqual(loss, best, accuracy: 1e-9, "budget \(budget)")
            }
        }
    }

    /// Any options: the choice fits the budget, is nil only when the smallest options do not
    /// fit, and with room for everything takes each tensor's least loss.
    func testChoiceFitsTheBudgetForAnyOptions() throws {
        var rng = SplitMix64(seed: 11)
        for _ in 0..<50 {
            let options: [[Option]] = (0..<4).map { _ in
                (0..<1 + Int(rng.next() % 5)).map { _ in
                    BitAllocationTests.option(10 + Int(rng.next() % 90), Double(rng.next() % 1000) / 10)
                }
            }
            let smallest = options.reduce(0) { $0 + $1.map(\.bytes).min()! }
            XCTAssertNil(BitAllocation.choose(options, budget: smallest - 1))
            for budget in [smallest, smallest + 37, smallest + 120] {
                let chosen = try XCTUnwrap(BitAllocation.choose(options, budget: budget))
                let (bytes, loss) = BitAllocationTests.loss(options, chosen)
                XCTAssertLessThanOrEqual(bytes, budget)
                let best = try XCTUnwrap(BitAllocationTests.exhaustive(options, budget: budget))
                XCTAssertGreaterThanOrEqual(loss, best - 1e-9)
            }
            let all = try XCTUnwrap(BitAllocation.choose(options, budget: 1 << 30))
            let least = options.reduce(0.0) { $0 + $1.map(\.predictedLoss).min()! }
            XCTAssertEqual(BitAllocationTests.loss(options, all).loss, least, accuracy: 1e-9)
        }
    }

    /// Loss increases made by a product model a[layer] · b[kind] · error are fitted back to it.
    func testSensitivityFitRecoversAProductModel() {
        let a: [Double] = [0.5, 2.0, 1.0, 4.0], b: [Double] = [1.0, 0.25, 3.0]
        let error: [[Double]] = [[1, 4, 2], [3, 1, 5], [2, 2, 1], [5, 3, 4]]
        var byLayer = [Double](repeating: 0, count: 4), byKind = [Double](repeating: 0, count: 3)
        for l in 0..<4 {
            for k in 0..<3 {
                let increase: Double = a[l] * b[k] * error[l][k]
                byLayer[l] += increase
                byKind[k] += increase
            }
        }
        let fitted = BitAllocation.fitSensitivities(byLayer: byLayer, byKind: byKind, error: error)
        for l in 0..<4 {
            for k in 0..<3 { XCTAssertEqual(fitted[l][k], a[l] * b[k], accuracy: 1e-6 * a[l] * b[k]) }
        }
    }
}
