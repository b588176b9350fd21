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

    @inline(__always)
    static func isHalf(_ x: Float) -> Bool { Float(Float16(x)) == x }

    func set(_ i: Int, _ value: Float) { GroupParameters.store(value, at: buffer.pointer, i, half: half) }

    func get(_ i: Int) -> Float { GroupParameters.load(UnsafeRawPointer(buffer.pointer), i, half: half) }

    /// Element i of parameters at p, Float16 or Float32 (also for layouts that keep their
    /// parameters inside another buffer, as `LUTLayout` does). Not for hot loops.
    static func load(_ p: UnsafeRawPointer, _ i: Int, half: Bool) -> Float {
        half ? Float(p.load(fromByteOffset: 2 * i, as: Float16.self)) : p.load(fromByteOffset: 4 * i, as: Float.self)
    }

    static func store(_ value: Float, at p: UnsafeMutableRawPointer, _ i: Int, half: Bool) {
        if half { p.storeBytes(of: Float16(value), toByteOffset: 2 * i, as: Float16.self) }
        else { p.storeBytes(of: value, toByteOffset: 4 * i, as: Float.self) }
    }

    /// The address of element i, for kernels.
    @inline(__always)
    package func address(_ i: Int) -> UnsafeRawPointer { UnsafeRawPointer(buffer.pointer) + i * elementBytes }

}
