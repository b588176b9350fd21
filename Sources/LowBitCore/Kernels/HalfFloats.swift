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

    @inline(__always)
    package static func float(_ h: Float16) -> Float {
        let bits = UInt32(h.bitPattern), magnitude = bits & 0x7FFF, sign = (bits & 0x8000) << 16
        if magnitude >= 0x7C00 { return Float(bitPattern: sign | 0x7F80_0000 | (magnitude & 0x3FF) << 13) }
        return Float(bitPattern: sign | magnitude << 13) * 0x1p112
    }

    /// Eight Float16s at h as Floats, `float` lane by lane.
    @inline(__always)
    package static func eight(_ h: UnsafePointer<Float16>) -> SIMD8<Float> {
        let bits = SIMD8<UInt32>(truncatingIfNeeded: UnsafeRawPointer(h).loadUnaligned(as: SIMD8<UInt16>.self))
        let magnitude = bits & 0x7FFF, sign = (bits & 0x8000) &<< 16
        let finite = unsafeBitCast(magnitude &<< 13, to: SIMD8<Float>.self) * 0x1p112
        let special = unsafeBitCast(0x7F80_0000 | (magnitude & 0x3FF) &<< 13, to: SIMD8<Float>.self)
        let value = finite.replacing(with: special, where: magnitude .>= 0x7C00)
        return unsafeBitCast(unsafeBitCast(value, to: SIMD8<UInt32>.self) | sign, to: SIMD8<Float>.self)
    }
}
