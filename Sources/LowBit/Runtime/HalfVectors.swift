#if LOWBIT_AVX2
import _Builtin_intrinsics.intel
#endif

/// Float16 × Float vector helpers for the BitStack product (factors stay Float16 in memory;
/// F16C converts 8 at a time where the AVX2 build runs).
enum HalfVectors {
    /// out[i] = h[i] · x[i]
    @inline(__always)
    static func multiply(_ h: UnsafePointer<Float16>, _ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        #if LOWBIT_AVX2
        if Runtime.useAVX2 {
            while i + 8 <= count {
                let hv = _mm256_cvtph_ps(UnsafeRawPointer(h + i).loadUnaligned(as: __m128i.self))
                _mm256_storeu_ps(out + i, _mm256_mul_ps(hv, _mm256_loadu_ps(x + i)))
                i += 8
            }
        }
        #endif
        while i < count { out[i] = Float(h[i]) * x[i]; i += 1 }
    }

    /// y[i] += h[i] · p[i]
    @inline(__always)
    static func multiplyAdd(_ h: UnsafePointer<Float16>, _ p: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        #if LOWBIT_AVX2
        if Runtime.useAVX2 {
            while i + 8 <= count {
                let hv = _mm256_cvtph_ps(UnsafeRawPointer(h + i).loadUnaligned(as: __m128i.self))
                _mm256_storeu_ps(y + i, _mm256_fmadd_ps(hv, _mm256_loadu_ps(p + i), _mm256_loadu_ps(y + i)))
                i += 8
            }
        }
        #endif
        while i < count { y[i] += Float(h[i]) * p[i]; i += 1 }
    }
}
