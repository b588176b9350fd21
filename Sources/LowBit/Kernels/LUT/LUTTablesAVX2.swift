#if LOWBIT_AVX2
import _Builtin_intrinsics.intel

extension LUTTables {
    /// `buildScalar` with 8 table entries per vector: per k-group, entries 0..<8 (x₃ negative)
    /// and 8..<16 (x₃ positive) as sign-patterned sums of a, b, c, d = x₄ₖ..x₄ₖ₊₃, in the order
    /// of `LUTTables.entry` ((±d ± a) ± b) ± c, so both builders write the same bytes.
    func buildAVX2(_ x: UnsafePointer<Float>, into base: UnsafeMutableRawPointer, biased: Bool) {
        let t = UnsafeMutableRawPointer(tables(base)), scales = tableScales(base), sums = groupSums(base)
        let kgroupsPerGroup = groupSize / 4
        let signA = _mm256_setr_ps(-1, 1, -1, 1, -1, 1, -1, 1)
        let signB = _mm256_setr_ps(-1, -1, 1, 1, -1, -1, 1, 1)
        let signC = _mm256_setr_ps(-1, -1, -1, -1, 1, 1, 1, 1)
        let absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF))
        let bias = _mm_set1_epi8(biased ? -128 : 0)
        let quarterOrder = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7)
        withUnsafeTemporaryAllocation(of: __m256.self, capacity: 2 * 32) { entries in
            for g in 0..<groups {
                var maxAbs = _mm256_setzero_ps(), sum = _mm256_setzero_ps()
                let xg = x + g * groupSize
                for v in 0..<(groupSize / 8) { sum = _mm256_add_ps(sum, _mm256_loadu_ps(xg + 8 * v)) }
                for j in 0..<kgroupsPerGroup {
                    let x4 = xg + 4 * j
                    let a = _mm256_broadcast_ss(x4), b = _mm256_broadcast_ss(x4 + 1)
                    let c = _mm256_broadcast_ss(x4 + 2), d = _mm256_broadcast_ss(x4 + 3)
                    let low = _mm256_fmadd_ps(c, signC, _mm256_fmadd_ps(b, signB, _mm256_fmadd_ps(a, signA, _mm256_sub_ps(_mm256_setzero_ps(), d))))
                    let high = _mm256_fmadd_ps(c, signC, _mm256_fmadd_ps(b, signB, _mm256_fmadd_ps(a, signA, d)))
                    entries[2 * j] = low
                    entries[2 * j + 1] = high
                    maxAbs = _mm256_max_ps(maxAbs, _mm256_and_ps(low, absMask))
                }
                let m4 = _mm_max_ps(maxAbs.lowHalf, maxAbs.highHalf)
                let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4))
                let groupMax = max(m2[0], m2[1])
                let s4 = _mm_add_ps(sum.lowHalf, sum.highHalf)
                sums[g] = (s4[0] + s4[2]) + (s4[1] + s4[3])
                let scale = groupMax / 127
                scales[g] = scale
                let inverse = _mm256_set1_ps(scale > 0 ? 1 / scale : 0)
                for j in 0..<kgroupsPerGroup {
                    let low = _mm256_cvtps_epi32(_mm256_mul_ps(entries[2 * j], inverse))
                    let high = _mm256_cvtps_epi32(_mm256_mul_ps(entries[2 * j + 1], inverse))
                    // int32 → int16 per lane gives [l0..l3 h0..h3 | l4..l7 h4..h7]; reorder the
                    // 64-bit quarters to l0..l7 h0..h7, then → int8.
                    let words = _mm256_permutevar8x32_epi32(_mm256_packs_epi32(low, high), quarterOrder)
                    let bytes = _mm_xor_si128(_mm_packs_epi16(words.lowHalf, words.highHalf), bias)
                    (t + 16 * (g * kgroupsPerGroup + j)).storeBytes(of: bytes, as: __m128i.self)
                }
            }
        }
    }
}
#endif
