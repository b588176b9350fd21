import _Builtin_intrinsics.intel
import LowBitCPU
import LowBitCore

extension LUTTables {
    /// `buildScalar` for 8 k-groups at a time: their activations a, b, c, d = x₄ₖ..x₄ₖ₊₃ are
    /// transposed into one vector each, and entry i of all 8 tables is ((−d ± a) ± b) ± c with
    /// the signs of i's bits, in the order of `LUTTables.entry`, so both builders write the same
    /// bytes. After the group's scale is known, the rounded entries are transposed back to one
    /// 16-byte table per k-group, the mirrored half (entry 15 − i = −entry i) added by negation.
    func buildAVX2(_ x: UnsafePointer<Float>, into base: UnsafeMutableRawPointer) {
        let t = UnsafeMutableRawPointer(tables(base)), scales = tableScales(base), sums = groupSums(base)
        let blocksPerGroup = groupSize / 32  // 8 k-groups of 4 activations
        let absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF))
        // Bytes 4i + m of a lane (entry i of the lane's k-group m) to m-major order, and a
        // reversal of each 8-byte half (entries 7 ... 0 for the mirrored half).
        let entryMajor = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
                                          0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15)
        let reverse8 = _mm256_setr_epi8(7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8,
                                        7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8)
        withUnsafeTemporaryAllocation(of: __m256.self, capacity: 8 * blocksPerGroup) { buffer in
            let entries = buffer.baseAddress!
            for g in 0..<groups {
                let xg = x + g * groupSize
                var sum = _mm256_setzero_ps()
                for v in 0..<(groupSize / 8) { sum = _mm256_add_ps(sum, _mm256_loadu_ps(xg + 8 * v)) }
                var maxAbs = _mm256_setzero_ps()
                for block in 0..<blocksPerGroup {
                    // Lanes hold k-groups 0, 2, 4, 6 | 1, 3, 5, 7 of the block.
                    let x8 = xg + 32 * block
                    let v0 = _mm256_loadu_ps(x8), v1 = _mm256_loadu_ps(x8 + 8)
                    let v2 = _mm256_loadu_ps(x8 + 16), v3 = _mm256_loadu_ps(x8 + 24)
                    let ab01 = _mm256_castps_pd(_mm256_unpacklo_ps(v0, v1)),
                        cd01 = _mm256_castps_pd(_mm256_unpackhi_ps(v0, v1))
                    let ab23 = _mm256_castps_pd(_mm256_unpacklo_ps(v2, v3)),
                        cd23 = _mm256_castps_pd(_mm256_unpackhi_ps(v2, v3))
                    let a = _mm256_castpd_ps(_mm256_unpacklo_pd(ab01, ab23)),
                        b = _mm256_castpd_ps(_mm256_unpackhi_pd(ab01, ab23))
                    let c = _mm256_castpd_ps(_mm256_unpacklo_pd(cd01, cd23)),
                        d = _mm256_castpd_ps(_mm256_unpackhi_pd(cd01, cd23))
                    let minusD = _mm256_sub_ps(_mm256_setzero_ps(), d)
                    let u0 = _mm256_sub_ps(minusD, a), u1 = _mm256_add_ps(minusD, a)
                    let w = (_mm256_sub_ps(u0, b), _mm256_sub_ps(u1, b), _mm256_add_ps(u0, b), _mm256_add_ps(u1, b))
                    let e = entries + 8 * block
                    e[0] = _mm256_sub_ps(w.0, c); e[1] = _mm256_sub_ps(w.1, c)
                    e[2] = _mm256_sub_ps(w.2, c); e[3] = _mm256_sub_ps(w.3, c)
                    e[4] = _mm256_add_ps(w.0, c); e[5] = _mm256_add_ps(w.1, c)
                    e[6] = _mm256_add_ps(w.2, c); e[7] = _mm256_add_ps(w.3, c)
                    // A tree, not a chain of 8 dependent maxima.
                    @inline(__always) func abs2(_ i: Int) -> __m256 {
                        _mm256_max_ps(_mm256_and_ps(e[i], absMask), _mm256_and_ps(e[i + 1], absMask))
                    }
                    maxAbs = _mm256_max_ps(maxAbs,
                                           _mm256_max_ps(_mm256_max_ps(abs2(0), abs2(2)),
                                                         _mm256_max_ps(abs2(4), abs2(6))))
                }
                let m4 = _mm_max_ps(maxAbs.lowHalf, maxAbs.highHalf)
                let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4))
                let groupMax = max(m2[0], m2[1])
                let s4 = _mm_add_ps(sum.lowHalf, sum.highHalf)
                sums[g] = (s4[0] + s4[2]) + (s4[1] + s4[3])
                let scale = groupMax / 127
                scales[g] = scale
                let inverse = _mm256_set1_ps(scale > 0 ? 1 / scale : 0)
                for block in 0..<blocksPerGroup {
                    let e = entries + 8 * block
                    @inline(__always) func rounded(_ i: Int) -> __m256i {
                        _mm256_cvtps_epi32(_mm256_mul_ps(e[i], inverse))
                    }
                    // Per lane, byte 4i + m = entry i of k-group m (entries 0–3, then 4–7).
                    let low = _mm256_packs_epi16(_mm256_packs_epi32(rounded(0), rounded(1)),
                                                 _mm256_packs_epi32(rounded(2), rounded(3)))
                    let high = _mm256_packs_epi16(_mm256_packs_epi32(rounded(4), rounded(5)),
                                                  _mm256_packs_epi32(rounded(6), rounded(7)))
                    let l = _mm256_shuffle_epi8(low, entryMajor), h = _mm256_shuffle_epi8(high, entryMajor)
                    // Entries 0–7 of k-groups (0, 2 | 1, 3) and (4, 6 | 5, 7), 8 bytes each.
                    let first = _mm256_unpacklo_epi32(l, h), second = _mm256_unpackhi_epi32(l, h)
                    @inline(__always) func mirrored(_ v: __m256i) -> __m256i {
                        _mm256_shuffle_epi8(_mm256_sub_epi8(_mm256_setzero_si256(), v), reverse8)
                    }
                    let mirrorFirst = mirrored(first), mirrorSecond = mirrored(second)
                    // Whole tables: k-groups 0 | 1, 2 | 3, 4 | 5, 6 | 7.
                    let out = t + 16 * (g * groupSize / 4 + 8 * block)
                    out.storeBytes(of: _mm256_unpacklo_epi64(first, mirrorFirst), as: __m256i.self)
                    (out + 32).storeBytes(of: _mm256_unpackhi_epi64(first, mirrorFirst), as: __m256i.self)
                    (out + 64).storeBytes(of: _mm256_unpacklo_epi64(second, mirrorSecond), as: __m256i.self)
                    (out + 96).storeBytes(of: _mm256_unpackhi_epi64(second, mirrorSecond), as: __m256i.self)
                }
            }
        }
    }
}
