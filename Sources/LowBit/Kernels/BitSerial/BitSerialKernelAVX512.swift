import _Builtin_intrinsics.intel
import LowBitAVX2
import LowBitCore

/// The bit-serial family on AVX-512 (BW): `BitSerialKernelAVX2`'s sums, two 256-column chunks
/// per register. A plane's bytes and the activations' nibbles of consecutive chunks lie side by
/// side (`BitSerialLayout`, `BitSerialActivations`), so one zmm load takes both; every step of
/// the AVX2 kernel works within 128-bit lanes, so it runs unchanged on twice the columns, and
/// the tables are the AVX2 kernel's, broadcast to all four lanes. A row's last chunk, when the
/// count is odd, is loaded alone into the low half: the high half adds zeros. Activations are
/// prepared by the AVX2 code (`BitSerialKernelAVX2.prepare`).
enum BitSerialKernelAVX512 {
    /// y[i·rows + r] for r in `rowRange`, i in 0..<n; prepared activation row i at actBase + i·actStride.
    static func run(_ layout: BitSerialLayout, groupSize: Int, acts: BitSerialActivations, n: Int, rows: Int,
                    actBase: UnsafeMutableRawPointer, actStride: Int, y: UnsafeMutablePointer<Float>,
                    rowRange: Range<Int>) {
        switch layout.bits {
        case 1: run(Static1.self, layout, groupSize, acts, n, rows, actBase, actStride, y, rowRange)
        case 2: run(Static2.self, layout, groupSize, acts, n, rows, actBase, actStride, y, rowRange)
        case 3: run(Static3.self, layout, groupSize, acts, n, rows, actBase, actStride, y, rowRange)
        case 4: run(Static4.self, layout, groupSize, acts, n, rows, actBase, actStride, y, rowRange)
        // 4-bit mixed value codes
        default: run(Static5.self, layout, groupSize, acts, n, rows, actBase, actStride, y, rowRange)
        }
    }

    static func run<WeightBits: StaticInt>(_: WeightBits.Type, _ layout: BitSerialLayout, _ groupSize: Int,
                                           _ acts: BitSerialActivations, _ n: Int, _ rows: Int,
                                           _ actBase: UnsafeMutableRawPointer,
                                           _ actStride: Int, _ y: UnsafeMutablePointer<Float>, _ rowRange: Range<Int>) {
        switch acts.bits {
        case 2: body(WeightBits.self, Static2.self, layout, groupSize, acts, n, rows, actBase, actStride, y, rowRange)
        case 4: body(WeightBits.self, Static4.self, layout, groupSize, acts, n, rows, actBase, actStride, y, rowRange)
        default: body(WeightBits.self, Static8.self, layout, groupSize, acts, n, rows, actBase, actStride, y, rowRange)
        }
    }

    /// A = 8's activations for a chunk pair: the masked-sum order keeps a chunk's 256 columns
    /// together, so vector k of the two chunks (256 bytes apart) is joined into one register;
    /// a lone last chunk fills the low half.
    struct MaskedSumInput {
        var v0 = _mm512_setzero_si512(), v1 = _mm512_setzero_si512(), v2 = _mm512_setzero_si512(),
            v3 = _mm512_setzero_si512(), v4 = _mm512_setzero_si512(), v5 = _mm512_setzero_si512(),
            v6 = _mm512_setzero_si512(), v7 = _mm512_setzero_si512()

        init() {}

        @inline(__always)
        init(_ qc: UnsafeRawPointer, pair: Bool) {
            @inline(__always) func joined(_ k: Int) -> __m512i {
                let low = (qc + 32 &* k).loadUnaligned(as: __m256i.self)
                guard pair else { return _mm512_zextsi256_si512(low) }
                let high = (qc + (256 &+ 32 &* k)).loadUnaligned(as: __m256i.self)
                return _mm512_mask_broadcast_i64x4(_mm512_castsi256_si512(low), 0xF0, high)
            }
            (v0, v1, v2, v3) = (joined(0), joined(1), joined(2), joined(3))
            (v4, v5, v6, v7) = (joined(4), joined(5), joined(6), joined(7))
        }

        @inline(__always)
        subscript(k: Int) -> __m512i {
            switch k {
            case 0: return v0
            case 1: return v1
            case 2: return v2
            case 3: return v3
            case 4: return v4
            case 5: return v5
            case 6: return v6
            default: return v7
            }
        }
    }

    /// A 16-byte table in all four lanes.
    @inline(__always)
    static func table(_ t: __m128i) -> __m512i { _mm512_broadcast_i32x4(t) }

    @inline(__always)
    static func body<WeightBits: StaticInt, ActBits: StaticInt>(_: WeightBits.Type, _: ActBits.Type,
                                                                _ layout: BitSerialLayout, _ groupSize: Int,
                                                                _ acts: BitSerialActivations, _ n: Int, _ rows: Int,
                                                                _ actBase: UnsafeMutableRawPointer, _ actStride: Int,
                                                                _ y: UnsafeMutablePointer<Float>,
                                                                _ rowRange: Range<Int>) {
        let weightBits = WeightBits.value, actBits = ActBits.value
        let ones = _mm512_set1_epi8(1), ones16 = _mm512_set1_epi16(1), mask = _mm512_set1_epi8(0x0F)
        // Bit j of a nibble, per nibble value (A = 8's masked sums).
        let bit0 = table(_mm_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1))
        let bit1 = table(_mm_setr_epi8(0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1))
        let bit2 = table(_mm_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1))
        let bit3 = table(_mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1))
        let t1 = table(_mm_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4))
        let t2 = _mm512_add_epi8(t1, t1), t4 = _mm512_add_epi8(t2, t2)
        // −2^(A−1)·popcount
        let topTable = _mm512_sub_epi8(_mm512_setzero_si512(), actBits == 2 ? t2 : _mm512_add_epi8(t4, t4))
        // Lane l (32 columns) of a chunk pair belongs to the pair's group l·32/G.
        let expand = _mm512_srli_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                       UInt32((groupSize / 32).trailingZeroBitCount))
        // Weight planes 0..<4 sum in int16 (bounds as at AVX2); the 5-plane value codes of mixed
        // 4-bit types widen each plane to int32.
        let sumsInInt16 = weightBits <= 4
        let groupsPerChunk = 256 / groupSize, groups = acts.groups
        let stride = layout.planeStride, chunks = acts.chunks
        let codes = UnsafeRawPointer(layout.codes.pointer)
        let dBase = UnsafePointer(layout.scales.floats()), mBase = UnsafePointer(layout.offsets.floats())
        let row0 = UnsafeRawPointer(actBase)
        let inputOffset = UnsafeRawPointer(acts.nibbles(actBase)) - row0
        let laneOffset = UnsafeRawPointer(acts.laneScales(actBase)) - row0,
            termOffset = UnsafeRawPointer(acts.groupOffsetTerms(actBase)) - row0
        for r in rowRange {
            let w = codes + r * weightBits * stride
            let d = dBase + r * layout.paramStride, m = mBase + r * layout.paramStride
            for i in 0..<n {
                let a = row0 + i * actStride
                let input = a + inputOffset
                let laneScale = (a + laneOffset).assumingMemoryBound(to: Float.self),
                    groupTerm = (a + termOffset).assumingMemoryBound(to: Float.self)
                var acc = _mm512_setzero_ps()
                for c in Swift.stride(from: 0, to: chunks, by: 2) {
                    // Both chunks, or the last one alone in the low half. Not by masked loads:
                    // streaming from DRAM, those made the whole product several times slower.
                    let pair = c + 1 < chunks
                    @inline(__always) func load(_ p: UnsafeRawPointer) -> __m512i {
                        pair ? p.loadUnaligned(as: __m512i.self)
                            : _mm512_zextsi256_si512(p.loadUnaligned(as: __m256i.self))
                    }
                    var words = _mm512_setzero_si512(), sum = _mm512_setzero_si512()
                    let wc = w + 32 &* c, nc = input + 32 &* c
                    // A = 8: the pair's activation vectors, joined once for all weight planes.
                    var q = MaskedSumInput()
                    if actBits == 8 { q = MaskedSumInput(input + 256 &* c, pair: pair) }
                    for p in 0..<weightBits {
                        let v = load(wc + p &* stride)
                        let planeWords: __m512i
                        if actBits == 8 {
                            @inline(__always) func masked(_ half: __m512i, _ bit: __m512i, _ k: Int) -> __m512i {
                                _mm512_maddubs_epi16(_mm512_shuffle_epi8(bit, half), q[k])
                            }
                            let wl = _mm512_and_si512(v, mask), wh = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask)
                            let low = _mm512_add_epi16(_mm512_add_epi16(masked(wl, bit0, 0), masked(wl, bit1, 1)),
                                                       _mm512_add_epi16(masked(wl, bit2, 2), masked(wl, bit3, 3)))
                            let high = _mm512_add_epi16(_mm512_add_epi16(masked(wh, bit0, 4), masked(wh, bit1, 5)),
                                                        _mm512_add_epi16(masked(wh, bit2, 6), masked(wh, bit3, 7)))
                            planeWords = _mm512_add_epi16(low, high)
                        } else {
                            let wl = v, wh = _mm512_srli_epi16(v, 4)
                            @inline(__always) func term(_ j: Int, _ table: __m512i) -> __m512i {
                                let lo = _mm512_and_si512(wl, load(nc + (2 &* j) &* stride))
                                let hi = _mm512_and_si512(wh, load(nc + (2 &* j &+ 1) &* stride))
                                return _mm512_add_epi8(_mm512_shuffle_epi8(table, lo), _mm512_shuffle_epi8(table, hi))
                            }
                            let bytes = actBits == 2 ? _mm512_add_epi8(term(0, t1), term(1, topTable))
                                : _mm512_add_epi8(_mm512_add_epi8(term(0, t1), term(1, t2)),
                                                  _mm512_add_epi8(term(2, t4), term(3, topTable)))
                            planeWords = _mm512_maddubs_epi16(ones, bytes)
                        }
                        if sumsInInt16 {
                            words = _mm512_add_epi16(words,
                                                     p == 0 ? planeWords : _mm512_slli_epi16(planeWords, UInt32(p)))
                        } else {
                            sum = _mm512_add_epi32(sum, _mm512_madd_epi16(planeWords, _mm512_set1_epi16(Int16(1 << p))))
                        }
                    }
                    if sumsInInt16 { sum = _mm512_madd_epi16(words, ones16) }
                    // The pair's group scales: 16 at G = 32, else at most 8 (a row's scales are
                    // padded by 8, so 8 can always be read), expanded to their lanes.
                    let dc = d + c &* groupsPerChunk
                    let dv = _mm512_permutexvar_ps(expand, pair && groupSize == 32 ? _mm512_loadu_ps(dc)
                                                       : _mm512_zextps256_ps512(_mm256_loadu_ps(dc)))
                    let sa = pair ? _mm512_loadu_ps(laneScale + 8 &* c)
                        : _mm512_zextps256_ps512(_mm256_loadu_ps(laneScale + 8 &* c))
                    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(dv, sa), acc)
                }
                // The offsets' term, Σ_g m·sa·Σqa, does not depend on the codes: once per row. By 8
                // where fewer than 16 are left (both arrays are padded to a multiple of 8), not by
                // masked loads, for the reason above.
                var g = 0
                while g + 16 <= groups {
                    acc = _mm512_fmadd_ps(_mm512_loadu_ps(m + g), _mm512_loadu_ps(groupTerm + g), acc)
                    g += 16
                }
                while g < groups {
                    acc = _mm512_fmadd_ps(_mm512_zextps256_ps512(_mm256_loadu_ps(m + g)),
                                          _mm512_zextps256_ps512(_mm256_loadu_ps(groupTerm + g)), acc)
                    g += 8
                }
                y[i * rows + r] = _mm512_reduce_add_ps(acc)
            }
        }
    }
}
