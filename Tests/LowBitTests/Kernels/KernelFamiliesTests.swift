import XCTest
@testable import LowBit
@testable import LowBitCore

/// Every family but the reference: the ones with fast paths to check against it.
let fastFamilies = KernelFamily.families.filter { $0 != .reference }

/// The kernel-family registry: identities, lookups, what each family takes and packs.
final class KernelFamiliesTests: XCTestCase {
    func testIdentitiesAreUniqueAndRoundTrip() throws {
        let all = KernelFamily.allCases
        XCTAssertEqual(all.first, .auto)
        XCTAssertEqual(Set(all.map(\.code)).count, all.count, "codes are unique")
        XCTAssertEqual(Set(all.map(\.description)).count, all.count, "names are unique")
        // lowbit_kernel_name's enumeration relies on small, dense values.
        XCTAssertEqual(all.map(\.code).sorted(), (0..<Int32(all.count)).map { $0 })
        for family in all {
            XCTAssertEqual(try KernelFamily(code: family.code), family)
            XCTAssertEqual(try KernelFamily(name: family.description.uppercased()), family)
        }
        XCTAssertEqual(KernelFamily.families.map(\.description), ["lut", "bitserial", "dequant", "reference"])
        XCTAssertEqual(AutoKernel.candidates, [.lut, .dequant])
        XCTAssertThrowsStatus(.invalidArgument, try KernelFamily(code: Int32(all.count)))
        XCTAssertThrowsStatus(.invalidArgument, try KernelFamily(code: -1))
        XCTAssertThrowsStatus(.invalidArgument, try KernelFamily(name: "fast"))
    }

    /// A family runs at the precisions it lists and refuses the others; `auto` at a precision
    /// other than 8 runs the first family that takes it.
    func testActivationBitsFollowTheRegistry() throws {
        var rng = TestRandom(seed: 5)
        let m = try quantized(rng.normals(16 * 64), rows: 16, cols: 64, type: .integer(bits: 2), groupSize: 32)
        let x = rng.normals(64)
        for family in KernelFamily.families {
            for bits in [2, 4, 8, 16, 32] {
                let accepted = family.activationBits?.contains(bits) ?? true
                if accepted {
                    XCTAssertEqual(try m.product(x, n: 1, kernel: family, activationBits: bits).count, 16,
                                   "\(family) A=\(bits)")
                } else {
                    XCTAssertThrowsStatus(.unsupported, try m.product(x, n: 1, kernel: family, activationBits: bits))
                }
            }
        }
        XCTAssertEqual(KernelFamilies.family(forActivationBits: 2), .bitSerial)
        XCTAssertEqual(KernelFamilies.family(forActivationBits: 32), .dequant)
        XCTAssertNil(KernelFamilies.family(forActivationBits: 3))
        XCTAssertThrowsStatus(.unsupported, try m.product(x, n: 1, kernel: .auto, activationBits: 3))
        XCTAssertEqual(try m.product(x, n: 1, kernel: .auto, activationBits: 2),
                       try m.product(x, n: 1, kernel: .bitSerial, activationBits: 2))
    }

    /// Layouts are packed per family at a SIMD tier, counted in the matrix's bytes, released one
    /// by one; the portable tier packs none.
    func testLayoutsArePackedPerFamily() throws {
        var rng = TestRandom(seed: 6)
        let m = try quantized(rng.normals(40 * 128), rows: 40, cols: 128, type: .integer(bits: 3), groupSize: 64)
        try atTier(.portable) {
            for family in KernelFamily.families { try m.prepare(family) }
            XCTAssertEqual(m.packedLayouts, [])
            XCTAssertEqual(m.byteCount, m.canonicalByteCount)
        }
        try requireSIMDTier()
        try m.prepare(.auto)
        XCTAssertEqual(m.packedLayouts, Set(AutoKernel.candidates))
        try m.prepare(.bitSerial)
        try m.prepare(.reference)
        XCTAssertEqual(m.packedLayouts, [.lut, .dequant, .bitSerial])
        let packed = try m.lutLayout().byteCount + m.dequantLayout().byteCount + m.bitSerialLayout().byteCount
        XCTAssertEqual(m.byteCount, m.canonicalByteCount + packed)
        XCTAssertEqual(try m.kernelByteCount(.dequant), try m.dequantLayout().byteCount)
        XCTAssertEqual(try m.kernelByteCount(.reference), m.canonicalByteCount)
        m.releaseLayout(.dequant)
        XCTAssertEqual(m.packedLayouts, [.lut, .bitSerial])
    }
}
