import _Builtin_intrinsics.intel
import LowBitCore
import LowBitPortable

/// The float vector loops of `TierKernels` on 8 lanes, and the helpers this tier's kernels share.
enum VectorsAVX2 {
    /// Σ a[i]·b[i] for i < count.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        var i = 0, sum: Float = 0
        var s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps()
        while i + 16 <= count {
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0)
            s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1)
            i += 16
        }
        if i + 8 <= count {
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0)
            i += 8
        }
        sum = horizontalSum(_mm256_add_ps(s0, s1))
        while i < count { sum += a[i] * b[i]; i += 1 }
        return sum
    }

    /// The four sums Σ c[i]·bⱼ[i] (j = 0…3) for i < count, where bⱼ = b + j·stride: c is read
    /// once for all four.
    @inline(__always)
    static func dot4(_ c: UnsafePointer<Float>, _ b: UnsafePointer<Float>, stride: Int, count: Int) -> (Float, Float,
        Float, Float) {
        var i = 0
        var r: (Float, Float, Float, Float) = (0, 0, 0, 0)
        var s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps()
        while i + 8 <= count {
            let cv = _mm256_loadu_ps(c + i)
            s0 = _mm256_fmadd_ps(cv, _mm256_loadu_ps(b + i), s0)
            s1 = _mm256_fmadd_ps(cv, _mm256_loadu_ps(b + stride + i), s1)
            s2 = _mm256_fmadd_ps(cv, _mm256_loadu_ps(b + 2 * stride + i), s2)
            s3 = _mm256_fmadd_ps(cv, _mm256_loadu_ps(b + 3 * stride + i), s3)
            i += 8
        }
        r = (horizontalSum(s0), horizontalSum(s1), horizontalSum(s2), horizontalSum(s3))
        while i < count {
            let v = c[i]
            r.0 += v * b[i]; r.1 += v * b[stride + i]; r.2 += v * b[2 * stride + i]; r.3 += v * b[3 * stride + i]
            i += 1
        }
        return r
    }

    /// Σw·t and Σt² over the ternary values t = q − 1 that `Quantizer.assign` gives w for
    /// (d, m = −d, levels 2), without storing the codes.
    static func ternarySums(_ w: UnsafePointer<Float>, count: Int, d: Float) -> (wt: Float, tt: Float) {
        let inverse: Float = d != 0 ? 1 / d : 0
        var i = 0, wt: Float = 0, tt: Float = 0
        let dv = _mm256_set1_ps(d), iv = _mm256_set1_ps(inverse), two = _mm256_set1_ps(2), one = _mm256_set1_ps(1)
        let zero = _mm256_setzero_ps(), magic = _mm256_set1_ps(0x1p23)
        var swt = zero, stt = zero
        while i + 8 <= count {
            let x = _mm256_loadu_ps(w + i)
            let scaled = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_add_ps(x, dv), iv), zero), two)
            let t = _mm256_sub_ps(_mm256_sub_ps(_mm256_add_ps(scaled, magic), magic), one)  // round half to even, − 1
            swt = _mm256_fmadd_ps(x, t, swt)
            stt = _mm256_fmadd_ps(t, t, stt)
            i += 8
        }
        (wt, tt) = (horizontalSum(swt), horizontalSum(stt))
        while i < count {
            let t = PortableKernels.ternaryValue(w[i], d: d, inverse: inverse)
            wt += w[i] * t; tt += t * t
            i += 1
        }
        return (wt, tt)
    }

    /// (min, max) of count ≥ 1 finite values.
    @inline(__always)
    static func range(_ a: UnsafePointer<Float>, count: Int) -> (Float, Float) {
        var i = 0, lo = a[0], hi = a[0]
        if count >= 8 {
            var l = _mm256_loadu_ps(a), h = l
            i = 8
            while i + 8 <= count {
                let v = _mm256_loadu_ps(a + i)
                l = _mm256_min_ps(l, v); h = _mm256_max_ps(h, v)
                i += 8
            }
            let l4 = _mm_min_ps(l.lowHalf, l.highHalf), h4 = _mm_max_ps(h.lowHalf, h.highHalf)
            lo = min(min(l4[0], l4[1]), min(l4[2], l4[3]))
            hi = max(max(h4[0], h4[1]), max(h4[2], h4[3]))
        }
        while i < count { lo = min(lo, a[i]); hi = max(hi, a[i]); i += 1 }
        return (lo, hi)
    }

    /// Stores the first `count` lanes of v at p (all 8 in one store when count ≥ 8): kernels'
    /// output rows, whose last block can be partial.
    @inline(__always)
    static func storePrefix(_ v: __m256, _ p: UnsafeMutablePointer<Float>, count: Int) {
        if count >= 8 {
            _mm256_storeu_ps(p, v)
            return
        }
        var tail = SIMD8<Float>()
        withUnsafeMutableBytes(of: &tail) { raw in
            let f = raw.bindMemory(to: Float.self).baseAddress!
            _mm256_storeu_ps(f, v)
            for r in 0..<count { p[r] = f[r] }
        }
    }

    @inline(__always)
    static func horizontalSum(_ v: __m256) -> Float {
        let s = _mm_add_ps(v.lowHalf, v.highHalf)
        return (s[0] + s[2]) + (s[1] + s[3])
    }

    /// out[i] = h[i] · x[i]
    @inline(__always)
    static func multiplyHalf(_ h: UnsafePointer<Float16>, _ x: UnsafePointer<Float>,
                             into out: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 8 <= count {
            let hv = _mm256_cvtph_ps(UnsafeRawPointer(h + i).loadUnaligned(as: __m128i.self))
            _mm256_storeu_ps(out + i, _mm256_mul_ps(hv, _mm256_loadu_ps(x + i)))
            i += 8
        }
        while i < count { out[i] = Float(h[i]) * x[i]; i += 1 }
    }

    /// y[i] += h[i] · p[i]
    @inline(__always)
    static func multiplyAddHalf(_ h: UnsafePointer<Float16>, _ p: UnsafePointer<Float>,
                                into y: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 8 <= count {
            let hv = _mm256_cvtph_ps(UnsafeRawPointer(h + i).loadUnaligned(as: __m128i.self))
            _mm256_storeu_ps(y + i, _mm256_fmadd_ps(hv, _mm256_loadu_ps(p + i), _mm256_loadu_ps(y + i)))
            i += 8
        }
        while i < count { y[i] += Float(h[i]) * p[i]; i += 1 }
    }

    /// `TierKernels.readBytes`: 32-byte loads, four chains.
    static func readBytes(_ p: UnsafeRawPointer, bytes: Int) -> UInt64 {
        var a = _mm256_setzero_si256(), b = a, c = a, d = a
        var i = 0
        while i + 128 <= bytes {
            a = _mm256_xor_si256(a, p.loadUnaligned(fromByteOffset: i, as: __m256i.self))
            b = _mm256_xor_si256(b, p.loadUnaligned(fromByteOffset: i + 32, as: __m256i.self))
            c = _mm256_xor_si256(c, p.loadUnaligned(fromByteOffset: i + 64, as: __m256i.self))
            d = _mm256_xor_si256(d, p.loadUnaligned(fromByteOffset: i + 96, as: __m256i.self))
            i += 128
        }
        while i + 32 <= bytes { a = _mm256_xor_si256(a, p.loadUnaligned(fromByteOffset: i, as: __m256i.self)); i += 32 }
        let v = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d))
        return UInt64(bitPattern: v[0] ^ v[1] ^ v[2] ^ v[3])
    }

    /// Eight group parameters (`GroupParameters`) at p as Floats (F16C converts Float16 ones).
    @inline(__always)
    static func load8(_ p: UnsafeRawPointer, half: Bool) -> __m256 {
        half ? _mm256_cvtph_ps(p.loadUnaligned(as: __m128i.self))
             : _mm256_loadu_ps(p.assumingMemoryBound(to: Float.self))
    }
}
