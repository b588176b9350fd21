import XCTest
@testable import LowBit
@testable import LowBitCore
@testable import LowBitModel

/// The GGUF types the runner holds as grouped blocks (Q2_K, Q3_K, Q6_K, IQ4_NL, IQ4_XS, Q8_0), on
/// random blocks of each: the weights it decodes at the tier under test are the file's bit for
/// bit, it holds the file's bytes, and its products match the Float64 product of those weights.
final class GroupedBlockLinearTests: XCTestCase {
    static let types: [GGUFFile.TensorType] = [.q2_K, .q3_K, .q6_K, .iq4_nl, .iq4_xs, .q8_0]
    /// Byte offsets of each type's Float16 fields in a block: random bytes there could be NaN.
    static let halfFields: [GGUFFile.TensorType: [Int]] = [.q2_K: [80, 82], .q3_K: [108], .q6_K: [208],
                                                          .iq4_nl: [0], .iq4_xs: [0], .q8_0: [0]]

    /// Random blocks (every byte pattern is a valid block) with Float16 scales of a model's size.
    static func randomBlocks(_ type: GGUFFile.TensorType, count: Int, _ rng: inout TestRandom) -> [UInt8] {
        var out: [UInt8] = []
        for _ in 0..<count {
            var block = (0..<type.block.bytes).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            for offset in halfFields[type]! {
                let bits = Float16(rng.normals(1, scale: 0.01)[0]).bitPattern
                (block[offset], block[offset + 1]) = (UInt8(bits & 0xFF), UInt8(bits >> 8))
            }
            out += block
        }
        return out
    }

    func testValuesAreTheFilesAndProductsMatchFloat64() throws {
        var rng = TestRandom(seed: 61)
        for type in Self.types {
            // Rows of 32-element blocks are taken in bands of eight rows, the last band shorter.
            for (rows, cols) in [(1, 256), (7, 512), (33, 768)] + (type.block.elements == 32 ? [(5, 352)] : []) {
                let count = rows * cols / type.block.elements
                let blocks = Self.randomBlocks(type, count: count, &rng)
                var expected = [Float](repeating: .nan, count: rows * cols)
                blocks.withUnsafeBytes { GGMLBlocks.decode(type, $0.baseAddress!, blocks: count, into: &expected) }
                let layer = try blocks.withUnsafeBytes {
                    try GroupedBlockLinear(type: type, blocks: $0, rows: rows, cols: cols)
                }
                var row = [Float](repeating: .nan, count: cols)
                for r in 0..<rows {
                    for portable in [false, true] {
                        if portable { try portableOnly { layer.weights(row: r, into: &row) } }
                        else { layer.weights(row: r, into: &row) }
                        let differing = zip(row, expected[(r * cols)...]).filter { $0.bitPattern != $1.bitPattern }
                        XCTAssertEqual(differing.count, 0, "\(type) row \(r), portable \(portable): "
                                       + "\(differing.count) values differ from the file's")
                    }
                }
                XCTAssertEqual(layer.byteCount, blocks.count, "\(type)")
                try assertProducts(layer, weights: expected, &rng)
                // 16-bit activations (two int8 passes) and float ones: as close as float products.
                for bits in [16, 32] {
                    let precise = try blocks.withUnsafeBytes {
                        try GroupedBlockLinear(type: type, blocks: $0, rows: rows, cols: cols, activationBits: bits)
                    }
                    try assertMatchesFloat64(precise, weights: expected, activationRows: [1, 2, 5, 9], &rng)
                    try assertRowsOnTheirOwn(precise, &rng)
                }
                try assertRowsOnTheirOwn(layer, &rng)
                // From 8 activation rows on, products run on float panels of the same weights.
                try assertMatchesFloat64(layer, weights: expected, activationRows: [8, 9], &rng)
            }
        }
    }

    /// Up to 7 activation rows are rounded to int8 with a scale per block: the product is then
    /// the Float64 product with those rounded activations sa·qa (to float rounding), the same at
    /// every tier bit for bit (integer sums finished in one order), and within the rounding's
    /// error of the product with x itself.
    func assertProducts(_ layer: GroupedBlockLinear, weights w: [Float], _ rng: inout TestRandom) throws {
        let (rows, cols) = (layer.rows, layer.cols)
        let acts = Int8Activations(cols: cols, groupSize: layer.type.elements)
        let stride = Int8Activations.byteCount(cols: cols, groupSize: layer.type.elements)
        for n in [1, 2, 3, 4, 5, 7] {
            let x = rng.normals(n * cols)
            var rounded = [Float](repeating: 0, count: n * cols)
            var buffer = [UInt8](repeating: 0, count: stride)
            for i in 0..<n {
                buffer.withUnsafeMutableBytes { base in
                    x.withUnsafeBufferPointer {
                        acts.quantizeScalar($0.baseAddress! + i * cols, into: base.baseAddress!)
                    }
                    let q = acts.codes(base.baseAddress!), sa = acts.scales(base.baseAddress!)
                    for c in 0..<cols { rounded[i * cols + c] = sa[c / acts.groupSize] * Float(q[c]) }
                }
            }
            func run() throws -> [Float] {
                var y = [Float](repeating: .nan, count: n * rows)
                try x.withUnsafeBufferPointer { xp in
                    try y.withUnsafeMutableBufferPointer {
                        try layer.forward(xp.baseAddress!, n: n, into: $0.baseAddress!)
                    }
                }
                return y
            }
            let what = "\(layer.type) \(rows)x\(cols) n=\(n)"
            let y = try run()
            XCTAssertEqual(y, try portableOnly { try run() }, what)
            XCTAssertLessThan(normalizedError(y, float64Product(w, rows: rows, cols: cols, rounded, n: n)), 1e-10, what)
            // The rounding itself: 8 bits per block of activations cost ~5e-5 of their energy. A
            // product's error against x varies far more (a one-row reference can be near zero),
            // so its bound only catches a gross mistake.
            XCTAssertLessThan(normalizedError(rounded, x), 1e-4, what)
            XCTAssertLessThan(normalizedError(y, float64Product(w, rows: rows, cols: cols, x, n: n)), 1e-2, what)
        }
    }

    /// A thread's range of rows may start and end inside the bands of eight rows that IQ4_NL and
    /// Q8_0 are held in: the tier writes exactly the rows of its range, each as the portable
    /// kernel makes it (Q8_0's float kernel: to float rounding, its sums being in another order).
    func testRangesInsideBands() throws {
        var rng = TestRandom(seed: 63)
        for type in [GGUFFile.TensorType.iq4_nl, .q8_0] {
            try assertRangesInsideBands(type, &rng)
        }
    }

    func assertRangesInsideBands(_ type: GGUFFile.TensorType, _ rng: inout TestRandom) throws {
        let (rows, cols, n) = (21, 96, 3)
        let blocks = Self.randomBlocks(type, count: rows * cols / 32, &rng)
        let layer = try blocks.withUnsafeBytes {
            try GroupedBlockLinear(type: type, blocks: $0, rows: rows, cols: cols)
        }
        let acts = Int8Activations(cols: cols, groupSize: 32)
        let stride = Int8Activations.byteCount(cols: cols, groupSize: 32)
        var rounded = [UInt8](repeating: 0, count: n * stride)
        let x = rng.normals(n * cols)
        rounded.withUnsafeMutableBytes { base in
            x.withUnsafeBufferPointer {
                for i in 0..<n { acts.quantizeScalar($0.baseAddress! + i * cols, into: base.baseAddress! + i * stride) }
            }
        }
        for range in [3..<19, 0..<21, 9..<13, 16..<21, 20..<21] {
            func run() -> [Float] {
                var y = [Float](repeating: .nan, count: n * rows)
                rounded.withUnsafeMutableBytes { base in
                    y.withUnsafeMutableBufferPointer {
                        Tiers.active.groupedBlockRows(layer.matrix, acts: acts, actBase: base.baseAddress!,
                                                      actStride: stride, n: n, y: $0.baseAddress!, range: range)
                    }
                }
                return y
            }
            let y = run(), expected = try portableOnly { run() }
            for i in 0..<n {
                for r in 0..<rows {
                    let (value, reference) = (y[i * rows + r], expected[i * rows + r])
                    if range.contains(r) {
                        XCTAssertEqual(value.bitPattern, reference.bitPattern, "\(type) row \(r) of \(range), n \(i)")
                        XCTAssertFalse(value.isNaN, "row \(r) of \(range)")
                    } else {
                        XCTAssertTrue(value.isNaN, "row \(r) written outside \(range)")
                    }
                }
            }
            guard type == .q8_0 else { continue }
            func runFloat() -> [Float] {
                var y = [Float](repeating: .nan, count: n * rows)
                x.withUnsafeBufferPointer { xp in
                    y.withUnsafeMutableBufferPointer {
                        Tiers.active.q8_0Rows(layer.matrix, x: xp.baseAddress!, n: n, y: $0.baseAddress!, range: range)
                    }
                }
                return y
            }
            let floats = runFloat(), floatReference = try portableOnly { runFloat() }
            for k in 0..<(n * rows) {
                if range.contains(k % rows) {
                    XCTAssertEqual(floats[k], floatReference[k], accuracy: 1e-5 * max(1, abs(floatReference[k])),
                                   "q8_0 float row \(k % rows) of \(range)")
                } else {
                    XCTAssertTrue(floats[k].isNaN, "q8_0 float row \(k % rows) written outside \(range)")
                }
            }
        }
    }

    /// A product of several activation rows gives each row what a product of that row alone
    /// gives, bit for bit: up to 7 rows (the int8 kernels), any number on float activations and
    /// on Q8_0's float kernel (a prompt's logits through a tied Q8_0 output).
    func assertRowsOnTheirOwn(_ layer: GroupedBlockLinear, _ rng: inout TestRandom) throws {
        let floatRows = layer.activationBits == 32 || (layer.type == .q8_0 && layer.activationBits == 16)
        let (rows, cols, n) = (layer.rows, layer.cols, floatRows ? 11 : 7)
        let x = rng.normals(n * cols)
        var all = [Float](repeating: .nan, count: n * rows), alone = [Float](repeating: .nan, count: rows)
        try x.withUnsafeBufferPointer { xp in
            try layer.forward(xp.baseAddress!, n: n, into: &all)
            for i in 0..<n {
                try layer.forward(xp.baseAddress! + i * cols, n: 1, into: &alone)
                XCTAssertEqual(alone.map(\.bitPattern), all[(i * rows)..<((i + 1) * rows)].map(\.bitPattern),
                               "\(layer.type) \(rows)x\(cols), \(layer.activationBits)-bit activations, "
                               + "row \(i) of \(n)")
            }
        }
    }

    func testBadSizesAndOtherTypesAreRefused() throws {
        var rng = TestRandom(seed: 62)
        let blocks = Self.randomBlocks(.q6_K, count: 2, &rng)
        try blocks.withUnsafeBytes { raw in
            XCTAssertThrowsStatus(.badFormat, try GroupedBlockLinear(type: .q6_K, blocks: raw, rows: 1, cols: 256))
            XCTAssertThrowsStatus(.badFormat, try GroupedBlockLinear(type: .q6_K, blocks: raw, rows: 2, cols: 128))
            XCTAssertThrowsStatus(.badFormat, try GroupedBlockLinear(type: .q6_K, blocks: raw, rows: 0, cols: 512))
            XCTAssertThrowsStatus(.unsupported, try GroupedBlockLinear(type: .q4_0, blocks: raw, rows: 1, cols: 32))
            XCTAssertThrowsStatus(.unsupported, try GroupedBlockLinear(type: .q6_K, blocks: raw, rows: 2, cols: 256,
                                                                       activationBits: 4))
        }
        XCTAssertEqual(FileTensorHolding(.q6_K), .groupedBlocks(groupSize: 16))
        XCTAssertEqual(FileTensorHolding(.iq4_xs), .groupedBlocks(groupSize: 32))
        XCTAssertEqual(FileTensorHolding(.q8_0), .groupedBlocks(groupSize: 32))
        XCTAssertEqual(FileTensorHolding(.bf16), .float32)
    }
}
