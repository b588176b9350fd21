#if canImport(Glibc)
import Glibc
#endif
#if LOWBIT_AVX2
import _Builtin_intrinsics.intel
#endif
import LowBit

/// Causal attention of the query heads that share one key/value head (grouped-query attention):
///   outⱼ = Σₜ softmax(scale · qⱼ·kₜ)ₜ · vₜ  for t < length and j < queries,
/// where qⱼ = q + j·dim and outⱼ = out + j·dim, kₜ = keys + t·stride and vₜ = values + t·stride
/// each hold `dim` floats, and `scores` has room for queries·length floats.
enum Attention {
    static func attend(_ q: UnsafePointer<Float>, queries: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, stride: Int,
                       length: Int, dim: Int, scale: Float, scores: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        #if LOWBIT_AVX2
        if Runtime.useAVX2, dim % 8 == 0 {
            return attendAVX2(q, queries: queries, keys: keys, values: values, stride: stride, length: length, dim: dim, scale: scale,
                              scores: scores, into: out)
        }
        #endif
        for j in 0..<queries {
            attendPortable(q + j * dim, keys: keys, values: values, stride: stride, length: length, dim: dim, scale: scale,
                           scores: scores + j * length, into: out + j * dim)
        }
    }

    /// The formula as written for one query, 8 lanes at a time where `dim` allows.
    static func attendPortable(_ q: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, stride: Int,
                               length: Int, dim: Int, scale: Float, scores: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        // A scalar sum is a serial chain the compiler may not reorder: 8 lanes where dim allows
        // (multiply, then add: a fused `addProduct` is a libm `fmaf` call per lane without FMA).
        let wide = dim % 8 == 0
        var maxScore = -Float.infinity
        for t in 0..<length {
            let k = keys + t * stride
            var s: Float = 0
            if wide {
                var acc = SIMD8<Float>()
                for i in Swift.stride(from: 0, to: dim, by: 8) {
                    acc += UnsafeRawPointer(q + i).loadUnaligned(as: SIMD8<Float>.self)
                         * UnsafeRawPointer(k + i).loadUnaligned(as: SIMD8<Float>.self)
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
                    o += SIMD8(repeating: w) * UnsafeRawPointer(v + i).loadUnaligned(as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(out + i).storeBytes(of: o, as: SIMD8<Float>.self)
                }
            } else {
                for i in 0..<dim { out[i] += w * v[i] }
            }
        }
    }

    #if LOWBIT_AVX2
    /// Keys per block of the weighted sum: every query of the group reads a block's values
    /// (64 keys × a 64-float head = 16 KiB) from L1 after the first.
    static let valueBlock = 64

    /// Scores 8 keys at a time with 8 lane-wise accumulators reduced together by a tree of
    /// horizontal adds, every query of the group in turn on the same 8 keys (in L1 after the
    /// first); softmax with `Exponential.exp8`; then the weighted sum of values in blocks of
    /// keys, 64 output floats of one query in 8 registers per pass over a block.
    static func attendAVX2(_ q: UnsafePointer<Float>, queries: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, stride: Int,
                           length: Int, dim: Int, scale: Float, scores: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        let scaled = _mm256_set1_ps(scale)
        var t = 0
        while t + 8 <= length {
            let k = keys + t * stride
            for j in 0..<queries {
                let qj = q + j * dim
                var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
                for i in Swift.stride(from: 0, to: dim, by: 8) {
                    let qv = _mm256_loadu_ps(qj + i)
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
                _mm256_storeu_ps(scores + j * length + t, s)
            }
            t += 8
        }
        for j in 0..<queries {
            let qj = q + j * dim, sj = scores + j * length
            for u in t..<length {
                let k = keys + u * stride
                var acc = _mm256_setzero_ps()
                for i in Swift.stride(from: 0, to: dim, by: 8) { acc = _mm256_fmadd_ps(_mm256_loadu_ps(qj + i), _mm256_loadu_ps(k + i), acc) }
                let s4 = _mm_add_ps(acc.lowHalf, acc.highHalf)
                sj[u] = ((s4[0] + s4[2]) + (s4[1] + s4[3])) * scale
            }
            softmaxAVX2(sj, count: length)
        }
        for j in 0..<queries * dim { out[j] = 0 }
        for first in Swift.stride(from: 0, to: length, by: valueBlock) {
            let end = min(first + valueBlock, length)
            for j in 0..<queries {
                let sj = scores + j * length
                var start = 0
                while start < dim {
                    let width = min(64, dim - start)
                    let v = values + start, o = out + j * dim + start
                    if width == 64 {
                        var o0 = _mm256_loadu_ps(o), o1 = _mm256_loadu_ps(o + 8), o2 = _mm256_loadu_ps(o + 16), o3 = _mm256_loadu_ps(o + 24)
                        var o4 = _mm256_loadu_ps(o + 32), o5 = _mm256_loadu_ps(o + 40), o6 = _mm256_loadu_ps(o + 48), o7 = _mm256_loadu_ps(o + 56)
                        for u in first..<end {
                            let w = _mm256_set1_ps(sj[u]), vu = v + u * stride
                            o0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vu), o0)
                            o1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vu + 8), o1)
                            o2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vu + 16), o2)
                            o3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vu + 24), o3)
                            o4 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vu + 32), o4)
                            o5 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vu + 40), o5)
                            o6 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vu + 48), o6)
                            o7 = _mm256_fmadd_ps(w, _mm256_loadu_ps(vu + 56), o7)
                        }
                        _mm256_storeu_ps(o, o0); _mm256_storeu_ps(o + 8, o1); _mm256_storeu_ps(o + 16, o2); _mm256_storeu_ps(o + 24, o3)
                        _mm256_storeu_ps(o + 32, o4); _mm256_storeu_ps(o + 40, o5); _mm256_storeu_ps(o + 48, o6); _mm256_storeu_ps(o + 56, o7)
                    } else {
                        for u in first..<end {
                            let w = _mm256_set1_ps(sj[u]), vu = v + u * stride
                            for i in Swift.stride(from: 0, to: width, by: 8) {
                                _mm256_storeu_ps(o + i, _mm256_fmadd_ps(w, _mm256_loadu_ps(vu + i), _mm256_loadu_ps(o + i)))
                            }
                        }
                    }
                    start += width
                }
            }
        }
    }

    /// s ← softmax(s) in place: the weights of the value sum, normalized here so that the sum
    /// needs no division after it.
    static func softmaxAVX2(_ s: UnsafeMutablePointer<Float>, count: Int) {
        var maxima = _mm256_set1_ps(-Float.infinity)
        var t = 0
        while t + 8 <= count { maxima = _mm256_max_ps(maxima, _mm256_loadu_ps(s + t)); t += 8 }
        let m4 = _mm_max_ps(maxima.lowHalf, maxima.highHalf)
        var top = max(max(m4[0], m4[1]), max(m4[2], m4[3]))
        for u in t..<count { top = max(top, s[u]) }
        let topv = _mm256_set1_ps(top)
        var sums = _mm256_setzero_ps()
        t = 0
        while t + 8 <= count {
            let e = Exponential.exp8(_mm256_sub_ps(_mm256_loadu_ps(s + t), topv))
            _mm256_storeu_ps(s + t, e)
            sums = _mm256_add_ps(sums, e)
            t += 8
        }
        let s4 = _mm_add_ps(sums.lowHalf, sums.highHalf)
        var total = (s4[0] + s4[2]) + (s4[1] + s4[3])
        for u in t..<count { s[u] = exp(s[u] - top); total += s[u] }
        let inverse = 1 / total, inverses = _mm256_set1_ps(inverse)
        t = 0
        while t + 8 <= count { _mm256_storeu_ps(s + t, _mm256_mul_ps(_mm256_loadu_ps(s + t), inverses)); t += 8 }
        for u in t..<count { s[u] *= inverse }
    }
    #endif
}
