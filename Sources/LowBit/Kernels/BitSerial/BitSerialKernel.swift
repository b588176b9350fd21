/// The bit-serial family (BitMoD / ABQ-LLM). Activations are rounded to A-bit integers per
/// group, a = sa·qa with qa in two's complement, and split into bit planes Aⱼ; weights are already
/// bit planes Wᵢ. For one group,
///   Σₖ qₖ·qaₖ = Σᵢ Σⱼ 2^(i+j)·cⱼ·popcount(Wᵢ ∧ Aⱼ),   cⱼ = −1 for the top plane j = A−1, else +1,
///   y += d·sa·Σₖ qₖ·qaₖ + m·sa·Σₖ qaₖ.
/// The integer part is exact, so against Float64 of the same quantized activations the error is
/// float rounding only.
enum BitSerialKernel {
    static let supportedActivationBits = [2, 4, 8]

    /// Activation scratch of one row: per group, A planes of G/8 bytes, then sa (Float) and Σqa (Int32).
    static func activationBytes(_ m: QuantizedMatrix, activationBits: Int) -> Int {
        m.groupsPerRow * (activationBits * m.planeBytes + 8)
    }

    /// Rounds one activation row to A-bit integers per group and writes its planes.
    static func quantizeActivations(_ x: UnsafePointer<Float>, _ m: QuantizedMatrix, activationBits a: Int,
                                    into base: UnsafeMutableRawPointer) {
        let gs = m.groupSize, planeBytes = m.planeBytes
        let limit = Float((1 << (a - 1)) - 1)
        let stride = a * planeBytes + 8
        for g in 0..<m.groupsPerRow {
            let xg = x + g * gs
            let group = base + g * stride
            let planes = group.assumingMemoryBound(to: UInt8.self)
            var maxAbs: Float = 0
            for k in 0..<gs { maxAbs = max(maxAbs, abs(xg[k])) }
            let scale = maxAbs / limit
            let inverse: Float = scale > 0 ? 1 / scale : 0
            var sum: Int32 = 0
            for j in 0..<(a * planeBytes) { planes[j] = 0 }
            for k in 0..<gs {
                let v = xg[k] * inverse
                let qa = v.isNaN ? 0 : Int32(min(max(v.rounded(), -limit), limit))
                sum += qa
                let bitsOfQa = UInt32(bitPattern: qa)
                for j in 0..<a where (bitsOfQa >> UInt32(j)) & 1 == 1 {
                    planes[j * planeBytes + k / 8] |= UInt8(1) << UInt8(k % 8)
                }
            }
            (group + a * planeBytes).storeBytes(of: scale, as: Float.self)
            (group + a * planeBytes + 4).storeBytes(of: sum, as: Int32.self)
        }
    }

    /// popcount(a ∧ b) over `bytes` bytes (a multiple of 4).
    @inline(__always)
    static func andPopcount(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, bytes: Int) -> Int32 {
        var count = 0, i = 0
        while i + 8 <= bytes {
            count += (UnsafeRawPointer(a + i).loadUnaligned(as: UInt64.self) & UnsafeRawPointer(b + i).loadUnaligned(as: UInt64.self)).nonzeroBitCount
            i += 8
        }
        if i < bytes {
            count += (UnsafeRawPointer(a + i).loadUnaligned(as: UInt32.self) & UnsafeRawPointer(b + i).loadUnaligned(as: UInt32.self)).nonzeroBitCount
        }
        return Int32(count)
    }

    /// Σₖ qₖ·qaₖ of one group by the bit-plane identity (word-wide AND + popcount).
    @inline(__always)
    static func groupDot(weightPlanes w: UnsafePointer<UInt8>, weightBits: Int,
                         activationPlanes a: UnsafePointer<UInt8>, activationBits: Int, planeBytes: Int) -> Int32 {
        var total: Int32 = 0
        for i in 0..<weightBits {
            for j in 0..<activationBits {
                let c = andPopcount(w + i * planeBytes, a + j * planeBytes, bytes: planeBytes) << Int32(i + j)
                total = j == activationBits - 1 ? total - c : total + c
            }
        }
        return total
    }

    /// The same sum read off bit by bit: the family's readable reference (tests compare the two).
    static func groupDotReference(weightPlanes w: UnsafePointer<UInt8>, weightBits: Int,
                                  activationPlanes a: UnsafePointer<UInt8>, activationBits: Int, planeBytes: Int) -> Int32 {
        var total: Int32 = 0
        for k in 0..<(planeBytes * 8) {
            for i in 0..<weightBits {
                for j in 0..<activationBits {
                    let wi = Int32((w[i * planeBytes + k / 8] >> UInt8(k % 8)) & 1)
                    let aj = Int32((a[j * planeBytes + k / 8] >> UInt8(k % 8)) & 1)
                    let sign: Int32 = j == activationBits - 1 ? -1 : 1
                    total += sign * (wi * aj) << Int32(i + j)
                }
            }
        }
        return total
    }

    static func multiply(_ m: QuantizedMatrix, x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>,
                         activationBits a: Int, workspace: UnsafeMutableRawPointer, reference: Bool = false) {
        let rowBytes = activationBytes(m, activationBits: a)
        for i in 0..<n { quantizeActivations(x + i * m.cols, m, activationBits: a, into: workspace + i * rowBytes) }
        let groups = m.groupsPerRow, bits = m.bits, planeBytes = m.planeBytes
        let codes = m.codes.bytes(), scales = m.scales.floats(), offsets = m.offsets.floats()
        let stride = a * planeBytes + 8
        let dot = reference ? groupDotReference : groupDot
        parallelFor(m.rows) { r in
            for i in 0..<n {
                var sum: Float = 0
                for g in 0..<groups {
                    let act = UnsafeRawPointer(workspace + i * rowBytes + g * stride)
                    let sa = act.load(fromByteOffset: a * planeBytes, as: Float.self)
                    let qaSum = act.load(fromByteOffset: a * planeBytes + 4, as: Int32.self)
                    let planes = codes + (r * groups + g) * bits * planeBytes
                    let q = dot(planes, bits, act.assumingMemoryBound(to: UInt8.self), a, planeBytes)
                    sum += scales[r * groups + g] * sa * Float(q) + offsets[r * groups + g] * sa * Float(qaSum)
                }
                y[i * m.rows + r] = sum
            }
        }
    }
}
