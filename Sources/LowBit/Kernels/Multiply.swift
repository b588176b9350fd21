/// Kernel families a product can run through (values shared with `lowbit_kernel` in C).
public enum KernelFamily: Int32, CaseIterable, Sendable, CustomStringConvertible {
    case auto = 0
    case lut = 1
    case bitSerial = 2
    case dequant = 3
    case reference = 4

    public init(code: Int32) throws {
        guard let k = KernelFamily(rawValue: code) else {
            throw LowBitError(.invalidArgument, "unknown kernel \(code): use 0 (auto), 1 (lut), 2 (bitserial), 3 (dequant) or 4 (reference)")
        }
        self = k
    }

    public init(name: String) throws {
        guard let k = KernelFamily.allCases.first(where: { $0.description == name.lowercased() }) else {
            throw LowBitError(.invalidArgument, "unknown kernel '\(name)': use auto, lut, bitserial, dequant or reference")
        }
        self = k
    }

    public var description: String {
        switch self {
        case .auto: return "auto"
        case .lut: return "lut"
        case .bitSerial: return "bitserial"
        case .dequant: return "dequant"
        case .reference: return "reference"
        }
    }
}

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
        switch (kernel, activationBits) {
        case (.auto, 8): family = try autoKernel(n: n)
        case (.auto, 2), (.auto, 4): family = .bitSerial
        case (.auto, 16), (.auto, 32): family = .dequant
        case (.auto, _):
            throw LowBitError(.unsupported, "unsupported activation bits \(activationBits): use 8 (any family), 2 or 4 (bitserial), 16 or 32 (dequant)")
        default: family = kernel
        }
        if family == .bitSerial, !BitSerialKernel.supportedActivationBits.contains(activationBits) {
            throw LowBitError(.unsupported, "unsupported activation bits \(activationBits) for bitserial: use 2, 4 or 8")
        }
        if family == .dequant, ![8, 16, 32].contains(activationBits) {
            throw LowBitError(.unsupported, "unsupported activation bits \(activationBits) for dequant: use 8 (int8), 16 (two int8 passes) or 32 (float)")
        }
        try checkActivations(x, n: n, rows: rows, cols: cols)
        switch family {
        case .reference:
            ReferenceKernel.multiply(self, x: x, n: n, y: y)
        case .dequant where activationBits == 32:
            if let tier = Tiers.packed {
                return try tier.dequantMultiply(try dequantLayout(), rows: rows, cols: cols, groupSize: groupSize, x: x, n: n,
                                                y: y, floatActivations: true)
            }
            let ws = try Workspace.current.reserve(DequantKernel.workspaceBytes(self, n: n))
            DequantKernel.multiplyFloat(self, x: x, n: n, y: y, workspace: ws)
        case .dequant where activationBits == 16:
            try DequantKernel.multiplySplit(rows: rows, cols: cols, groupSize: groupSize, x: x, n: n, y: y) {
                try self.multiplyDequantInt8($0, n: $1, y: $2)
            }
        case .dequant:
            try multiplyDequantInt8(x, n: n, y: y)
        case .bitSerial:
            let bytes = try checkedProduct(n, BitSerialKernel.activationBytes(self, activationBits: activationBits), what: "workspace")
            let ws = try Workspace.current.reserve(bytes)
            try BitSerialKernel.multiply(self, x: x, n: n, y: y, activationBits: activationBits, workspace: ws)
        case .lut, .auto:
            try multiplyLUT(x, n: n, y: y)
        }
    }

    private func multiplyLUT(_ x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>) throws {
        try LUTKernel.multiply(self, x: x, n: n, y: y)
    }
}

extension QuantizedMatrix {
    func multiplyDequantInt8(_ x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>) throws {
        if let tier = Tiers.packed {
            return try tier.dequantMultiply(try dequantLayout(), rows: rows, cols: cols, groupSize: groupSize, x: x, n: n, y: y,
                                            floatActivations: false)
        }
        let acts = Int8Activations(cols: cols, groupSize: groupSize)
        let stride = Int8Activations.byteCount(cols: cols, groupSize: groupSize)
        let ws = try Workspace.current.reserve(try checkedProduct(n, stride, what: "workspace"))
        parallelFor(n) { i in acts.quantize(x + i * cols, into: ws + i * stride) }
        parallelRanges(rows) { range in
            DequantKernel.unpackedInt8(self, acts: acts, actBase: ws, actStride: stride, n: n, y: y, rows: range)
        }
    }
}

extension DequantKernel {
    /// 16-bit activations as two int8 passes: each row x is followed by its rounding residual
    /// r = x − sa·qa (|r| ≤ sa/2), which the int8 kernel rounds again with its own, ~254× finer
    /// scale; y = W·x' + W·r'. The two rows run in one tile of the int8 kernel, sharing each
    /// weight unpack, and the result is as close to float activations as the weights' own
    /// rounding makes worthwhile (error ~1e-7 where int8 gives ~4e-5).
    static func multiplySplit(rows: Int, cols: Int, groupSize: Int, x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>,
                              int8: (UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>) throws -> Void) throws {
        let acts = Int8Activations(cols: cols, groupSize: groupSize)
        let rowBytes = Int8Activations.byteCount(cols: cols, groupSize: groupSize)
        let floats = try checkedProduct(2 * n, cols + rows, what: "workspace")
        let ws = try Workspace.current.reserve(try checkedProduct(floats, 4, what: "workspace") + n * rowBytes, slot: 2)
        let split = ws.assumingMemoryBound(to: Float.self), ySplit = split + 2 * n * cols
        let roundedRows = UnsafeMutableRawPointer(ySplit + 2 * n * rows)
        parallelFor(n) { i in
            let rounded = roundedRows + i * rowBytes, q = acts.codes(rounded), sa = acts.scales(rounded)
            let xi = x + i * cols, hi = split + 2 * i * cols, lo = hi + cols
            acts.quantize(xi, into: rounded)
            for c in 0..<cols {
                hi[c] = xi[c]
                lo[c] = xi[c] - sa[c / groupSize] * Float(q[c])
            }
        }
        try int8(split, 2 * n, ySplit)
        parallelFor(n) { i in
            for r in 0..<rows { y[i * rows + r] = ySplit[2 * i * rows + r] + ySplit[(2 * i + 1) * rows + r] }
        }
    }
}

/// Checks a product's activations: n ≥ 1, sizes that fit, every value finite.
func checkActivations(_ x: UnsafePointer<Float>, n: Int, rows: Int, cols: Int) throws {
    guard n > 0 else { throw LowBitError(.invalidArgument, "activation row count n = \(n) must be positive") }
    let count = try checkedProduct(n, cols, what: "activations")
    _ = try checkedProduct(n, rows, what: "outputs")
    if let i = FloatVectors.firstNonFinite(x, count: count) {
        throw LowBitError(.invalidArgument, "activation [\(i / cols), \(i % cols)] is \(x[i]): activations must be finite")
    }
}
