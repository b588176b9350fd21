extension KernelFamily {
    /// Plain Float64 sums: the spec, slow by design.
    public static let reference = ReferenceFamily.family
}

/// The reference "family": `ReferenceKernel` on the canonical codes, at every tier.
enum ReferenceFamily: FamilyKernels {
    static let family = KernelFamily(code: 4, name: "reference")
    static let activationBits: [Int]? = nil
    static let autoCandidate = false
    static let note = "scalar Float64 (the spec; slow by design)"

    static func pack(_ m: QuantizedMatrix) throws -> (any KernelLayout)? { nil }

    static func multiply(_ m: QuantizedMatrix, x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>,
                         activationBits: Int) throws {
        ReferenceKernel.multiply(m, x: x, n: n, y: y)
    }
}
