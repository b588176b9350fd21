#if LOWBIT_AVX2
import _Builtin_intrinsics.intel

/// The bit-serial family on AVX2: per 256-column chunk, weight plane i against activation plane
/// j by AND and a nibble-`vpshufb` popcount, 32 bytes at a time. The AND is done per nibble (the
/// activations come pre-split into nibble bytes, the weight is split once per chunk), and the
/// lookup tables hold popcount·2^j (−popcount·2^(A−1) for the top plane), so the weighted
/// popcounts of up to four planes add up in one byte: A = 2 and 4 need one such byte sum,
/// A = 8 two (planes 0–3, at most 120; planes 4–7, −64 … 56, worth 16×). `vpmaddubsw` by ones
/// and a shift by i sum the weight planes in int16, and `vpmaddwd` widens to one Int32 per 32
/// columns, which the group scales, expanded to those lanes, turn into floats: y += d·sa·Σq·qa.
/// The offsets' term m·sa·Σqa does not involve the codes and is added once per row from
/// per-group terms.
enum BitSerialKernelAVX2 {
    @inline(__always)
    static func load(_ p: UnsafeRawPointer) -> __m256i { p.loadUnaligned(as: __m256i.self) }

    /// Planes by `vpmovmskb` (bit j of each int8 shifted to the top), then the nibble split.
    static func writePlanes(_ acts: BitSerialActivations, _ base: UnsafeMutableRawPointer) {
        let q = UnsafeRawPointer(acts.ints.codes(base)), planes = UnsafeMutableRawPointer(acts.planes(base))
        let nib = UnsafeMutableRawPointer(acts.nibbles(base)), stride = acts.planeStride
        for i in 0..<(acts.bits * stride) { planes.storeBytes(of: 0, toByteOffset: i, as: UInt8.self) }
        for block in 0..<(acts.cols / 32) {
            let v = load(q + 32 * block)
            for j in 0..<acts.bits {
                let bitsOfJ = _mm256_movemask_epi8(_mm256_sll_epi16(v, _mm_cvtsi32_si128(Int32(7 - j))))
                planes.storeBytes(of: bitsOfJ, toByteOffset: j * stride + 4 * block, as: Int32.self)
            }
        }
        let mask = _mm256_set1_epi8(0x0F)
        for j in 0..<acts.bits {
            for c in 0..<acts.chunks {
                let v = load(planes + j * stride + 32 * c)
                (nib + 2 * j * stride + 32 * c).storeBytes(of: _mm256_and_si256(v, mask), as: __m256i.self)
                (nib + (2 * j + 1) * stride + 32 * c).storeBytes(of: _mm256_and_si256(_mm256_srli_epi16(v, 4), mask), as: __m256i.self)
            }
        }
    }

    /// y[i·rows + r] for r in `rowRange`, i in 0..<n; prepared activation row i at actBase + i·actStride.
    static func run(_ layout: BitSerialLayout, groupSize: Int, acts: BitSerialActivations, n: Int, rows: Int,
                    actBase: UnsafeMutableRawPointer, actStride: Int, y: UnsafeMutablePointer<Float>, rowRange: Range<Int>) {
        switch layout.bits {
        case 1: run(Static1.self, layout, groupSize, acts, n, rows, actBase, actStride, y, rowRange)
        case 2: run(Static2.self, layout, groupSize, acts, n, rows, actBase, actStride, y, rowRange)
        case 3: run(Static3.self, layout, groupSize, acts, n, rows, actBase, actStride, y, rowRange)
        case 4: run(Static4.self, layout, groupSize, acts, n, rows, actBase, actStride, y, rowRange)
        default: run(Static5.self, layout, groupSize, acts, n, rows, actBase, actStride, y, rowRange)  // 4-bit mixed value codes
        }
    }

    /// `run` for one weight width: the activation width is chosen here, so each pair gets its own copy.
    static func run<WeightBits: StaticInt>(_: WeightBits.Type, _ layout: BitSerialLayout, _ groupSize: Int,
                                           _ acts: BitSerialActivations, _ n: Int, _ rows: Int, _ actBase: UnsafeMutableRawPointer,
                                           _ actStride: Int, _ y: UnsafeMutablePointer<Float>, _ rowRange: Range<Int>) {
        switch acts.bits {
        case 2: body(WeightBits.self, Static2.self, layout, groupSize, acts, n, rows, actBase, actStride, y, rowRange)
        case 4: body(WeightBits.self, Static4.self, layout, groupSize, acts, n, rows, actBase, actStride, y, rowRange)
        default: body(WeightBits.self, Static8.self, layout, groupSize, acts, n, rows, actBase, actStride, y, rowRange)
        }
    }

    @inline(__always)
    static func body<WeightBits: StaticInt, ActBits: StaticInt>(_: WeightBits.Type, _: ActBits.Type, _ layout: BitSerialLayout, _ groupSize: Int,
                     _ acts: BitSerialActivations, _ n: Int, _ rows: Int, _ actBase: UnsafeMutableRawPointer,
                     _ actStride: Int, _ y: UnsafeMutablePointer<Float>, _ rowRange: Range<Int>) {
        let weightBits = WeightBits.value, actBits = ActBits.value
        let ones = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1)
        let t1 = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                  0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4)
        let t2 = _mm256_add_epi8(t1, t1), t4 = _mm256_add_epi8(t2, t2), t8 = _mm256_add_epi8(t4, t4)
        let zero = _mm256_setzero_si256()
        let topTable = _mm256_sub_epi8(zero, actBits == 2 ? t2 : t8)  // −2^(A−1) for A = 2; A = 4, 8: −8 (× 16 for A = 8's high half)
        // Chunk lane l (32 columns) belongs to the chunk's group l·32/G.
        let expand = groupSize == 32 ? _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)
            : groupSize == 64 ? _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3) : _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1)
        // Weight planes 0..<4 sum in int16: pair sums × 2^i (× 2^(i+4) for A = 8's high half)
        // keeps every partial sum of a 16-column pair within ±30720. The 5-plane value codes of
        // mixed 4-bit types widen each plane to int32 instead.
        let sumsInInt16 = weightBits <= 4
        let groupsPerChunk = 256 / groupSize, groups = acts.groups
        let stride = layout.planeStride, chunks = acts.chunks
        let codes = UnsafeRawPointer(layout.codes.pointer)
        let dBase = UnsafePointer(layout.scales.floats()), mBase = UnsafePointer(layout.offsets.floats())
        for r in rowRange {
            let w = codes + r * weightBits * stride
            let d = dBase + r * layout.paramStride, m = mBase + r * layout.paramStride
            for i in 0..<n {
                let a = actBase + i * actStride
                let nib = UnsafeRawPointer(acts.nibbles(a))
                let laneScale = UnsafePointer(acts.laneScales(a)), groupTerm = UnsafePointer(acts.groupOffsetTerms(a))
                var acc = _mm256_setzero_ps()
                for c in 0..<chunks {
                    var words = _mm256_setzero_si256(), sum = _mm256_setzero_si256()
                    // Wrapping offsets: in range by the layouts' sizes, and without overflow
                    // checks the compiler keeps the plane offsets out of the chunk loop.
                    let wc = w + 32 &* c, nc = nib + 32 &* c
                    for p in 0..<weightBits {
                        // The activation nibbles are at most 0x0F, so their AND clears the weight's
                        // other bits: the weight is shifted for its high nibbles, never masked.
                        let v = load(wc + p &* stride)
                        let wl = v, wh = _mm256_srli_epi16(v, 4)
                        @inline(__always) func term(_ j: Int, _ table: __m256i) -> __m256i {
                            let lo = _mm256_and_si256(wl, load(nc + (2 &* j) &* stride))
                            let hi = _mm256_and_si256(wh, load(nc + (2 &* j &+ 1) &* stride))
                            return _mm256_add_epi8(_mm256_shuffle_epi8(table, lo), _mm256_shuffle_epi8(table, hi))
                        }
                        // Byte sums of the weighted popcounts: one for A = 2 and 4, low and high
                        // (worth 16×) for A = 8.
                        let low: __m256i, high: __m256i
                        switch actBits {
                        case 2:
                            low = _mm256_add_epi8(term(0, t1), term(1, topTable)); high = zero
                        case 4:
                            low = _mm256_add_epi8(_mm256_add_epi8(term(0, t1), term(1, t2)),
                                                  _mm256_add_epi8(term(2, t4), term(3, topTable)))
                            high = zero
                        default:
                            low = _mm256_add_epi8(_mm256_add_epi8(term(0, t1), term(1, t2)),
                                                  _mm256_add_epi8(term(2, t4), term(3, t8)))
                            high = _mm256_add_epi8(_mm256_add_epi8(term(4, t1), term(5, t2)),
                                                   _mm256_add_epi8(term(6, t4), term(7, topTable)))
                        }
                        // Pair sums of this plane (A = 8's high half worth 16×), then weighted by
                        // 2^p with a shift: a constant 2^p per plane would be one more shuffle-port
                        // broadcast per plane, as registers are all taken.
                        var planeWords = _mm256_maddubs_epi16(ones, low)
                        if actBits == 8 { planeWords = _mm256_add_epi16(planeWords, _mm256_slli_epi16(_mm256_maddubs_epi16(ones, high), 4)) }
                        if sumsInInt16 {
                            words = _mm256_add_epi16(words, p == 0 ? planeWords : _mm256_slli_epi16(planeWords, Int32(p)))
                        } else {
                            sum = _mm256_add_epi32(sum, _mm256_madd_epi16(planeWords, _mm256_set1_epi16(Int16(1 << p))))
                        }
                    }
                    if sumsInInt16 { sum = _mm256_madd_epi16(words, ones16) }
                    let dv = _mm256_permutevar8x32_ps(UnsafeRawPointer(d + c &* groupsPerChunk).loadUnaligned(as: __m256.self), expand)
                    let sa = UnsafeRawPointer(laneScale + 8 &* c).loadUnaligned(as: __m256.self)
                    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_mul_ps(dv, sa), acc)
                }
                // The offsets' term, Σ_g m·sa·Σqa, does not depend on the codes: once per row.
                for g in Swift.stride(from: 0, to: groups, by: 8) {
                    acc = _mm256_fmadd_ps(UnsafeRawPointer(m + g).loadUnaligned(as: __m256.self),
                                          UnsafeRawPointer(groupTerm + g).loadUnaligned(as: __m256.self), acc)
                }
                y[i * rows + r] = acc.sum()
            }
        }
    }
}
#endif
