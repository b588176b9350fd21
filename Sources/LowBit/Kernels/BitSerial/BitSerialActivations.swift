/// One activation row prepared for the bit-serial family: the A-bit integers of
/// `Int8Activations`, then their bit planes (the portable kernel's input, and the AVX2 kernel's
/// at A = 2 and 4), row-wide:
///   plane j = bit j of qa for every column, `planeStride` bytes (cols/8 rounded up to 32, zero
///   padded), planes j = 0 ..< A one after another.
/// For the AVX2 kernel, then its activation input: at A = 2 and 4 each plane split into low and
/// high nibbles (one byte each, so that the AND with the weight's nibbles needs no masking), at
/// A = 8 the integers in the order of its masked sums; then per 32-column lane the group's sa
/// (zero on padding lanes) and per group sa·Σqa (zero padded to a multiple of 8 groups).
package struct BitSerialActivations {
    package let cols: Int
    let groupSize: Int
    package let bits: Int

    package init(cols: Int, groupSize: Int, bits: Int) { (self.cols, self.groupSize, self.bits) = (cols, groupSize,
        bits) }
    package var ints: Int8Activations { Int8Activations(cols: cols, groupSize: groupSize, bits: bits) }
    /// Bytes per row-wide plane: a whole number of 32-byte (256-column) chunks.
    package var planeStride: Int { (cols / 8 + 31) / 32 * 32 }
    package var chunks: Int { planeStride / 32 }
    var lanes: Int { planeStride / 4 }
    package var groups: Int { cols / groupSize }
    private var paddedGroups: Int { (groups + 7) / 8 * 8 }

    private var intBytes: Int { Int8Activations.byteCount(cols: cols, groupSize: groupSize) }
    private var planeBytes: Int { bits * planeStride }
    /// The AVX2 kernel's activation input: nibbles (2 per plane byte) or the masked-sum order (8).
    private var kernelInputBytes: Int { bits == 8 ? 8 * planeStride : 2 * bits * planeStride }
    private var laneOffset: Int { intBytes + planeBytes + kernelInputBytes }
    package var byteCount: Int { laneOffset + 4 * lanes + 4 * paddedGroups }

    package func planes(_ base: UnsafeMutableRawPointer) -> UnsafeMutablePointer<UInt8> {
        (base + intBytes).assumingMemoryBound(to: UInt8.self)
    }
    /// A = 2, 4: low nibbles of plane j at 2j·stride, high nibbles at (2j + 1)·stride.
    package func nibbles(_ base: UnsafeMutableRawPointer) -> UnsafeMutablePointer<UInt8> {
        (base + intBytes + planeBytes).assumingMemoryBound(to: UInt8.self)
    }
    /// A = 8: per 256-column chunk, 8 vectors of 32 bytes; byte p of vector 4h + j is qa of the
    /// chunk's column 8p + 4h + j (bit j of nibble h of weight plane byte p), 0 past `cols`.
    func maskedSumOrder(_ base: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Int8> {
        (base + intBytes + planeBytes).assumingMemoryBound(to: Int8.self)
    }
    package func laneScales(_ base: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Float> {
        (base + laneOffset).assumingMemoryBound(to: Float.self)
    }
    package func groupOffsetTerms(_ base: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Float> {
        (base + laneOffset + 4 * lanes).assumingMemoryBound(to: Float.self)
    }

    /// Writes `maskedSumOrder` from the integers.
    package func writeMaskedSumOrder(_ base: UnsafeMutableRawPointer) {
        let q = UnsafePointer(ints.codes(base)), out = maskedSumOrder(base)
        for c in 0..<chunks {
            for v in 0..<8 {
                let first = 256 * c + 4 * (v / 4) + v % 4
                for p in 0..<32 { out[256 * c + 32 * v + p] = first + 8 * p < cols ? q[first + 8 * p] : 0 }
            }
        }
    }

    /// Rounds x and writes the planes bit by bit (the portable kernel's preparation; at A = 2
    /// and 4 the AVX2 kernel writes the same planes with `vpmovmskb`, see
    /// `BitSerialKernelAVX2.prepare`).
    package func prepare(_ x: UnsafePointer<Float>, into base: UnsafeMutableRawPointer) {
        let ints = self.ints
        ints.quantizeScalar(x, into: base)
        let q = ints.codes(base), p = planes(base), stride = planeStride
        for i in 0..<(bits * stride) { p[i] = 0 }
        for k in 0..<cols {
            let v = UInt8(bitPattern: q[k])
            for j in 0..<bits where (v >> UInt8(j)) & 1 == 1 {
                p[j * stride + k / 8] |= UInt8(1) << UInt8(k % 8)
            }
        }
    }

    /// Per 32-column lane the group's sa, per group sa·Σqa (the AVX2 kernel's float terms).
    package func prepareLanes(_ base: UnsafeMutableRawPointer) {
        let ints = self.ints
        let sa = ints.scales(base), qaSum = ints.sums(base)
        let laneScale = laneScales(base), groupTerm = groupOffsetTerms(base)
        for l in 0..<lanes { laneScale[l] = l * 32 < cols ? sa[l * 32 / groupSize] : 0 }
        for g in 0..<paddedGroups { groupTerm[g] = g < groups ? sa[g] * Float(qaSum[g]) : 0 }
    }
}
