/// The bit-serial family (BitMoD / ABQ-LLM). Activations are rounded to A-bit integers per
/// group, a = sa·qa with qa in two's complement, and split into bit planes Aⱼ; weights are already
/// bit planes Wᵢ. For one group,
///   Σₖ qₖ·qaₖ = Σᵢ Σⱼ 2^(i+j)·cⱼ·popcount(Wᵢ ∧ Aⱼ),   cⱼ = −1 for the top plane j = A−1, else +1,
///   y += d·sa·Σₖ qₖ·qaₖ + m·sa·Σₖ qaₖ.
/// The integer part is exact, so against Float64 of the same quantized activations the error is
/// float rounding only. Activations are rounded per weight group (`Int8Activations` with A bits:
/// at A = 8 the very integers the dequant family uses). This file is the portable kernel
/// (64-bit popcount words on the canonical planes) and its bit-by-bit reference; the AVX2
/// kernel is `BitSerialKernelAVX2` on `BitSerialLayout`.
enum BitSerialKernel {
    static let supportedActivationBits = [2, 4, 8]

    /// Activation scratch of one row (`BitSerialActivations`).
    static func activationBytes(_ m: QuantizedMatrix, activationBits: Int) -> Int {
        (BitSerialActivations(cols: m.cols, groupSize: m.groupSize, bits: activationBits).byteCount + 63) / 64 * 64
    }

    /// popcount(a ∧ b) over `bytes` bytes (a multiple of 4).
    @inline(__always)
    static func andPopcount(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, bytes: Int) -> Int32 {
        var count = 0, i = 0
        while i + 8 <= bytes {
            count += (UnsafeRawPointer(a + i).loadUnaligned(as: UInt64.self) & UnsafeRawPointer(b
                + i).loadUnaligned(as: UInt64.self)).nonzeroBitCount
            i += 8
        }
        if i < bytes {
            count += (UnsafeRawPointer(a + i).loadUnaligned(as: UInt32.self) & UnsafeRawPointer(b
                + i).loadUnaligned(as: UInt32.self)).nonzeroBitCount
        }
        return Int32(count)
    }

    /// Σₖ qₖ·qaₖ of one group by the bit-plane identity (word-wide AND + popcount).
    @inline(__always)
    static func groupDot(weightPlanes w: UnsafePointer<UInt8>, weightBits: Int,
                         activationPlanes a: UnsafePointer<UInt8>,
                         activationBits: Int, activationStride: Int, planeBytes: Int) -> Int32 {
        var total: Int32 = 0
        for i in 0..<weightBits {
            for j in 0..<activationBits {
                let c = andPopcount(w + i * planeBytes, a + j * activationStride, bytes: planeBytes) << Int32(i + j)
                total = j == activationBits - 1 ? total - c : total + c
            }
        }
        return total
    }

    /// The same sum read off bit by bit: the family's readable reference (tests compare the two).
    static func groupDotReference(weightPlanes w: UnsafePointer<UInt8>, weightBits: Int,
                                  activationPlanes a: UnsafePointer<UInt8>,
                                  activationBits: Int, activationStride: Int, planeBytes: Int) -> Int32 {
        var total: Int32 = 0
        for k in 0..<(planeBytes * 8) {
            for i in 0..<weightBits {
                for j in 0..<activationBits {
                    let wi = Int32((w[i * planeBytes + k / 8] >> UInt8(k % 8)) & 1)
                    let aj = Int32((a[j * activationStride + k / 8] >> UInt8(k % 8)) & 1)
                    let sign: Int32 = j == activationBits - 1 ? -1 : 1
                    total += sign * (wi * aj) << Int32(i + j)
                }
            }
        }
        return total
    }

    /// Y = X·Wᵀ with activations rounded to A bits. `reference` runs the bit-by-bit sums (tests).
    static func multiply(_ m: QuantizedMatrix, x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>,
                         activationBits a: Int, workspace: UnsafeMutableRawPointer, reference: Bool = false) throws {
        let acts = BitSerialActivations(cols: m.cols, groupSize: m.groupSize, bits: a)
        let rowBytes = activationBytes(m, activationBits: a)
        if let tier = Tiers.packed, !reference {
            return tier.bitSerialMultiply(try m.bitSerialLayout(), groupSize: m.groupSize, acts: acts, x: x, n: n,
                                          rows: m.rows,
                                          workspace: workspace, rowBytes: rowBytes, y: y)
        }
        for i in 0..<n { acts.prepare(x + i * m.cols, into: workspace + i * rowBytes) }
        let groups = m.groupsPerRow, bits = m.bits, planeBytes = m.planeBytes, stride = acts.planeStride
        let codes = m.codes.bytes(), scales = m.scales.floats(), offsets = m.offsets.floats()
        let ints = acts.ints
        let dot = reference ? groupDotReference : groupDot
        parallelFor(m.rows) { r in
            for i in 0..<n {
                let base = workspace + i * rowBytes
                let planes = UnsafePointer(acts.planes(base)), sa = ints.scales(base), qaSum = ints.sums(base)
                var sum: Float = 0
                for g in 0..<groups {
                    let weights = codes + (r * groups + g) * bits * planeBytes
                    let q = dot(weights, bits, planes + g * planeBytes, a, stride, planeBytes)
                    sum += scales[r * groups + g] * sa[g] * Float(q) + offsets[r * groups + g] * sa[g] * Float(qaSum[g])
                }
                y[i * m.rows + r] = sum
            }
        }
    }
}
