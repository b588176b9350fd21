/// Float16 ↔ Float for the KV cache, which holds keys and values as Float16 (half the bytes that
/// attention reads per token of context, as llama.cpp's cache does by default).
///
/// At the x86-64 baseline the compiler turns `Float(h)` into a library call per value (there is
/// no F16C below the AVX2 tier); the same conversion in integer lanes vectorizes and is exact:
/// a Float16's exponent and mantissa bits, moved up 13 places, are a Float 2¹¹² times too small
/// (subnormals included), and exponent 31 (infinity, NaN) maps to the Float's exponent 255.
package enum HalfFloats {
    /// The largest finite Float16.
    package static let largest: Float = 65504

    /// x clamped to ±`largest` (NaN stays NaN): what the cache stores, so that a value too large
    /// for a Float16 stays finite rather than becoming an infinity that turns scores into NaN.
    @inline(__always)
    package static func saturated(_ x: Float) -> Float { min(max(x, -largest), largest) }

    /// Without a branch, so that `widen`'s loop vectorizes.
    @inline(__always)
    package static func float(_ h: Float16) -> Float {
        let bits = UInt32(h.bitPattern), shifted = (bits & 0x7FFF) << 13
        let value = shifted >= 0x0F80_0000 ? Float(bitPattern: shifted | 0x7F80_0000)
                                           : Float(bitPattern: shifted) * 0x1p112
        return Float(bitPattern: value.bitPattern | (bits & 0x8000) << 16)
    }

    /// out[i] = `float`(h[i]) for i < count.
    package static func widen(_ h: UnsafePointer<Float16>, into out: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { out[i] = float(h[i]) }
    }
}
