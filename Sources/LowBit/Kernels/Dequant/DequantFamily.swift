extension KernelFamily {
    /// llama.cpp style: codes unpacked to int8 (× int8 activations) or to floats.
    public static let dequant = DequantFamily.family
}

/// The dequant family: int8 activations (8), two int8 passes for the rounding residual (16),
/// or float activations (32); `DequantKernel`'s portable paths on the canonical codes, the
/// tier's kernels on `DequantLayout` elsewhere.
enum DequantFamily: PackedFamilyKernels {
    static let family = KernelFamily(code: 3, name: "dequant")
    static let activationBits: [Int]? = [8, 16, 32]
    static let autoCandidate = true
    static var note: String { Tiers.active.note(family: "dequant") }

    static func pack(_ m: QuantizedMatrix) throws -> (any KernelLayout)? {
        guard Tiers.packed != nil else { return nil }
        return try m.dequantLayout()
    }

    static func multiply(_ m: QuantizedMatrix, x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>,
                         activationBits: Int) throws {
        switch activationBits {
        case 32:
            if let tier = Tiers.packed {
                return try tier.dequantMultiply(try m.dequantLayout(), rows: m.rows, cols: m.cols,
                                                groupSize: m.groupSize,
                                                x: x, n: n, y: y, floatActivations: true)
            }
            let ws = try Workspace.current.reserve(DequantKernel.workspaceBytes(m, n: n))
            DequantKernel.multiplyFloat(m, x: x, n: n, y: y, workspace: ws)
        case 16:
            try DequantKernel.multiplySplit(rows: m.rows, cols: m.cols, groupSize: m.groupSize, x: x, n: n, y: y) {
                try m.multiplyDequantInt8($0, n: $1, y: $2)
            }
        default:
            try m.multiplyDequantInt8(x, n: n, y: y)
        }
    }

    static func multiply(packed layout: any KernelLayout, rows: Int, cols: Int, groupSize: Int, x: UnsafePointer<Float>,
                         n: Int, y: UnsafeMutablePointer<Float>, activationBits: Int) throws {
        // A layout packed at a SIMD tier runs at the best one while a test forces the portable tier.
        guard let layout = layout as? DequantLayout, let tier = Tiers.packed ?? Tiers.bestPacked else {
            throw LowBitError(.invalidArgument, "not a packed \(family) layout on a CPU with a SIMD tier")
        }
        if activationBits == 16 {
            return try DequantKernel.multiplySplit(rows: rows, cols: cols, groupSize: groupSize, x: x, n: n, y: y) {
                try tier.dequantMultiply(layout, rows: rows, cols: cols, groupSize: groupSize, x: $0, n: $1, y: $2,
                                         floatActivations: false)
            }
        }
        try tier.dequantMultiply(layout, rows: rows, cols: cols, groupSize: groupSize, x: x, n: n, y: y,
                                 floatActivations: activationBits == 32)
    }

    static func weight(packed layout: any KernelLayout, row: Int, col: Int, groupSize: Int) -> Float {
        (layout as? DequantLayout)?.weight(row: row, col: col, groupSize: groupSize) ?? .nan
    }
}

extension DequantLayout: KernelLayout {
    var buffers: [AlignedBuffer] { [codes, params.buffer] }
}

extension QuantizedMatrix {
    func multiplyDequantInt8(_ x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>) throws {
        if let tier = Tiers.packed {
            return try tier.dequantMultiply(try dequantLayout(), rows: rows, cols: cols, groupSize: groupSize, x: x,
                                            n: n, y: y,
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
