/// One kernel family's packed weights and nothing else: what a program that only multiplies
/// needs to hold. Made from a `QuantizedMatrix`, which can then be released (its canonical
/// codes, and any other family's layout, go with it). Runs the SIMD tier's kernel on the same
/// layout the matrix would use, so products are the matrix's, bit for bit. No saving and no
/// other family: keep the `QuantizedMatrix` for those.
public final class PackedMatrix: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    public let groupSize: Int
    public let family: KernelFamily
    private let kernels: any PackedFamilyKernels.Type
    private let layout: any KernelLayout

    /// Bytes held: the layout's codes and group parameters.
    public var byteCount: Int { layout.byteCount }

    /// Reads every byte a product streams, once (the memory-read baseline of the same bytes).
    public func readWeights() -> UInt64 { layout.readOnce() }

    /// Whether `init(matrix, family:)` can pack it here: a family whose layout runs alone (LUT,
    /// dequant), at a SIMD tier.
    public static func canPack(_ matrix: QuantizedMatrix, family: KernelFamily) -> Bool {
        Tiers.packed != nil && family.kernels is any PackedFamilyKernels.Type
    }

    /// Packs `matrix` (its value codes, for a mixed matrix) for `family`. Throws `.unsupported`
    /// where that family has no packed layout running here: the portable tier, families whose
    /// layout needs the matrix.
    public init(_ matrix: QuantizedMatrix, family: KernelFamily) throws {
        let m = try matrix.valueCodes()
        (rows, cols, groupSize, self.family) = (m.rows, m.cols, m.groupSize, family)
        guard let kernels = family.kernels as? any PackedFamilyKernels.Type, let layout = try kernels.pack(m) else {
            throw LowBitError(.unsupported,
                              "no packed \(family) layout for \(matrix.type) at SIMD tier \(Runtime.simdTier): "
                              + "packed matrices run the lut or dequant kernels of the avx2 and avx512 tiers")
        }
        (self.kernels, self.layout) = (kernels, layout)
    }

    /// Y = X·Wᵀ as `QuantizedMatrix.multiply` with this family: x is n × cols, y is n × rows.
    /// `activationBits`: dequant takes 8, 16 (two int8 passes) or 32 (float); lut ignores it.
    public func multiply(_ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>,
                         activationBits: Int = 8) throws {
        if let accepted = kernels.activationBits, !accepted.contains(activationBits) {
            throw LowBitError(.unsupported,
                              "unsupported activation bits \(activationBits) for a packed \(family) matrix: use "
                              + accepted.sorted().map(String.init).joined(separator: ", "))
        }
        try checkActivations(x, n: n, rows: rows, cols: cols)
        try kernels.multiply(packed: layout, rows: rows, cols: cols, groupSize: groupSize, x: x, n: n, y: y,
                             activationBits: activationBits)
    }

    /// Row r of the weights the codes stand for, read back from the layout (cols floats; for
    /// lookups such as a tied embedding table, not for hot loops).
    public func weights(row r: Int, into out: UnsafeMutablePointer<Float>) {
        for c in 0..<cols { out[c] = kernels.weight(packed: layout, row: r, col: c, groupSize: groupSize) }
    }
}
