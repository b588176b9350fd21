import _Builtin_intrinsics.intel
import LowBitCore

/// `GroupedBlockLinear` (module LowBitModel) on AVX2: each block's values are unpacked 32 at a
/// time (shifts and masks of its bit fields, IQ4's table by `pshufb`) and its parameters read as
/// the reference reads them; products take int8 activations (`rows`), prompts' panels the
/// weights s·v − m in floats (`weights`).
enum GroupedBlocksAVX2 {
    /// The block's values 32 at a time, in order: body(j, v) gets elements 32j ..< 32j + 32 as
    /// signed bytes, made in registers.
    @inline(__always)
    static func values(_ type: GroupedBlockType, _ p: UnsafeRawPointer, _ body: (Int, __m256i) -> Void) {
        @inline(__always) func load(_ offset: Int) -> __m256i {
            _mm256_loadu_si256((p + offset).assumingMemoryBound(to: __m256i.self))
        }
        @inline(__always) func and(_ a: __m256i, _ b: __m256i) -> __m256i { _mm256_and_si256(a, b) }
        let two = _mm256_set1_epi8(3)
        switch type {
        case .q2_K:
            for h in 0..<2 {
                let q = load(16 + 32 * h)
                body(4 * h, and(q, two))
                body(4 * h + 1, and(_mm256_srli_epi16(q, 2), two))
                body(4 * h + 2, and(_mm256_srli_epi16(q, 4), two))
                body(4 * h + 3, and(_mm256_srli_epi16(q, 6), two))
            }
        case .q3_K:
            // Four less where the element's high bit (bit j / 32 of byte j % 32) is clear.
            let high = load(0), one = _mm256_set1_epi8(1), four = _mm256_set1_epi8(4), zero = _mm256_setzero_si256()
            for h in 0..<2 {
                let q = load(32 + 32 * h)
                for k in 0..<4 {
                    let low = and(_mm256_srli_epi16(q, Int32(2 * k)), two)
                    let bit = and(_mm256_srli_epi16(high, Int32(4 * h + k)), one)
                    body(4 * h + k, _mm256_sub_epi8(low, and(_mm256_cmpeq_epi8(bit, zero), four)))
                }
            }
        case .q6_K:
            // Per half of 128: nibbles of bytes 0–31 and 32–63, low then high, each with its two
            // high bits from the same byte of qh at bits 0, 2, 4, 6 (moved to bits 4–5).
            let nibble = _mm256_set1_epi8(0x0F), highBits = _mm256_set1_epi8(0x30), bias = _mm256_set1_epi8(32)
            for h in 0..<2 {
                let low0 = load(64 * h), low1 = load(64 * h + 32), qh = load(128 + 32 * h)
                body(4 * h, _mm256_sub_epi8(_mm256_or_si256(and(low0, nibble),
                                                            and(_mm256_slli_epi16(qh, 4), highBits)), bias))
                body(4 * h + 1, _mm256_sub_epi8(_mm256_or_si256(and(low1, nibble),
                                                                and(_mm256_slli_epi16(qh, 2), highBits)), bias))
                body(4 * h + 2, _mm256_sub_epi8(_mm256_or_si256(and(_mm256_srli_epi16(low0, 4), nibble),
                                                                and(qh, highBits)), bias))
                body(4 * h + 3, _mm256_sub_epi8(_mm256_or_si256(and(_mm256_srli_epi16(low1, 4), nibble),
                                                                and(_mm256_srli_epi16(qh, 2), highBits)), bias))
            }
        case .iq4_nl, .iq4_xs:
            let table = _mm_setr_epi8(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113)
            let nibble = _mm_set1_epi8(0x0F)
            let (groups, first) = type == .iq4_nl ? (1, 2) : (8, 8)
            for g in 0..<groups {
                let b = _mm_loadu_si128((p + first + 16 * g).assumingMemoryBound(to: __m128i.self))
                body(g, _mm256_set_m128i(_mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(b, 4), nibble)),
                                         _mm_shuffle_epi8(table, _mm_and_si128(b, nibble))))
            }
        case .q8_0:
            body(0, load(2))
        }
    }

    static func weights(_ type: GroupedBlockType, _ blocks: UnsafeRawPointer, count: Int, stride: Int,
                        into out: UnsafeMutablePointer<Float>) {
        GroupedBlocks.forEachBlock(type, blocks, count: count, stride: stride, into: out) { p, y, s, m, v in
            values(type, p) { j, q in
                _mm256_storeu_si256(UnsafeMutableRawPointer(v + 32 * j).assumingMemoryBound(to: __m256i.self), q)
            }
            for g in 0..<type.groupsPerBlock {
                let scale = _mm256_set1_ps(s[g]), minimum = _mm256_set1_ps(m[g])
                for k in Swift.stride(from: g * type.groupSize, to: (g + 1) * type.groupSize, by: 8) {
                    let eight = UnsafeRawPointer(v + k).assumingMemoryBound(to: __m128i.self)
                    // s·v, then − m: the reference's two roundings, not one fused.
                    var w = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(eight))), scale)
                    if type.hasMinimums { w = _mm256_sub_ps(w, minimum) }
                    _mm256_storeu_ps(y + k, w)
                }
            }
        }
    }

    /// A K-quant block's 16 integer group scales sc (and Q2_K's minimums mn) as int16 lanes, with
    /// d and dmin: `GroupedBlocks.integerParameters` made in registers, so that no product
    /// reads back scales just stored one at a time (a failed store forward on every chunk).
    @inline(__always)
    static func kQuantScales(_ type: GroupedBlockType, _ p: UnsafeRawPointer)
        -> (scales: __m256i, minimums: __m256i, d: Float, dmin: Float) {
        @inline(__always) func half(_ offset: Int) -> Float {
            Float(Float16(bitPattern: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
        }
        @inline(__always) func word(_ offset: Int) -> Int32 {
            Int32(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: Int32.self))
        }
        let nibble = _mm_set1_epi8(0x0F)
        switch type {
        case .q2_K:
            let b = _mm_loadu_si128(p.assumingMemoryBound(to: __m128i.self))
            return (_mm256_cvtepu8_epi16(_mm_and_si128(b, nibble)),
                    _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(b, 4), nibble)), half(80), half(82))
        case .q3_K:
            // Scale g: the low nibble of byte 96 + g % 8 (high nibble for g ≥ 8), with 2 high
            // bits from byte 104 + g % 4 at bit 2·(g / 4); 6 bits less 32.
            let low = _mm_setr_epi32(word(96), word(100), word(96) >> 4, word(100) >> 4)
            let high = _mm_srlv_epi32(_mm_set1_epi32(word(104)), _mm_setr_epi32(0, 2, 4, 6))
            let scales = _mm_or_si128(_mm_and_si128(low, nibble),
                                      _mm_slli_epi16(_mm_and_si128(high, _mm_set1_epi8(3)), 4))
            return (_mm256_cvtepi8_epi16(_mm_sub_epi8(scales, _mm_set1_epi8(32))), _mm256_setzero_si256(), half(108), 0)
        case .q6_K:
            let scales = _mm_loadu_si128((p + 192).assumingMemoryBound(to: __m128i.self))
            return (_mm256_cvtepi8_epi16(scales), _mm256_setzero_si256(), half(208), 0)
        case .iq4_nl, .iq4_xs, .q8_0:
            preconditionFailure("groups of 32 elements: their scales are read one at a time")
        }
    }

    /// Σ of the eight int32 lanes (wrapping, as integer sums of any order agree), halved twice
    /// in registers: `wrappedSum` compiled to lane extractions one by one.
    @inline(__always)
    static func sum(_ v: __m256i) -> Int32 {
        let eight = unsafeBitCast(v, to: SIMD8<Int32>.self), four = eight.lowHalf &+ eight.highHalf
        let two = four.lowHalf &+ four.highHalf
        return two[0] &+ two[1]
    }

    /// IQ4_NL's and Q8_0's blocks are 32 elements, and finishing a block (a sum across lanes,
    /// its float term) costs as much as its products when done one block at a time. Here a
    /// band's eight rows (`GroupedBlockMatrix`) run together: two rows' blocks share a register,
    /// their lane sums for the eight rows are gathered into one vector by three `vphaddd`, and
    /// the vector's float terms are added to one accumulator per activation row, block after
    /// block, as the reference adds them. Up to four activation rows share each block's decoding.
    static func bandRows(_ m: GroupedBlockMatrix, acts: Int8Activations, actBase: UnsafeMutableRawPointer,
                         actStride: Int, n: Int, y: UnsafeMutablePointer<Float>, range: Range<Int>) {
        var i = 0
        while i < n {
            let count = min(4, n - i), first = actBase + i * actStride, out = y + i * m.rows
            func tile<B: BandBlock>(_: B.Type) {
                switch count {
                case 1: bandTile(B.self, OneRow.self, m, acts: acts, first, actStride, out, range)
                case 2: bandTile(B.self, TwoRows.self, m, acts: acts, first, actStride, out, range)
                case 3: bandTile(B.self, ThreeRows.self, m, acts: acts, first, actStride, out, range)
                default: bandTile(B.self, FourRows.self, m, acts: acts, first, actStride, out, range)
                }
            }
            if m.type == .q8_0 { tile(Q8_0Band.self) } else { tile(IQ4NLBand.self) }
            i += count
        }
    }

    /// The block type and the activation row count as type parameters: each specialization of
    /// `bandTile` is compiled with both constant, keeping only its own decoding and rows.
    private static func bandTile<B: BandBlock, A: ActivationRowCount>(
        _: B.Type, _: A.Type, _ m: GroupedBlockMatrix, acts: Int8Activations, _ actBase: UnsafeMutableRawPointer,
        _ actStride: Int, _ y: UnsafeMutablePointer<Float>, _ range: Range<Int>
    ) {
        let count = A.count
        typealias Four = (__m256i, __m256i, __m256i, __m256i)
        let bytes = B.blockBytes, rows = m.rows
        let ones = _mm256_set1_epi16(1), zero = _mm256_setzero_si256()
        let a0 = actBase, a1 = a0 + (count > 1 ? actStride : 0)
        let a2 = a0 + (count > 2 ? 2 * actStride : 0), a3 = a0 + (count > 3 ? 3 * actStride : 0)
        let (q0, q1, q2, q3) = (acts.codes(a0), acts.codes(a1), acts.codes(a2), acts.codes(a3))
        let (s0, s1, s2, s3) = (acts.scales(a0), acts.scales(a1), acts.scales(a2), acts.scales(a3))
        // The band's rows r ..< r + live (`full`: all eight, at constant offsets); lanes past
        // them repeat row r and are not stored.
        @inline(__always) func band(_ r: Int, live: Int, full: Bool) {
            let (first, height) = m.band(of: r), stride = height * bytes
            let start = m.base + first * m.rowBytes + (r - first) * bytes
            @inline(__always) func offset(_ l: Int) -> Int { full || l < live ? l * bytes : 0 }
            var (y0, y1, y2, y3) = (SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>(), SIMD8<Float>())
            for b in 0..<m.blocksPerRow {
                let column = start + b * stride
                @inline(__always) func half(_ qa: UnsafeMutablePointer<Int8>, _ h: Int) -> __m256i {
                    _mm256_broadcastsi128_si256(_mm_loadu_si128(UnsafeRawPointer(qa + 32 * b + 16 * h)
                        .assumingMemoryBound(to: __m128i.self)))
                }
                // Elements 0–15 of the block, then 16–31, in both halves of a register.
                let x0 = (half(q0, 0), half(q0, 1)), x1 = count > 1 ? (half(q1, 0), half(q1, 1)) : (zero, zero)
                let x2 = count > 2 ? (half(q2, 0), half(q2, 1)) : (zero, zero)
                let x3 = count > 3 ? (half(q3, 0), half(q3, 1)) : (zero, zero)
                // Rows l and l + 1: their int32 lane sums (four each) against each activation row.
                @inline(__always) func dots(_ l: Int) -> Four {
                    let (low, high) = B.values(column + offset(l), column + offset(l + 1))
                    let lowMagnitude = _mm256_sign_epi8(low, low), highMagnitude = _mm256_sign_epi8(high, high)
                    @inline(__always) func dot(_ x: (__m256i, __m256i)) -> __m256i {
                        _mm256_add_epi32(
                            _mm256_madd_epi16(_mm256_maddubs_epi16(lowMagnitude, _mm256_sign_epi8(x.0, low)), ones),
                            _mm256_madd_epi16(_mm256_maddubs_epi16(highMagnitude, _mm256_sign_epi8(x.1, high)), ones))
                    }
                    return (dot(x0), count > 1 ? dot(x1) : zero, count > 2 ? dot(x2) : zero, count > 3 ? dot(x3) : zero)
                }
                @inline(__always) func pair(_ u: Four, _ v: Four) -> Four {
                    (_mm256_hadd_epi32(u.0, v.0), count > 1 ? _mm256_hadd_epi32(u.1, v.1) : zero,
                     count > 2 ? _mm256_hadd_epi32(u.2, v.2) : zero, count > 3 ? _mm256_hadd_epi32(u.3, v.3) : zero)
                }
                // Lane j: the block sum of row 2j (j < 4), of row 2(j − 4) + 1 (j ≥ 4).
                let sums = pair(pair(dots(0), dots(2)), pair(dots(4), dots(6)))
                @inline(__always) func d(_ l: Int) -> Int16 { (column + offset(l)).loadUnaligned(as: Int16.self) }
                // (`__m256` is SIMD8<Float>.)
                let scales = _mm256_cvtph_ps(_mm_setr_epi16(d(0), d(2), d(4), d(6), d(1), d(3), d(5), d(7)))
                @inline(__always) func term(_ sums: __m256i, _ sa: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
                    SIMD8(repeating: sa[b])
                        * (scales * SIMD8<Float>(unsafeBitCast(sums, to: SIMD8<Int32>.self)) - SIMD8<Float>())
                }
                y0 += term(sums.0, s0)
                if count > 1 { y1 += term(sums.1, s1) }
                if count > 2 { y2 += term(sums.2, s2) }
                if count > 3 { y3 += term(sums.3, s3) }
            }
            for j in 0..<8 {
                let l = j < 4 ? 2 * j : 2 * (j - 4) + 1
                guard l < live else { continue }
                y[r + l] = y0[j]
                if count > 1 { y[rows + r + l] = y1[j] }
                if count > 2 { y[2 * rows + r + l] = y2[j] }
                if count > 3 { y[3 * rows + r + l] = y3[j] }
            }
        }
        var r = range.lowerBound
        while r < range.upperBound {
            let (first, height) = m.band(of: r), live = min(first + height, range.upperBound) - r
            if live == 8 { band(r, live: 8, full: true) } else { band(r, live: live, full: false) }
            r += live
        }
    }

    /// Products with int8 activations, up to four activation rows sharing each block's decoding.
    /// Per 32 elements: |v| times qa with v's sign by `vpmaddubsw` (pairs of products in int16,
    /// at most 2·127·127), then `vpmaddwd` with the groups' integer scales sc (the first 16
    /// elements' in the low half, the next 16's in the high half). Each block's int32 lanes are
    /// summed and finished in floats as the reference finishes them, so the tiers agree bit for bit.
    static func rows(_ m: GroupedBlockMatrix, acts: Int8Activations, actBase: UnsafeMutableRawPointer,
                     actStride: Int, n: Int, y: UnsafeMutablePointer<Float>, range: Range<Int>) {
        func run<T: LargeBlock>(_: T.Type) {
            rows(T.self, m, acts: acts, actBase: actBase, actStride: actStride, n: n, y: y, range: range)
        }
        switch m.type {
        case .q2_K: run(Q2_KBlock.self)
        case .q3_K: run(Q3_KBlock.self)
        case .q6_K: run(Q6_KBlock.self)
        case .iq4_xs: run(IQ4_XSBlock.self)
        case .iq4_nl, .q8_0:
            bandRows(m, acts: acts, actBase: actBase, actStride: actStride, n: n, y: y, range: range)
        }
    }

    /// Up to four activation rows at a time, each tile by the kernel specialized for its count.
    private static func rows<T: LargeBlock>(_: T.Type, _ m: GroupedBlockMatrix, acts: Int8Activations,
                                            actBase: UnsafeMutableRawPointer, actStride: Int, n: Int,
                                            y: UnsafeMutablePointer<Float>, range: Range<Int>) {
        var i = 0
        while i < n {
            let count = min(4, n - i), first = actBase + i * actStride, out = y + i * m.rows
            switch count {
            case 1: rowsTile(T.self, OneRow.self, m, acts: acts, first, actStride, out, range)
            case 2: rowsTile(T.self, TwoRows.self, m, acts: acts, first, actStride, out, range)
            case 3: rowsTile(T.self, ThreeRows.self, m, acts: acts, first, actStride, out, range)
            default: rowsTile(T.self, FourRows.self, m, acts: acts, first, actStride, out, range)
            }
            i += count
        }
    }

    /// The block type and the activation row count as type parameters: each specialization is
    /// compiled for one type's decoding, which then inlines into the products, and for one count,
    /// so that no test of it is left in the loop over a block's values.
    private static func rowsTile<T: LargeBlock, A: ActivationRowCount>(
        _: T.Type, _: A.Type, _ m: GroupedBlockMatrix, acts: Int8Activations, _ actBase: UnsafeMutableRawPointer,
        _ actStride: Int, _ y: UnsafeMutablePointer<Float>, _ range: Range<Int>
    ) {
        let type = T.type, t = A.count
        let rows = m.rows, blocksPerRow = m.blocksPerRow, elements = type.elements
        let pairSelect = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
                                          2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3)
        let ones = _mm256_set1_epi8(1), zero = _mm256_setzero_si256()
        @inline(__always) func load(_ p: UnsafeRawPointer) -> __m256i {
            _mm256_loadu_si256(p.assumingMemoryBound(to: __m256i.self))
        }
        // The integer scales of elements 32j ..< 32j + 32, one per int16 pair of a product: from a
        // K-quant block's 16 groups in one register (32-bit lane j holds groups 2j and 2j + 1),
        // or an IQ4 block's group of 32.
        @inline(__always) func scales(_ all: __m256i, _ s: UnsafeMutablePointer<Int16>, _ j: Int) -> __m256i {
            guard type.groupSize == 16 else { return _mm256_set1_epi16(s[j]) }
            return _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(all, _mm256_set1_epi32(Int32(j))), pairSelect)
        }
        let a0 = actBase, a1 = a0 + (t > 1 ? actStride : 0)
        let a2 = a0 + (t > 2 ? 2 * actStride : 0), a3 = a0 + (t > 3 ? 3 * actStride : 0)
        let (q0, q1, q2, q3) = (acts.codes(a0), acts.codes(a1), acts.codes(a2), acts.codes(a3))
        withUnsafeTemporaryAllocation(of: Int16.self, capacity: 32) { parameters in
            let sc = parameters.baseAddress!, mn = sc + 16
            for r in range {
                let start = m.block(row: r, 0), stride = m.blockStride(row: r)
                var y0: Float = 0, y1: Float = 0, y2: Float = 0, y3: Float = 0
                for b in 0..<blocksPerRow {
                    let p = start + b * stride, first = b * elements
                    var d: Float, dmin: Float, allScales = zero, allMinimums = zero
                    if type.groupSize == 16 {
                        (allScales, allMinimums, d, dmin) = kQuantScales(type, p)
                    } else {
                        (d, dmin) = GroupedBlocks.integerParameters(type, p, scales: sc, minimums: mn)
                    }
                    var dots = (zero, zero, zero, zero), mins = (zero, zero, zero, zero)
                    values(type, p) { j, q in
                        let magnitude = _mm256_sign_epi8(q, q), s = scales(allScales, sc, j)
                        @inline(__always) func dot(_ qa: UnsafeMutablePointer<Int8>) -> __m256i {
                            let a = load(qa + first + 32 * j)
                            return _mm256_madd_epi16(_mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(a, q)), s)
                        }
                        dots.0 = _mm256_add_epi32(dots.0, dot(q0))
                        if t > 1 { dots.1 = _mm256_add_epi32(dots.1, dot(q1)) }
                        if t > 2 { dots.2 = _mm256_add_epi32(dots.2, dot(q2)) }
                        if t > 3 { dots.3 = _mm256_add_epi32(dots.3, dot(q3)) }
                        guard type.hasMinimums else { return }
                        let m = scales(allMinimums, mn, j)
                        @inline(__always) func minimum(_ qa: UnsafeMutablePointer<Int8>) -> __m256i {
                            _mm256_madd_epi16(_mm256_maddubs_epi16(ones, load(qa + first + 32 * j)), m)
                        }
                        mins.0 = _mm256_add_epi32(mins.0, minimum(q0))
                        if t > 1 { mins.1 = _mm256_add_epi32(mins.1, minimum(q1)) }
                        if t > 2 { mins.2 = _mm256_add_epi32(mins.2, minimum(q2)) }
                        if t > 3 { mins.3 = _mm256_add_epi32(mins.3, minimum(q3)) }
                    }
                    @inline(__always) func block(_ base: UnsafeMutableRawPointer, _ dot: __m256i,
                                                 _ minimum: __m256i) -> Float {
                        acts.scales(base)[b] * (d * Float(sum(dot)) - dmin * Float(sum(minimum)))
                    }
                    y0 += block(a0, dots.0, mins.0)
                    if t > 1 { y1 += block(a1, dots.1, mins.1) }
                    if t > 2 { y2 += block(a2, dots.2, mins.2) }
                    if t > 3 { y3 += block(a3, dots.3, mins.3) }
                }
                y[r] = y0
                if t > 1 { y[rows + r] = y1 }
                if t > 2 { y[2 * rows + r] = y2 }
                if t > 3 { y[3 * rows + r] = y3 }
            }
        }
    }
}

/// A band kernel's 32-element block type: two rows' values, elements 0–15 of each row in the
/// low and high halves of the first register, elements 16–31 in the second.
private protocol BandBlock {
    static var blockBytes: Int { get }
    static func values(_ row: UnsafeRawPointer, _ next: UnsafeRawPointer) -> (__m256i, __m256i)
}

private enum IQ4NLBand: BandBlock {
    static var blockBytes: Int { GroupedBlockType.iq4_nl.blockBytes }
    /// Element j < 16 is byte 2 + j's low nibble, element 16 + j its high one, through the table.
    @inline(__always)
    static func values(_ row: UnsafeRawPointer, _ next: UnsafeRawPointer) -> (__m256i, __m256i) {
        let table = _mm256_broadcastsi128_si256(_mm_setr_epi8(-127, -104, -83, -65, -49, -35, -22, -10,
                                                              1, 13, 25, 38, 53, 69, 89, 113))
        let nibble = _mm256_set1_epi8(0x0F)
        let both = _mm256_set_m128i(_mm_loadu_si128((next + 2).assumingMemoryBound(to: __m128i.self)),
                                    _mm_loadu_si128((row + 2).assumingMemoryBound(to: __m128i.self)))
        return (_mm256_shuffle_epi8(table, _mm256_and_si256(both, nibble)),
                _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(both, 4), nibble)))
    }
}

private enum Q8_0Band: BandBlock {
    static var blockBytes: Int { GroupedBlockType.q8_0.blockBytes }
    /// The block's bytes as they are. A value of −128 passes the sign trick: its magnitude is
    /// 128 as an unsigned byte, and a pair of products stays within 2·128·127 < 2^15.
    @inline(__always)
    static func values(_ row: UnsafeRawPointer, _ next: UnsafeRawPointer) -> (__m256i, __m256i) {
        @inline(__always) func load(_ p: UnsafeRawPointer) -> __m128i {
            _mm_loadu_si128(p.assumingMemoryBound(to: __m128i.self))
        }
        return (_mm256_set_m128i(load(next + 2), load(row + 2)), _mm256_set_m128i(load(next + 18), load(row + 18)))
    }
}

private protocol ActivationRowCount { static var count: Int { get } }
private enum OneRow: ActivationRowCount { static var count: Int { 1 } }
private enum TwoRows: ActivationRowCount { static var count: Int { 2 } }
private enum ThreeRows: ActivationRowCount { static var count: Int { 3 } }
private enum FourRows: ActivationRowCount { static var count: Int { 4 } }

/// A 256-element block type of `rows`.
private protocol LargeBlock { static var type: GroupedBlockType { get } }
private enum Q2_KBlock: LargeBlock { static var type: GroupedBlockType { .q2_K } }
private enum Q3_KBlock: LargeBlock { static var type: GroupedBlockType { .q3_K } }
private enum Q6_KBlock: LargeBlock { static var type: GroupedBlockType { .q6_K } }
private enum IQ4_XSBlock: LargeBlock { static var type: GroupedBlockType { .iq4_xs } }
