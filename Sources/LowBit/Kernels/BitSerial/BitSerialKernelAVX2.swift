import _Builtin_intrinsics.intel
import LowBitCPU
import LowBitCore

/// The bit-serial family on AVX2, per 256-column chunk and weight plane i:
///   - A = 2 and 4: against activation plane j by AND and a nibble-`vpshufb` popcount, 32 bytes
///     at a time. The AND is done per nibble (the activations come pre-split into nibble bytes),
///     and the lookup tables hold popcount·2^j (−popcount·2^(A−1) for the top plane), so the
///     weighted popcounts of all A planes add up in one byte (at most 64 in size);
///   - A = 8: the same integer as a masked sum Σₖ (bit i of qₖ)·qaₖ, as 8 activation planes
///     would take 8 popcounts: a lookup turns bit j of each weight nibble into a 0/1 byte and
///     `vpmaddubsw` multiplies it with the int8 activation of its column
///     (`BitSerialActivations.maskedSumOrder`), 32 columns per lookup.
/// Pair sums in int16, shifted by i, sum the weight planes, and `vpmaddwd` widens to one Int32
/// per 32 columns, which the group scales, expanded to those lanes, turn into floats:
/// y += d·sa·Σq·qa. The offsets' term m·sa·Σqa does not involve the codes and is added once
/// per row from per-group terms.
package enum BitSerialKernelAVX2 {
    @inline(__always)
    static func load(_ p: UnsafeRawPointer) -> __m256i { p.loadUnaligned(as: __m256i.self) }

    /// Rounds activation row x and writes what the kernel reads: planes and their nibbles
    /// (A = 2, 4) or the masked-sum order (A = 8), then the lane terms.
    package static func prepare(_ acts: BitSerialActivations, _ x: UnsafePointer<Float>,
                                into base: UnsafeMutableRawPointer) {
        AVX2Kernels.quantize(acts.ints, x, into: base)
        if acts.bits == 8 {
            acts.writeMaskedSumOrder(base)
        } else {
            writePlanes(acts, base)
        }
        acts.prepareLanes(base)
    }

    /// Planes by `vpmovmskb` (bit j of each int8 shifted to the top), then the nibble split
    /// (A = 2 and 4: at A = 8 the row holds no nibbles).
    static func writePlanes(_ acts: BitSerialActivations, _ base: UnsafeMutableRawPointer) {
        precondition(acts.bits != 8, "bit-serial nibbles are for A = 2 and 4")
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
                (nib + (2 * j + 1) * stride + 32 * c).storeBytes(of: _mm256_and_si256(_mm256_srli_epi16(v, 4), mask),
                                                                 as: __m256i.self)
            }
        }
    }

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

    /// `run` for one weight width: the activation width is chosen here, so each pair gets its own copy.
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

    @inline(__always)
    static func body<WeightBits: StaticInt, ActBits: StaticInt>(_: WeightBits.Type, _: ActBits.Type,
                                                                _ layout: BitSerialLayout, _ groupSize: Int,
                     _ acts: BitSerialActivations, _ n: Int, _ rows: Int, _ actBase: UnsafeMutableRawPointer,
                     _ actStride: Int, _ y: UnsafeMutablePointer<Float>, _ rowRange: Range<Int>) {
        let weightBits = WeightBits.value, actBits = ActBits.value
        let ones = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1), mask = _mm256_set1_epi8(0x0F)
        // Bit j of a nibble, per nibble value (A = 8's masked sums).
        let bit0 = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
                                    0, 1, 0, 1)
        let bit1 = _mm256_setr_epi8(0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1,
                                    0, 0, 1, 1)
        let bit2 = _mm256_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0,
                                    1, 1, 1, 1)
        let bit3 = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1,
                                    1, 1, 1, 1)
        let t1 = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                  0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4)
        let t2 = _mm256_add_epi8(t1, t1), t4 = _mm256_add_epi8(t2, t2)
        // −2^(A−1)·popcount
        let topTable = _mm256_sub_epi8(_mm256_setzero_si256(), actBits == 2 ? t2 : _mm256_add_epi8(t4, t4))
        // Chunk lane l (32 columns) belongs to the chunk's group l·32/G.
        let expand = groupSize == 32 ? _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)
            : groupSize == 64 ? _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3) : _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1)
        // Weight planes 0..<4 sum in int16: an int16 of a plane sums 16 columns, at most
        // 16 × 127 = 2032 in size, so Σ 2^i × them stays within ±30480. The 5-plane value codes
        // of mixed 4-bit types widen each plane to int32 instead.
        let sumsInInt16 = weightBits <= 4
        let groupsPerChunk = 256 / groupSize, groups = acts.groups
        let stride = layout.planeStride, chunks = acts.chunks
        let codes = UnsafeRawPointer(layout.codes.pointer)
        let dBase = UnsafePointer(layout.scales.floats()), mBase = UnsafePointer(layout.offsets.floats())
        // Where each part of a prepared activation row starts, once rather than per row. The
        // kernel's input is the nibbles (A = 2, 4) or the masked-sum order (A = 8), at one place.
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
                var acc = _mm256_setzero_ps()
                for c in 0..<chunks {
                    var words = _mm256_setzero_si256(), sum = _mm256_setzero_si256()
                    // Wrapping offsets: in range by the layouts' sizes, and without overflow
                    // checks the compiler keeps the plane offsets out of the chunk loop.
                    let wc = w + 32 &* c, nc = input + 32 &* c, qc = input + 256 &* c
                    for p in 0..<weightBits {
                        let v = load(wc + p &* stride)
                        // Int16 pair sums of plane p against the activations, by A.
                        let planeWords: __m256i
                        if actBits == 8 {
                            // Masked sums: bit j of each weight nibble as a 0/1 byte (a lookup)
                            // times the integer of its column, pair-summed by `vpmaddubsw`.
                            let wl = _mm256_and_si256(v, mask), wh = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask)
                            @inline(__always) func masked(_ half: __m256i, _ bit: __m256i, _ vector: Int) -> __m256i {
                                _mm256_maddubs_epi16(_mm256_shuffle_epi8(bit, half), load(qc + 32 &* vector))
                            }
                            let low = _mm256_add_epi16(_mm256_add_epi16(masked(wl, bit0, 0), masked(wl, bit1, 1)),
                                                       _mm256_add_epi16(masked(wl, bit2, 2), masked(wl, bit3, 3)))
                            let high = _mm256_add_epi16(_mm256_add_epi16(masked(wh, bit0, 4), masked(wh, bit1, 5)),
                                                        _mm256_add_epi16(masked(wh, bit2, 6), masked(wh, bit3, 7)))
                            planeWords = _mm256_add_epi16(low, high)
                        } else {
                            // Popcounts. The activation nibbles are at most 0x0F, so their AND
                            // clears the weight's other bits: the weight is shifted for its high
                            // nibbles, never masked.
                            let wl = v, wh = _mm256_srli_epi16(v, 4)
                            @inline(__always) func term(_ j: Int, _ table: __m256i) -> __m256i {
                                let lo = _mm256_and_si256(wl, load(nc + (2 &* j) &* stride))
                                let hi = _mm256_and_si256(wh, load(nc + (2 &* j &+ 1) &* stride))
                                return _mm256_add_epi8(_mm256_shuffle_epi8(table, lo), _mm256_shuffle_epi8(table, hi))
                            }
                            // Byte sums of the weighted popcounts.
                            let bytes = actBits == 2 ? _mm256_add_epi8(term(0, t1), term(1, topTable))
                                : _mm256_add_epi8(_mm256_add_epi8(term(0, t1), term(1, t2)),
                                                  _mm256_add_epi8(term(2, t4), term(3, topTable)))
                            planeWords = _mm256_maddubs_epi16(ones, bytes)
                        }
                        // Weighted by 2^p with a shift: a constant 2^p per plane would be one more
                        // shuffle-port broadcast per plane, as registers are all taken.
                        if sumsInInt16 {
                            words = _mm256_add_epi16(words,
                                                     p == 0 ? planeWords : _mm256_slli_epi16(planeWords, Int32(p)))
                        } else {
                            sum = _mm256_add_epi32(sum, _mm256_madd_epi16(planeWords, _mm256_set1_epi16(Int16(1 << p))))
                        }
                    }
                    if sumsInInt16 { sum = _mm256_madd_epi16(words, ones16) }
                    let dv = _mm256_permutevar8x32_ps(UnsafeRawPointer(d
                        + c &* groupsPerChunk).loadUnaligned(as: __m256.self), expand)
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
