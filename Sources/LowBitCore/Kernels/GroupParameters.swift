/// The group parameters (d, m) a kernel layout keeps next to its codes: Float16 when every d
/// and m of the matrix is exactly a Float16 (what the quantizer makes and GGUF's Q4_1 holds),
/// else Float32. Either way the values are the matrix's own, so products do not change; Float16
/// halves the parameters' bytes (0.25 instead of 0.5 bit per weight at G = 128).
package struct GroupParameters {
    package let half: Bool
    package let buffer: AlignedBuffer

    package var elementBytes: Int { GroupParameters.elementBytes(half: half) }
    package static func elementBytes(half: Bool) -> Int { half ? 2 : 4 }
    var byteCount: Int { buffer.byteCount }

    init(count: Int, half: Bool, what: String) throws {
        self.half = half
        buffer = try AlignedBuffer(byteCount: try checkedProduct(count, GroupParameters.elementBytes(half: half),
                                                                 what: what))
    }

    /// Whether every parameter of `m` is exactly a Float16.
    static func halfExact(_ m: CanonicalCodes) -> Bool {
        let n = m.rows * m.groupsPerRow, d = m.scales, off = m.offsets
        for i in 0..<n where !isHalf(d[i]) || !isHalf(off[i]) { return false }
        return true
    }

    /// Whether x is exactly a Float16 (as `Float(Float16(x)) == x`), from its bits: the baseline
    /// target has no conversion instruction, so the conversion is a library call per parameter,
    /// and every layout a load packs checks every parameter. Infinities are; NaNs are not.
    @inline(__always)
    package static func isHalf(_ x: Float) -> Bool {
        let b = x.bitPattern, e = Int((b >> 23) & 0xFF) - 127, m = b & 0x7F_FFFF
        if e == 128 { return m == 0 }
        if e > 15 { return false }
        if e >= -14 { return m & 0x1FFF == 0 }  // a normal Float16: 10 fraction bits
        if e >= -24 { return m & ((1 << UInt32(-1 - e)) - 1) == 0 }  // a subnormal: multiples of 2⁻²⁴
        return b & 0x7FFF_FFFF == 0
    }

    /// The Float16 bits of x, which must be exactly a Float16 (`isHalf`), moved rather than rounded.
    @inline(__always)
    package static func halfBits(_ x: Float) -> UInt16 {
        let b = x.bitPattern, sign = UInt16(truncatingIfNeeded: b >> 16) & 0x8000
        let e = Int((b >> 23) & 0xFF) - 127, m = b & 0x7F_FFFF
        if e == 128 { return sign | 0x7C00 }
        if e >= -14 { return sign | UInt16(e + 15) << 10 | UInt16(truncatingIfNeeded: m >> 13) }
        if e >= -24 { return sign | UInt16(truncatingIfNeeded: (0x80_0000 | m) >> UInt32(-1 - e)) }
        return sign
    }

    func set(_ i: Int, _ value: Float) { GroupParameters.store(value, at: buffer.pointer, i, half: half) }

    func get(_ i: Int) -> Float { GroupParameters.load(UnsafeRawPointer(buffer.pointer), i, half: half) }

    /// Element i of parameters at p, Float16 or Float32 (also for layouts that keep their
    /// parameters inside another buffer, as `LUTLayout` does). Not for hot loops.
    static func load(_ p: UnsafeRawPointer, _ i: Int, half: Bool) -> Float {
        half ? Float(p.load(fromByteOffset: 2 * i, as: Float16.self)) : p.load(fromByteOffset: 4 * i, as: Float.self)
    }

    static func store(_ value: Float, at p: UnsafeMutableRawPointer, _ i: Int, half: Bool) {
        if half { p.storeBytes(of: halfBits(value), toByteOffset: 2 * i, as: UInt16.self) }
        else { p.storeBytes(of: value, toByteOffset: 4 * i, as: Float.self) }
    }

    /// The address of element i, for kernels.
    @inline(__always)
    package func address(_ i: Int) -> UnsafeRawPointer { UnsafeRawPointer(buffer.pointer) + i * elementBytes }

}
