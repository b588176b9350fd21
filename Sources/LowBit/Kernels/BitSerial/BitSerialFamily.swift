extension KernelFamily {
    /// BitMoD / ABQ-LLM: weight × activation bit planes, AND + popcount, at 2, 4 or 8 activation bits.
    public static let bitSerial = BitSerialFamily.family
}

/// The bit-serial family: `BitSerialKernel` (64-bit popcount words on the canonical planes) at
/// the portable tier, the tier's kernel on `BitSerialLayout` elsewhere.
enum BitSerialFamily: FamilyKernels {
    static let family = KernelFamily(code: 2, name: "bitserial")
    static let activationBits: [Int]? = [8, 2, 4]
    /// It was the slowest family on every shape measured: it is there for its W×A precision.
    static let autoCandidate = false
    static var note: String { Tiers.active.note(family: "bitserial") + ", activations 2, 4 or 8 bits" }

    static func pack(_ m: QuantizedMatrix) throws -> (any KernelLayout)? {
        guard Tiers.packed != nil else { return nil }
        return try m.bitSerialLayout()
    }

    static func multiply(_ m: QuantizedMatrix, x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>,
                         activationBits: Int) throws {
        let bytes = try checkedProduct(n, BitSerialKernel.activationBytes(m, activationBits: activationBits),
                                       what: "workspace")
        let ws = try Workspace.current.reserve(bytes)
        try BitSerialKernel.multiply(m, x: x, n: n, y: y, activationBits: activationBits, workspace: ws)
    }
}

extension BitSerialLayout: KernelLayout {
    var buffers: [AlignedBuffer] { [codes, scales, offsets] }
}
