import _Builtin_intrinsics.intel
import LowBitCore

/// The float vector loops of `TierKernels` on 16 lanes, with masked loads for the tail (so no
/// scalar remainder loop runs after the vector one).
enum VectorsAVX512 {
    /// Lanes below `count` (at most 16) set.
    @inline(__always)
    static func mask(_ count: Int) -> __mmask16 { __mmask16(truncatingIfNeeded: (1 << min(count, 16)) - 1) }

    /// Σ a[i]·b[i] for i < count, two accumulators of 16 lanes.
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        var s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps()
        var i = 0
        while i + 32 <= count {
            s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0)
            s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1)
            i += 32
        }
        while i < count {
            let m = mask(count - i)
            s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0)
            i += 16
        }
        return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1))
    }

    /// The four sums Σ c[i]·bⱼ[i] (j = 0…3), bⱼ = b + j·stride: c is read once for all four.
    static func dot4(_ c: UnsafePointer<Float>, _ b: UnsafePointer<Float>, stride: Int,
                     count: Int) -> (Float, Float, Float, Float) {
        var s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0
        var i = 0
        while i < count {
            let m = mask(count - i)
            let cv = _mm512_maskz_loadu_ps(m, c + i)
            s0 = _mm512_fmadd_ps(cv, _mm512_maskz_loadu_ps(m, b + i), s0)
            s1 = _mm512_fmadd_ps(cv, _mm512_maskz_loadu_ps(m, b + stride + i), s1)
            s2 = _mm512_fmadd_ps(cv, _mm512_maskz_loadu_ps(m, b + 2 * stride + i), s2)
            s3 = _mm512_fmadd_ps(cv, _mm512_maskz_loadu_ps(m, b + 3 * stride + i), s3)
            i += 16
        }
        return (_mm512_reduce_add_ps(s0), _mm512_reduce_add_ps(s1), _mm512_reduce_add_ps(s2), _mm512_reduce_add_ps(s3))
    }

    /// out[i] = h[i]·x[i]: 16 Float16 converted per step.
    static func multiplyHalf(_ h: UnsafePointer<Float16>, _ x: UnsafePointer<Float>,
                             into out: UnsafeMutablePointer<Float>,
                             count: Int) {
        var i = 0
        while i < count {
            let m = mask(count - i)
            let hv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, h + i))
            _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(hv, _mm512_maskz_loadu_ps(m, x + i)))
            i += 16
        }
    }

    /// y[i] += h[i]·p[i].
    static func multiplyAddHalf(_ h: UnsafePointer<Float16>, _ p: UnsafePointer<Float>,
                                into y: UnsafeMutablePointer<Float>,
                                count: Int) {
        var i = 0
        while i < count {
            let m = mask(count - i)
            let hv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, h + i))
            let sum = _mm512_fmadd_ps(hv, _mm512_maskz_loadu_ps(m, p + i), _mm512_maskz_loadu_ps(m, y + i))
            _mm512_mask_storeu_ps(y + i, m, sum)
            i += 16
        }
    }

    /// `TierKernels.readBytes` with 64-byte loads, four chains; 8-byte steps for the tail.
    static func readBytes(_ p: UnsafeRawPointer, bytes: Int) -> UInt64 {
        var a = _mm512_setzero_si512(), b = a, c = a, d = a
        var i = 0
        while i + 256 <= bytes {
            a = _mm512_xor_si512(a, _mm512_loadu_si512(p + i))
            b = _mm512_xor_si512(b, _mm512_loadu_si512(p + i + 64))
            c = _mm512_xor_si512(c, _mm512_loadu_si512(p + i + 128))
            d = _mm512_xor_si512(d, _mm512_loadu_si512(p + i + 192))
            i += 256
        }
        let v = _mm512_xor_si512(_mm512_xor_si512(a, b), _mm512_xor_si512(c, d))
        var fold = UInt64(bitPattern: v[0] ^ v[1] ^ v[2] ^ v[3] ^ v[4] ^ v[5] ^ v[6] ^ v[7])
        while i + 8 <= bytes {
            fold ^= p.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            i += 8
        }
        return fold
    }
}
