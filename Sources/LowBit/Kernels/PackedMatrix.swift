/// One kernel family's packed weights and nothing else: what a program that only multiplies
/// needs to hold. Made from a `QuantizedMatrix`, which can then be released (its canonical
/// codes, and any other family's layout, go with it). Runs the SIMD tier's LUT or dequant kernel on the
/// same layout the matrix would use, so products are the matrix's, bit for bit. No saving and
/// no other family: keep the `QuantizedMatrix` for those.
public final class PackedMatrix: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    public let groupSize: Int
    public let family: KernelFamily
    private let lut: LUTLayout?
    private let dequant: DequantLayout?

    /// Bytes held: the layout's codes and group parameters.
    public var byteCount: Int { lut?.byteCount ?? dequant?.byteCount ?? 0 }

    /// Whether `init(matrix, family:)` can pack it here.
    public static func canPack(_ matrix: QuantizedMatrix, family: KernelFamily) -> Bool {
        Tiers.packed != nil && (family == .dequant || family == .lut)
    }

    /// Packs `matrix` (its value codes, for a mixed matrix) for `family`, lut or dequant. Throws
    /// `.unsupported` where that family has no packed layout running here: the portable tier, other
    /// families.
    public init(_ matrix: QuantizedMatrix, family: KernelFamily) throws {
        let m = try matrix.valueCodes()
        (rows, cols, groupSize, self.family) = (m.rows, m.cols, m.groupSize, family)
        var lut: LUTLayout? = nil, dequant: DequantLayout? = nil
        if Tiers.packed != nil {
            if family == .lut { lut = try m.lutLayout() }
            if family == .dequant { dequant = try m.dequantLayout() }
        }
        guard lut != nil || dequant != nil else {
            throw LowBitError(.unsupported, "no packed \(family) layout for \(matrix.type) at SIMD tier \(Runtime.simdTier): "
                              + "packed matrices run the lut or dequant kernels of the avx2 and avx512 tiers")
        }
        (self.lut, self.dequant) = (lut, dequant)
    }

    /// Y = X·Wᵀ as `QuantizedMatrix.multiply` with this family: x is n × cols, y is n × rows.
    /// `activationBits`: dequant takes 8, 16 (two int8 passes) or 32 (float); lut ignores it.
    public func multiply(_ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>, activationBits: Int = 8) throws {
        if dequant != nil, ![8, 16, 32].contains(activationBits) {
            throw LowBitError(.unsupported, "unsupported activation bits \(activationBits) for a packed dequant matrix: use 8, 16 or 32")
        }
        try checkActivations(x, n: n, rows: rows, cols: cols)
        // Packed at a SIMD tier, it runs at the best one while the portable tier is forced.
        guard let tier = Tiers.packed ?? Tiers.bestPacked else {
            throw LowBitError(.unsupported, "no SIMD tier runs on this CPU for a packed matrix")
        }
        let (rows, cols, groupSize) = (self.rows, self.cols, self.groupSize)
        if let lut { return try tier.lutMultiply(lut, rows: rows, cols: cols, groupSize: groupSize, x: x, n: n, y: y) }
        if let dequant {
            switch activationBits {
            case 16:
                return try DequantKernel.multiplySplit(rows: rows, cols: cols, groupSize: groupSize, x: x, n: n, y: y) {
                    try tier.dequantMultiply(dequant, rows: rows, cols: cols, groupSize: groupSize, x: $0, n: $1, y: $2,
                                             floatActivations: false)
                }
            default:
                return try tier.dequantMultiply(dequant, rows: rows, cols: cols, groupSize: groupSize, x: x, n: n, y: y,
                                                floatActivations: activationBits == 32)
            }
        }
    }

    /// Row r of the weights the codes stand for, read back from the layout (cols floats; for
    /// lookups such as a tied embedding table, not for hot loops).
    public func weights(row r: Int, into out: UnsafeMutablePointer<Float>) {
        for c in 0..<cols {
            out[c] = lut?.weight(row: r, col: c, groupSize: groupSize) ?? dequant!.weight(row: r, col: c, groupSize: groupSize)
        }
    }
}
