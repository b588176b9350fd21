/// Activations rounded to int8 per weight group: x ≈ sa·qa with sa = max|x|/127 over the group.
/// Memory per activation row: `cols` Int8 codes, then `groups` Float scales sa, then `groups`
/// Int32 sums Σqa (the zero-point term m·Σx becomes m·sa·Σqa).
public struct Int8Activations {
    public let cols: Int
    public let groupSize: Int
    public var groups: Int { cols / groupSize }

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

    public func quantize(_ x: UnsafePointer<Float>, into base: UnsafeMutableRawPointer) {
        let q = codes(base), sa = scales(base), s = sums(base)
        for g in 0..<groups {
            var maxAbs: Float = 0
            for k in (g * groupSize)..<((g + 1) * groupSize) { maxAbs = max(maxAbs, abs(x[k])) }
            let scale = maxAbs / 127
            let inverse: Float = scale > 0 ? 1 / scale : 0
            var sum: Int32 = 0
            for k in (g * groupSize)..<((g + 1) * groupSize) {
                let v = roundToInt8(x[k] * inverse)
                q[k] = v
                sum += Int32(v)
            }
            sa[g] = scale
            s[g] = sum
        }
    }
}
