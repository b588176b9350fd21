#if LOWBIT_AVX2
import _Builtin_intrinsics.intel

/// The LUT family on AVX2: the sums of `LUTKernel.portable`, 32 lookups per `vpshufb`, on the
/// `LUTLayout` permutation. Lookups are int8 tables biased to UInt8 (T + 128) so that
/// `vpmaddubsw` with bytes (1, 2) adds a plane pair of one row (or `vpunpck*bw` widens a lone
/// plane) into int16; the bias is a constant per group, removed when the group is flushed.
/// Int16 stays far from overflow: per group at most (G/8)·765 per lane, 24480 for G = 128.
enum LUTKernelAVX2 {
    /// y[r] for the rows of `blocks` (16 per block, rows past `rows` dropped), one activation row.
    static func run(_ layout: LUTLayout, groupSize: Int, rows: Int, tables: LUTTables,
                    tableBase: UnsafeMutableRawPointer, y: UnsafeMutablePointer<Float>, blocks: Range<Int>) {
        switch layout.bits {
        case 1: body(bits: 1, layout, groupSize, rows, tables, tableBase, y, blocks)
        case 2: body(bits: 2, layout, groupSize, rows, tables, tableBase, y, blocks)
        case 3: body(bits: 3, layout, groupSize, rows, tables, tableBase, y, blocks)
        default: body(bits: 4, layout, groupSize, rows, tables, tableBase, y, blocks)
        }
    }

    @inline(__always)
    static func load(_ p: UnsafeRawPointer) -> __m256i { p.loadUnaligned(as: __m256i.self) }

    /// Adds the two 128-bit lanes of an int16 accumulator (the two k-group parities) and widens
    /// the 8 row sums to int32.
    @inline(__always)
    static func laneSum(_ a: __m256i) -> __m256i { _mm256_cvtepi16_epi32(_mm_add_epi16(a.lowHalf, a.highHalf)) }

    @inline(__always)
    static func body(bits: Int, _ layout: LUTLayout, _ groupSize: Int, _ rows: Int, _ tables: LUTTables,
                     _ tableBase: UnsafeMutableRawPointer, _ y: UnsafeMutablePointer<Float>, _ blocks: Range<Int>) {
        let mask = _mm256_set1_epi8(0x0F)
        let planePair = _mm256_set1_epi16(0x0201)  // bytes (1, 2): plane p + 2·plane p+1
        let zero = _mm256_setzero_si256()
        let groups = tables.groups, chunksPerGroup = groupSize / 16
        // Bias per row and group: (G/4) k-groups × 128 × (1 + 2) for a pair, × 1 for a lone plane.
        let pairBias = _mm256_set1_epi32(Int32(96 * groupSize))
        let loneBias = _mm256_set1_epi32(Int32(32 * groupSize))
        let ts = tables.tableScales(tableBase), sx = tables.groupSums(tableBase)
        let params = layout.params.floats()
        let codes = UnsafeRawPointer(layout.codes.pointer)
        let blockBytes = layout.blockCodeBytes
        for block in blocks {
            var y0 = _mm256_setzero_ps(), y1 = _mm256_setzero_ps()
            var w = codes + block * blockBytes
            var tab = UnsafeRawPointer(tables.tables(tableBase))
            for g in 0..<groups {
                var a0 = zero, a1 = zero, a2 = zero, a3 = zero
                for _ in 0..<chunksPerGroup {
                    let tlo = load(tab), thi = load(tab + 32)
                    tab += 64
                    if bits >= 2 {
                        let v0 = load(w), v1 = load(w + 32)
                        w += 64
                        a0 = _mm256_add_epi16(a0, _mm256_add_epi16(
                            _mm256_maddubs_epi16(_mm256_shuffle_epi8(tlo, _mm256_and_si256(v0, mask)), planePair),
                            _mm256_maddubs_epi16(_mm256_shuffle_epi8(thi, _mm256_and_si256(_mm256_srli_epi16(v0, 4), mask)), planePair)))
                        a1 = _mm256_add_epi16(a1, _mm256_add_epi16(
                            _mm256_maddubs_epi16(_mm256_shuffle_epi8(tlo, _mm256_and_si256(v1, mask)), planePair),
                            _mm256_maddubs_epi16(_mm256_shuffle_epi8(thi, _mm256_and_si256(_mm256_srli_epi16(v1, 4), mask)), planePair)))
                    }
                    if bits == 4 {
                        let v2 = load(w), v3 = load(w + 32)
                        w += 64
                        a2 = _mm256_add_epi16(a2, _mm256_add_epi16(
                            _mm256_maddubs_epi16(_mm256_shuffle_epi8(tlo, _mm256_and_si256(v2, mask)), planePair),
                            _mm256_maddubs_epi16(_mm256_shuffle_epi8(thi, _mm256_and_si256(_mm256_srli_epi16(v2, 4), mask)), planePair)))
                        a3 = _mm256_add_epi16(a3, _mm256_add_epi16(
                            _mm256_maddubs_epi16(_mm256_shuffle_epi8(tlo, _mm256_and_si256(v3, mask)), planePair),
                            _mm256_maddubs_epi16(_mm256_shuffle_epi8(thi, _mm256_and_si256(_mm256_srli_epi16(v3, 4), mask)), planePair)))
                    }
                    if bits % 2 == 1 {
                        let v = load(w)
                        w += 32
                        let lo = _mm256_shuffle_epi8(tlo, _mm256_and_si256(v, mask))
                        let hi = _mm256_shuffle_epi8(thi, _mm256_and_si256(_mm256_srli_epi16(v, 4), mask))
                        a2 = _mm256_add_epi16(a2, _mm256_add_epi16(_mm256_unpacklo_epi8(lo, zero), _mm256_unpacklo_epi8(hi, zero)))
                        a3 = _mm256_add_epi16(a3, _mm256_add_epi16(_mm256_unpackhi_epi8(lo, zero), _mm256_unpackhi_epi8(hi, zero)))
                    }
                }
                // Σₚ 2ᵖ·Lₚ for rows 0..<8 (t0) and 8..<16 (t1).
                var t0: __m256i, t1: __m256i
                switch bits {
                case 1:
                    t0 = _mm256_sub_epi32(laneSum(a2), loneBias)
                    t1 = _mm256_sub_epi32(laneSum(a3), loneBias)
                case 2:
                    t0 = _mm256_sub_epi32(laneSum(a0), pairBias)
                    t1 = _mm256_sub_epi32(laneSum(a1), pairBias)
                case 3:
                    t0 = _mm256_add_epi32(_mm256_sub_epi32(laneSum(a0), pairBias),
                                          _mm256_slli_epi32(_mm256_sub_epi32(laneSum(a2), loneBias), 2))
                    t1 = _mm256_add_epi32(_mm256_sub_epi32(laneSum(a1), pairBias),
                                          _mm256_slli_epi32(_mm256_sub_epi32(laneSum(a3), loneBias), 2))
                default:
                    t0 = _mm256_add_epi32(_mm256_sub_epi32(laneSum(a0), pairBias),
                                          _mm256_slli_epi32(_mm256_sub_epi32(laneSum(a2), pairBias), 2))
                    t1 = _mm256_add_epi32(_mm256_sub_epi32(laneSum(a1), pairBias),
                                          _mm256_slli_epi32(_mm256_sub_epi32(laneSum(a3), pairBias), 2))
                }
                let p = params + (block * groups + g) * 32
                let scale = _mm256_set1_ps(ts[g]), sum = _mm256_set1_ps(sx[g])
                y0 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(p), scale), _mm256_cvtepi32_ps(t0), y0)
                y1 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(p + 8), scale), _mm256_cvtepi32_ps(t1), y1)
                y0 = _mm256_fmadd_ps(_mm256_loadu_ps(p + 16), sum, y0)
                y1 = _mm256_fmadd_ps(_mm256_loadu_ps(p + 24), sum, y1)
            }
            let first = block * LUTLayout.rowsPerBlock
            if first + 16 <= rows {
                _mm256_storeu_ps(y + first, y0)
                _mm256_storeu_ps(y + first + 8, y1)
            } else {
                var tail = (SIMD8<Float>(), SIMD8<Float>())
                withUnsafeMutableBytes(of: &tail) { raw in
                    let f = raw.bindMemory(to: Float.self).baseAddress!
                    _mm256_storeu_ps(f, y0)
                    _mm256_storeu_ps(f + 8, y1)
                    for i in 0..<(rows - first) { y[first + i] = f[i] }
                }
            }
        }
    }
}
#endif
