extension QuantizedMatrix {
    /// The family `auto` runs for n activation rows: the fastest measured here (`AutoKernel`).
    public func autoKernel(n: Int) throws -> KernelFamily { try AutoKernel.choice(self, n: n) }

    /// Y = X·Wᵀ: x is n × cols (row-major), y is n × rows. `activationBits`: the activation
    /// precision of bit-serial (2, 4 or 8) and dequant (8; 16, two int8 passes; or 32 for float
    /// activations); lut and reference ignore it. `auto` measures its choice at 8 and otherwise
    /// runs the one family with that precision, so the precision asked for is the one used.
    /// Safe to call from several threads at once on one matrix.
    public func multiply(_ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>,
                         kernel: KernelFamily = .auto, activationBits: Int = 8) throws {
        // Before auto measures anything or a mixed matrix builds its value codes.
        guard n > 0 else { throw LowBitError(.invalidArgument, "activation row count n = \(n) must be positive") }
        if type.isMixed, kernel != .reference {
            // Validated there; the reference kernel reads the mixed codes themselves.
            return try valueCodes().multiply(x, n: n, into: y, kernel: kernel, activationBits: activationBits)
        }
        let family: KernelFamily
        switch kernel {
        case .auto where activationBits == 8: family = try autoKernel(n: n)
        case .auto:
            guard let f = KernelFamilies.family(forActivationBits: activationBits) else {
                throw LowBitError(.unsupported, "unsupported activation bits \(activationBits): use 8 (any family), "
                                  + KernelFamilies.activationBitsSummary)
            }
            family = f
        default: family = kernel
        }
        guard let kernels = family.kernels else { throw LowBitError(.invalidArgument, "no kernels for \(family)") }
        if let accepted = kernels.activationBits, !accepted.contains(activationBits) {
            throw LowBitError(.unsupported, "unsupported activation bits \(activationBits) for \(family): use "
                              + accepted.sorted().map(String.init).joined(separator: ", "))
        }
        try checkActivations(x, n: n, rows: rows, cols: cols)
        try kernels.multiply(self, x: x, n: n, y: y, activationBits: activationBits)
    }
}

/// Checks a product's activations: n ≥ 1, sizes that fit, every value finite.
func checkActivations(_ x: UnsafePointer<Float>, n: Int, rows: Int, cols: Int) throws {
    guard n > 0 else { throw LowBitError(.invalidArgument, "activation row count n = \(n) must be positive") }
    let count = try checkedProduct(n, cols, what: "activations")
    _ = try checkedProduct(n, rows, what: "outputs")
    if let i = FloatVectors.firstNonFinite(x, count: count) {
        throw LowBitError(.invalidArgument,
                          "activation [\(i / cols), \(i % cols)] is \(x[i]): activations must be finite")
    }
}
