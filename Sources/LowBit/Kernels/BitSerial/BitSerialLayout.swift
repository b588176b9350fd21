/// The AVX2 bit-serial kernel's weight layout: per row, each weight bit plane row-wide
/// (`planeStride` bytes, the activations' stride, zero padded), planes one after another; so one
/// 32-byte load is 256 columns of one plane, matching one load of an activation plane.
/// Group parameters per row, zero padded so that 8 Floats can be loaded from any chunk's first
/// group: d at `scales[r · paramStride + g]`, m at `offsets[...]`.
public final class BitSerialLayout: @unchecked Sendable {
    package let bits: Int
    package let planeStride: Int
    package let paramStride: Int
    package let codes: AlignedBuffer
    package let scales: AlignedBuffer
    package let offsets: AlignedBuffer

    public var byteCount: Int { codes.byteCount + scales.byteCount + offsets.byteCount }

    package init(packing m: CanonicalCodes) throws {
        bits = m.bits
        planeStride = (m.cols / 8 + 31) / 32 * 32
        paramStride = planeStride * 8 / m.groupSize + 8
        codes = try AlignedBuffer(byteCount: try checkedProduct(m.rows, bits, planeStride, what: "bit-serial layout"))
        scales = try AlignedBuffer(byteCount: try checkedProduct(m.rows, paramStride, 4, what: "bit-serial layout"))
        offsets = try AlignedBuffer(byteCount: try checkedProduct(m.rows, paramStride, 4, what: "bit-serial layout"))
        let source = m.codes, out = codes.bytes(), d = scales.floats(), off = offsets.floats()
        let groups = m.groupsPerRow, planeBytes = m.planeBytes, bits = self.bits
        let planeStride = self.planeStride, paramStride = self.paramStride
        parallelFor(m.rows) { r in
            for g in 0..<groups {
                for p in 0..<bits {
                    let from = source + ((r * groups + g) * bits + p) * planeBytes
                    let to = out + (r * bits + p) * planeStride + g * planeBytes
                    to.update(from: from, count: planeBytes)
                }
                d[r * paramStride + g] = m.scale(row: r, group: g)
                off[r * paramStride + g] = m.offset(row: r, group: g)
            }
        }
    }
}
