#if canImport(Glibc)
import Glibc
#endif
import _Builtin_intrinsics.intel
import LowBitCore

/// `Attention.attend` (module LowBitModel) on AVX2, for heads of a multiple of 8 floats: keys
/// and values are read as the cache holds them, Float16, and widened 8 at a time by `vcvtph2ps`.
enum AttentionAVX2 {
    /// Keys per block of the weighted sum: every query of the group reads a block's values
    /// (64 keys × a 64-value head = 8 KiB) from L1 after the first.
    static let valueBlock = 64

    /// Scores 8 keys at a time with 8 lane-wise accumulators reduced together by a tree of
    /// horizontal adds, every query of the group in turn on the same 8 keys (in L1 after the
    /// first); softmax with `ExponentialAVX2.exp8`; then the weighted sum of values in blocks of
    /// keys, 64 output floats of one query in 8 registers per pass over a block.
    static func attend(_ q: UnsafePointer<Float>, queries: Int, keys: UnsafePointer<Float16>,
                       values: UnsafePointer<Float16>, stride: Int, length: Int, dim: Int, scale: Float,
                       scores: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        @inline(__always) func load(_ h: UnsafePointer<Float16>) -> __m256 {
            _mm256_cvtph_ps(_mm_loadu_si128(UnsafeRawPointer(h).assumingMemoryBound(to: __m128i.self)))
        }
        let scaled = _mm256_set1_ps(scale)
        var t = 0
        while t + 8 <= length {
            let k = keys + t * stride
            for j in 0..<queries {
                let qj = q + j * dim
                var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
                for i in Swift.stride(from: 0, to: dim, by: 8) {
                    let qv = _mm256_loadu_ps(qj + i)
                    a0 = _mm256_fmadd_ps(qv, load(k + i), a0)
                    a1 = _mm256_fmadd_ps(qv, load(k + stride + i), a1)
                    a2 = _mm256_fmadd_ps(qv, load(k + 2 * stride + i), a2)
                    a3 = _mm256_fmadd_ps(qv, load(k + 3 * stride + i), a3)
                    a4 = _mm256_fmadd_ps(qv, load(k + 4 * stride + i), a4)
                    a5 = _mm256_fmadd_ps(qv, load(k + 5 * stride + i), a5)
                    a6 = _mm256_fmadd_ps(qv, load(k + 6 * stride + i), a6)
                    a7 = _mm256_fmadd_ps(qv, load(k + 7 * stride + i), a7)
                }
                // hadd pairs within 128-bit halves: after two rounds, g0 holds keys 0-3's partial
                // sums in its low half and their other partial sums in its high half (g1: keys 4-7).
                let g0 = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3))
                let g1 = _mm256_hadd_ps(_mm256_hadd_ps(a4, a5), _mm256_hadd_ps(a6, a7))
                let s = _mm256_mul_ps(__m256(lowHalf: _mm_add_ps(g0.lowHalf, g0.highHalf),
                                             highHalf: _mm_add_ps(g1.lowHalf, g1.highHalf)), scaled)
                _mm256_storeu_ps(scores + j * length + t, s)
            }
            t += 8
        }
        for j in 0..<queries {
            let qj = q + j * dim, sj = scores + j * length
            for u in t..<length {
                let k = keys + u * stride
                var acc = _mm256_setzero_ps()
                for i in Swift.stride(from: 0, to: dim, by: 8) { acc = _mm256_fmadd_ps(_mm256_loadu_ps(qj + i),
                    load(k + i), acc) }
                let s4 = _mm_add_ps(acc.lowHalf, acc.highHalf)
                sj[u] = ((s4[0] + s4[2]) + (s4[1] + s4[3])) * scale
            }
            softmax(sj, count: length)
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
                        var o0 = _mm256_loadu_ps(o), o1 = _mm256_loadu_ps(o + 8)
                        var o2 = _mm256_loadu_ps(o + 16), o3 = _mm256_loadu_ps(o + 24)
                        var o4 = _mm256_loadu_ps(o + 32), o5 = _mm256_loadu_ps(o + 40)
                        var o6 = _mm256_loadu_ps(o + 48), o7 = _mm256_loadu_ps(o + 56)
                        for u in first..<end {
                            let w = _mm256_set1_ps(sj[u]), vu = v + u * stride
                            o0 = _mm256_fmadd_ps(w, load(vu), o0)
                            o1 = _mm256_fmadd_ps(w, load(vu + 8), o1)
                            o2 = _mm256_fmadd_ps(w, load(vu + 16), o2)
                            o3 = _mm256_fmadd_ps(w, load(vu + 24), o3)
                            o4 = _mm256_fmadd_ps(w, load(vu + 32), o4)
                            o5 = _mm256_fmadd_ps(w, load(vu + 40), o5)
                            o6 = _mm256_fmadd_ps(w, load(vu + 48), o6)
                            o7 = _mm256_fmadd_ps(w, load(vu + 56), o7)
                        }
                        _mm256_storeu_ps(o, o0); _mm256_storeu_ps(o + 8, o1); _mm256_storeu_ps(o + 16,
                            o2); _mm256_storeu_ps(o + 24, o3)
                        _mm256_storeu_ps(o + 32, o4); _mm256_storeu_ps(o + 40, o5); _mm256_storeu_ps(o + 48,
                            o6); _mm256_storeu_ps(o + 56, o7)
                    } else {
                        for u in first..<end {
                            let w = _mm256_set1_ps(sj[u]), vu = v + u * stride
                            for i in Swift.stride(from: 0, to: width, by: 8) {
                                _mm256_storeu_ps(o + i, _mm256_fmadd_ps(w, load(vu + i),
                                                                        _mm256_loadu_ps(o + i)))
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
    static func softmax(_ s: UnsafeMutablePointer<Float>, count: Int) {
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
            let e = ExponentialAVX2.exp8(_mm256_sub_ps(_mm256_loadu_ps(s + t), topv))
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
}
