
/// Activations rounded to A-bit integers per weight group (A = 8 for the dequant family;
/// 2, 4 or 8 for bit-serial): x ≈ sa·qa with sa = max|x| / (2^(A−1) − 1) over the group and
/// |qa| ≤ 2^(A−1) − 1, so qa's low A bits are its A-bit two's complement.
/// Memory per activation row: `cols` Int8 codes, then `groups` Float scales sa, then `groups`
/// Int32 sums Σqa (the zero-point term m·Σx becomes m·sa·Σqa).
public struct Int8Activations {
    public let cols: Int
    public let groupSize: Int
    /// A: bits of each rounded activation.
    public let bits: Int
    public var groups: Int { cols / groupSize }
    public var limit: Float { Float((1 << (bits - 1)) - 1) }

    public init(cols: Int, groupSize: Int, bits: Int = 8) {
        self.cols = cols
        self.groupSize = groupSize
        self.bits = bits
    }

    public static func byteCount(cols: Int, groupSize: Int) -> Int {
        (cols + 8 * (cols / groupSize) + 63) / 64 * 64
    }

    @inlinable public func codes(_ base: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Int8> {
        base.assumingMemoryBound(to: Int8.self)
    }
    @inlinable public func scales(_ base: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Float> {
        (base + cols).assumingMemoryBound(to: Float.self)
    }
    @inlinable public func sums(_ base: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Int32> {
        (base + cols + 4 * groups).assumingMemoryBound(to: Int32.self)
    }

    /// The readable quantizer, one activation at a time.
    public func quantizeScalar(_ x: UnsafePointer<Float>, into base: UnsafeMutableRawPointer) {
        let q = codes(base), sa = scales(base), s = sums(base), limit = self.limit
        for g in 0..<groups {
            var maxAbs: Float = 0
            for k in (g * groupSize)..<((g + 1) * groupSize) { maxAbs = max(maxAbs, abs(x[k])) }
            let scale = maxAbs / limit
            let inverse: Float = scale > 0 ? 1 / scale : 0
            var sum: Int32 = 0
            for k in (g * groupSize)..<((g + 1) * groupSize) {
                let v = x[k] * inverse
                let r = v.isNaN ? 0 : min(max(v.rounded(.toNearestOrEven), -limit), limit)
                q[k] = Int8(r)
                sum += Int32(r)
            }
            sa[g] = scale
            s[g] = sum
        }
    }
}
