import _Builtin_intrinsics.intel
import LowBitCore

extension Int8Activations {
    /// `quantizeScalar`'s arithmetic on 8 lanes: the same max, the same x·(1/sa) product, the
    /// same round-half-even (the conversion's, in the default rounding mode every float
    /// operation here assumes) and clamp, so every byte, scale and sum is equal. The decode loop
    /// of a dequant-family model spent 15% of its time in the scalar version (its rounding is a
    /// library call per activation).
    func quantizeAVX2(_ x: UnsafePointer<Float>, into base: UnsafeMutableRawPointer) {
        let q = codes(base), sa = scales(base), s = sums(base), limit = self.limit
        let magnitude = _mm256_set1_epi32(0x7FFF_FFFF), infinity = _mm256_set1_epi32(0x7F80_0000)
        let high = _mm256_set1_epi32(Int32(limit)), low = _mm256_set1_epi32(-Int32(limit))
        // Dwords (4 codes) of two packs, back in order: a0 a1 b0 b1 c0 c1 d0 d1.
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)
        for g in 0..<groups {
            let xg = x + g * groupSize
            var m = _mm256_setzero_ps()
            for k in stride(from: 0, to: groupSize, by: 8) {
                // |x| first: `maxps` returns its second operand when either is NaN, so a NaN is
                // skipped as the scalar max skips it.
                m = _mm256_max_ps(_mm256_castsi256_ps(_mm256_and_si256(_mm256_castps_si256(_mm256_loadu_ps(xg + k)),
                                                                       magnitude)), m)
            }
            let m4 = _mm_max_ps(m.lowHalf, m.highHalf)
            let maxAbs = max(max(m4[0], m4[1]), max(m4[2], m4[3]))
            let scale = maxAbs / limit
            let inverse: Float = scale > 0 ? 1 / scale : 0
            let inv = _mm256_set1_ps(inverse)
            var sum = _mm256_setzero_si256()
            for k in stride(from: 0, to: groupSize, by: 32) {
                @inline(__always) func rounded(_ i: Int) -> __m256i {
                    let v = _mm256_mul_ps(_mm256_loadu_ps(xg + k + 8 * i), inv)
                    let r = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(v), low), high)
                    let isNaN = _mm256_cmpgt_epi32(_mm256_and_si256(_mm256_castps_si256(v), magnitude), infinity)
                    return _mm256_andnot_si256(isNaN, r)  // NaN → 0, as the scalar version
                }
                let a = rounded(0), b = rounded(1), c = rounded(2), d = rounded(3)
                sum = _mm256_add_epi32(sum, _mm256_add_epi32(_mm256_add_epi32(a, b), _mm256_add_epi32(c, d)))
                let packed = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d))
                UnsafeMutableRawPointer(q + g * groupSize
                    + k).storeBytes(of: _mm256_permutevar8x32_epi32(packed, order), as: __m256i.self)
            }
            let s4 = _mm_add_epi32(sum.lowHalf, sum.highHalf)
            let lanes = unsafeBitCast(s4, to: SIMD4<Int32>.self)
            sa[g] = scale
            s[g] = (lanes[0] &+ lanes[1]) &+ (lanes[2] &+ lanes[3])
        }
    }
}
