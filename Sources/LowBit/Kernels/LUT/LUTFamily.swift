extension KernelFamily {
    /// T-MAC table lookup: bit planes index int8 tables of activation sums.
    public static let lut = LUTFamily.family
}

/// The LUT family: `LUTKernel` (the reference, on the canonical codes) at the portable tier, the
/// tier's kernel on `LUTLayout` elsewhere. Activations go into int8 tables whatever the caller asks.
enum LUTFamily: PackedFamilyKernels {
    static let family = KernelFamily(code: 1, name: "lut")
    static let activationBits: [Int]? = nil
    static let autoCandidate = true
    static var note: String { Tiers.active.note(family: "lut") }

    static func pack(_ m: QuantizedMatrix) throws -> (any KernelLayout)? {
        guard Tiers.packed != nil else { return nil }
        return try m.lutLayout()
    }

    static func multiply(_ m: QuantizedMatrix, x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>,
                         activationBits: Int) throws {
        try LUTKernel.multiply(m, x: x, n: n, y: y)
    }

    static func multiply(packed layout: any KernelLayout, rows: Int, cols: Int, groupSize: Int, x: UnsafePointer<Float>,
                         n: Int, y: UnsafeMutablePointer<Float>, activationBits: Int) throws {
        // A layout packed at a SIMD tier runs at the best one while a test forces the portable tier.
        guard let layout = layout as? LUTLayout, let tier = Tiers.packed ?? Tiers.bestPacked else {
            throw LowBitError(.invalidArgument, "not a packed \(family) layout on a CPU with a SIMD tier")
        }
        try tier.lutMultiply(layout, rows: rows, cols: cols, groupSize: groupSize, x: x, n: n, y: y)
    }

    static func weight(packed layout: any KernelLayout, row: Int, col: Int, groupSize: Int) -> Float {
        (layout as? LUTLayout)?.weight(row: row, col: col, groupSize: groupSize) ?? .nan
    }
}

extension LUTLayout: KernelLayout {
    var buffers: [AlignedBuffer] { [data] }
}
