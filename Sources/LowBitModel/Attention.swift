#if canImport(Glibc)
import Glibc
#endif
#if LOWBIT_AVX2
import _Builtin_intrinsics.intel
#endif
import LowBit

/// One query's causal attention over the cached keys and values of its head:
///   out = Σₜ softmax(scale · q·kₜ)ₜ · vₜ  for t < length,
/// where kₜ = keys + t·stride and vₜ = values + t·stride each hold `dim` floats, and `scores`
/// has room for `length` floats.
enum Attention {
    static func attend(_ q: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, stride: Int,
                       length: Int, dim: Int, scale: Float, scores: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        #if LOWBIT_AVX2
        if Runtime.useAVX2, dim % 8 == 0 {
            return attendAVX2(q, keys: keys, values: values, stride: stride, length: length, dim: dim, scale: scale, scores: scores, into: out)
        }
        #endif
        attendPortable(q, keys: keys, values: values, stride: stride, length: length, dim: dim, scale: scale, scores: scores, into: out)
    }

    /// The formula as written, 8 lanes at a time where `dim` allows.
    static func attendPortable(_ q: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, stride: Int,
                               length: Int, dim: Int, scale: Float, scores: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        // A scalar sum is a serial chain the compiler may not reorder: 8 lanes where dim allows.
        let wide = dim % 8 == 0
        var maxScore = -Float.infinity
        for t in 0..<length {
            let k = keys + t * stride
            var s: Float = 0
            if wide {
                var acc = SIMD8<Float>()
                for i in Swift.stride(from: 0, to: dim, by: 8) {
                    acc.addProduct(UnsafeRawPointer(q + i).loadUnaligned(as: SIMD8<Float>.self),
                                   UnsafeRawPointer(k + i).loadUnaligned(as: SIMD8<Float>.self))
                }
                s = acc.sum()
            } else {
                for i in 0..<dim { s += q[i] * k[i] }
            }
            scores[t] = s * scale
            maxScore = max(maxScore, scores[t])
        }
        var total: Float = 0
        for t in 0..<length { scores[t] = exp(scores[t] - maxScore); total += scores[t] }
        for i in 0..<dim { out[i] = 0 }
        for t in 0..<length {
            let w = scores[t] / total, v = values + t * stride
            if wide {
                for i in Swift.stride(from: 0, to: dim, by: 8) {
                    var o = UnsafeRawPointer(out + i).loadUnaligned(as: SIMD8<Float>.self)
                    o.addProduct(SIMD8(repeating: w), UnsafeRawPointer(v + i).loadUnaligned(as: SIMD8<Float>.self))
                    UnsafeMutableRawPointer(out + i).storeBytes(of: o, as: SIMD8<Float>.self)
                }
            } else {
                for i in 0..<dim { out[i] += w * v[i] }
            }
        }
    }

    #if LOWBIT_AVX2
    /// Scores 8 keys at a time: 8 lane-wise accumulators reduced together by a tree of
    /// horizontal adds (one reduction per 8 keys, not one per key). The weighted sum of values
    /// keeps 64 output floats in 8 registers per pass over the keys.
    static func attendAVX2(_ q: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, stride: Int,
                           length: Int, dim: Int, scale: Float, scores: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        var t = 0
        var maxima = _mm256_set1_ps(-Float.infinity)
        let scaled = _mm256_set1_ps(scale)
        while t + 8 <= length {
            let k = keys + t * stride
            var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
            for i in Swift.stride(from: 0, to: dim, by: 8) {
                let qv = _mm256_loadu_ps(q + i)
                a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + i), a0)
                a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + stride + i), a1)
                a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + 2 * stride + i), a2)
                a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + 3 * stride + i), a3)
                a4 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + 4 * stride + i), a4)
                a5 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + 5 * stride + i), a5)
                a6 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + 6 * stride + i), a6)
                a7 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + 7 * stride + i), a7)
            }
            // hadd pairs within 128-bit halves: after two rounds, g0 holds keys 0-3's partial
            // sums in its low half and their other partial sums in its high half (g1: keys 4-7).
            let g0 = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3))
            let g1 = _mm256_hadd_ps(_mm256_hadd_ps(a4, a5), _mm256_hadd_ps(a6, a7))
            let s = _mm256_mul_ps(__m256(lowHalf: _mm_add_ps(g0.lowHalf, g0.highHalf), highHalf: _mm_add_ps(g1.lowHalf, g1.highHalf)), scaled)
            _mm256_storeu_ps(scores + t, s)
            maxima = _mm256_max_ps(maxima, s)
            t += 8
        }
        let m4 = _mm_max_ps(maxima.lowHalf, maxima.highHalf)
        var maxScore = max(max(m4[0], m4[1]), max(m4[2], m4[3]))
        while t < length {
            let k = keys + t * stride
            var acc = _mm256_setzero_ps()
            for i in Swift.stride(from: 0, to: dim, by: 8) { acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(k + i), acc) }
            let s4 = _mm_add_ps(acc.lowHalf, acc.highHalf)
            scores[t] = ((s4[0] + s4[2]) + (s4[1] + s4[3])) * scale
            maxScore = max(maxScore, scores[t])
            t += 1
        }
        var total: Float = 0
        for t in 0..<length { scores[t] = exp(scores[t] - maxScore); total += scores[t] }
        let inverse = 1 / total
        var start = 0
        while start < dim {
            // 64 output floats (or the rest of dim) in registers over every key.
            let width = min(64, dim - start)
            var o0 = _mm256_setzero_ps(), o1 = o0, o2 = o0, o3 = o0, o4 = o0, o5 = o0, o6 = o0, o7 = o0
            let v = values + start
            if width == 64 {
                for t in 0..<length {
                    let w = _mm256_set1_ps(scores[t]), vt = v + t * stride
                    o0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vt), o0)
                    o1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vt + 8), o1)
                    o2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vt + 16), o2)
                    o3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vt + 24), o3)
                    o4 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vt + 32), o4)
                    o5 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vt + 40), o5)
                    o6 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vt + 48), o6)
                    o7 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vt + 56), o7)
                }
                let n = _mm256_set1_ps(inverse), o = out + start
                _mm256_storeu_ps(o, _mm256_mul_ps(o0, n)); _mm256_storeu_ps(o + 8, _mm256_mul_ps(o1, n))
                _mm256_storeu_ps(o + 16, _mm256_mul_ps(o2, n)); _mm256_storeu_ps(o + 24, _mm256_mul_ps(o3, n))
                _mm256_storeu_ps(o + 32, _mm256_mul_ps(o4, n)); _mm256_storeu_ps(o + 40, _mm256_mul_ps(o5, n))
                _mm256_storeu_ps(o + 48, _mm256_mul_ps(o6, n)); _mm256_storeu_ps(o + 56, _mm256_mul_ps(o7, n))
            } else {
                let o = out + start
                for i in Swift.stride(from: 0, to: width, by: 8) { _mm256_storeu_ps(o + i, _mm256_setzero_ps()) }
                for t in 0..<length {
                    let w = _mm256_set1_ps(scores[t] * inverse), vt = v + t * stride
                    for i in Swift.stride(from: 0, to: width, by: 8) {
                        _mm256_storeu_ps(o + i, _mm256_fmadd_ps(w, _mm256_loadu_ps(vt + i), _mm256_loadu_ps(o + i)))
                    }
                }
            }
            start += width
        }
    }
    #endif
}
