import _Builtin_intrinsics.intel
import LowBitCore

/// `GroupedBlockLinear` (module LowBitModel) on AVX2: each block's values are unpacked 32 at a
/// time (shifts and masks of its bit fields, IQ4's table by `pshufb`), its parameters read as
/// the reference reads them, and its weights s·v − m made in floats once per block, then
/// multiplied into up to four activation rows with FMAs.
enum GroupedBlocksAVX2 {
    @inline(__always)
    static func values(_ type: GroupedBlockType, _ p: UnsafeRawPointer, into v: UnsafeMutablePointer<Int8>) {
        @inline(__always) func load(_ offset: Int) -> __m256i {
            _mm256_loadu_si256((p + offset).assumingMemoryBound(to: __m256i.self))
        }
        @inline(__always) func store(_ x: __m256i, _ j: Int) {
            _mm256_storeu_si256(UnsafeMutableRawPointer(v + j).assumingMemoryBound(to: __m256i.self), x)
        }
        @inline(__always) func and(_ a: __m256i, _ b: __m256i) -> __m256i { _mm256_and_si256(a, b) }
        let two = _mm256_set1_epi8(3)
        switch type {
        case .q2_K:
            for h in 0..<2 {
                let q = load(16 + 32 * h)
                store(and(q, two), 128 * h)
                store(and(_mm256_srli_epi16(q, 2), two), 128 * h + 32)
                store(and(_mm256_srli_epi16(q, 4), two), 128 * h + 64)
                store(and(_mm256_srli_epi16(q, 6), two), 128 * h + 96)
            }
        case .q3_K:
            // Four less where the element's high bit (bit j / 32 of byte j % 32) is clear.
            let high = load(0), one = _mm256_set1_epi8(1), four = _mm256_set1_epi8(4), zero = _mm256_setzero_si256()
            for h in 0..<2 {
                let q = load(32 + 32 * h)
                for k in 0..<4 {
                    let low = and(_mm256_srli_epi16(q, Int32(2 * k)), two)
                    let bit = and(_mm256_srli_epi16(high, Int32(4 * h + k)), one)
                    store(_mm256_sub_epi8(low, and(_mm256_cmpeq_epi8(bit, zero), four)), 128 * h + 32 * k)
                }
            }
        case .q6_K:
            // Per half of 128: nibbles of bytes 0–31 and 32–63, low then high, each with its two
            // high bits from the same byte of qh at bits 0, 2, 4, 6 (moved to bits 4–5).
            let nibble = _mm256_set1_epi8(0x0F), highBits = _mm256_set1_epi8(0x30), bias = _mm256_set1_epi8(32)
            for h in 0..<2 {
                let low0 = load(64 * h), low1 = load(64 * h + 32), qh = load(128 + 32 * h)
                let q0 = _mm256_or_si256(and(low0, nibble), and(_mm256_slli_epi16(qh, 4), highBits))
                let q1 = _mm256_or_si256(and(low1, nibble), and(_mm256_slli_epi16(qh, 2), highBits))
                let q2 = _mm256_or_si256(and(_mm256_srli_epi16(low0, 4), nibble), and(qh, highBits))
                let q3 = _mm256_or_si256(and(_mm256_srli_epi16(low1, 4), nibble),
                                         and(_mm256_srli_epi16(qh, 2), highBits))
                store(_mm256_sub_epi8(q0, bias), 128 * h)
                store(_mm256_sub_epi8(q1, bias), 128 * h + 32)
                store(_mm256_sub_epi8(q2, bias), 128 * h + 64)
                store(_mm256_sub_epi8(q3, bias), 128 * h + 96)
            }
        case .iq4_nl, .iq4_xs:
            let table = _mm_setr_epi8(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113)
            let nibble = _mm_set1_epi8(0x0F)
            let (groups, first) = type == .iq4_nl ? (1, 2) : (8, 8)
            for g in 0..<groups {
                let b = _mm_loadu_si128((p + first + 16 * g).assumingMemoryBound(to: __m128i.self))
                let out = UnsafeMutableRawPointer(v + 32 * g).assumingMemoryBound(to: __m128i.self)
                _mm_storeu_si128(out, _mm_shuffle_epi8(table, _mm_and_si128(b, nibble)))
                _mm_storeu_si128(out + 1, _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(b, 4), nibble)))
            }
        }
    }

    static func weights(_ type: GroupedBlockType, _ blocks: UnsafeRawPointer, count: Int,
                        into out: UnsafeMutablePointer<Float>) {
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: 256) { v in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 32) { parameters in
                let s = parameters.baseAddress!, m = s + 16, v = v.baseAddress!
                for b in 0..<count {
                    let p = blocks + b * type.blockBytes, y = out + b * type.elements
                    GroupedBlocks.parameters(type, p, scales: s, minimums: m)
                    values(type, p, into: v)
                    for g in 0..<type.groupsPerBlock {
                        let scale = _mm256_set1_ps(s[g]), minimum = _mm256_set1_ps(m[g])
                        var k = g * type.groupSize
                        while k < (g + 1) * type.groupSize {
                            let eight = UnsafeRawPointer(v + k).assumingMemoryBound(to: __m128i.self)
                            // s·v, then − m: the reference's two roundings, not one fused.
                            var w = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(eight))),
                                                  scale)
                            if type.hasMinimums { w = _mm256_sub_ps(w, minimum) }
                            _mm256_storeu_ps(y + k, w)
                            k += 8
                        }
                    }
                }
            }
        }
    }

    /// One row's product with one activation row: per group, Σ v·x in floats, then one FMA with
    /// s (and for Q2_K one with −m and Σ x), so no weight is made. Groups of 16 rotate through
    /// four totals and the halves of a group of 32 go to two, which keeps the chains of dependent
    /// FMAs short.
    static func oneRow(_ type: GroupedBlockType, _ row: UnsafeRawPointer, blocks: Int, x: UnsafePointer<Float>,
                       values v: UnsafeMutablePointer<Int8>, parameters s: UnsafeMutablePointer<Float>) -> Float {
        let m = s + 16
        var t0 = _mm256_setzero_ps(), t1 = t0, t2 = t0, t3 = t0
        @inline(__always) func eight(_ k: Int) -> __m256 {
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(
                UnsafeRawPointer(v + k).assumingMemoryBound(to: __m128i.self))))
        }
        for b in 0..<blocks {
            let p = row + b * type.blockBytes, xb = x + b * type.elements
            GroupedBlocks.parameters(type, p, scales: s, minimums: m)
            values(type, p, into: v)
            @inline(__always) func dot16(_ g: Int) -> __m256 {
                _mm256_fmadd_ps(eight(16 * g + 8), _mm256_loadu_ps(xb + 16 * g + 8),
                                _mm256_mul_ps(eight(16 * g), _mm256_loadu_ps(xb + 16 * g)))
            }
            @inline(__always) func minus(_ g: Int, _ t: __m256) -> __m256 {
                let sum = _mm256_add_ps(_mm256_loadu_ps(xb + 16 * g), _mm256_loadu_ps(xb + 16 * g + 8))
                return _mm256_fnmadd_ps(_mm256_set1_ps(m[g]), sum, t)
            }
            if type.groupSize == 16 {
                var g = 0
                while g < 16 {
                    t0 = _mm256_fmadd_ps(_mm256_set1_ps(s[g]), dot16(g), t0)
                    t1 = _mm256_fmadd_ps(_mm256_set1_ps(s[g + 1]), dot16(g + 1), t1)
                    t2 = _mm256_fmadd_ps(_mm256_set1_ps(s[g + 2]), dot16(g + 2), t2)
                    t3 = _mm256_fmadd_ps(_mm256_set1_ps(s[g + 3]), dot16(g + 3), t3)
                    if type.hasMinimums {
                        (t0, t1, t2, t3) = (minus(g, t0), minus(g + 1, t1), minus(g + 2, t2), minus(g + 3, t3))
                    }
                    g += 4
                }
            } else {
                for g in 0..<type.groupsPerBlock {
                    let scale = _mm256_set1_ps(s[g])
                    t0 = _mm256_fmadd_ps(scale, dot16(2 * g), t0)
                    t1 = _mm256_fmadd_ps(scale, dot16(2 * g + 1), t1)
                }
            }
        }
        return _mm256_add_ps(_mm256_add_ps(t0, t1), _mm256_add_ps(t2, t3)).sum()
    }

    static func rows(_ type: GroupedBlockType, _ blocks: UnsafeRawPointer, cols: Int, rows: Int,
                     x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>, range: Range<Int>) {
        let blocksPerRow = cols / type.elements, elements = type.elements, rowBytes = blocksPerRow * type.blockBytes
        if n == 1 {
            withUnsafeTemporaryAllocation(of: Int8.self, capacity: 256) { v in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 32) { s in
                    for r in range {
                        y[r] = oneRow(type, blocks + r * rowBytes, blocks: blocksPerRow, x: x, values: v.baseAddress!,
                                      parameters: s.baseAddress!)
                    }
                }
            }
            return
        }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 256) { buffer in
            let w = buffer.baseAddress!
            for r in range {
                var i = 0
                while i < n {
                    // Up to four activation rows share each block's weights; one row keeps two
                    // accumulators, so that an FMA's latency does not bound the loop.
                    let t = min(4, n - i)
                    let x0 = x + i * cols, x1 = x0 + (t > 1 ? cols : 0), x2 = x0 + (t > 2 ? 2 * cols : 0)
                    let x3 = x0 + (t > 3 ? 3 * cols : 0)
                    var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0
                    for b in 0..<blocksPerRow {
                        weights(type, blocks + r * rowBytes + b * type.blockBytes, count: 1, into: w)
                        var k = 0, c = b * elements
                        if t == 1 {
                            while k < elements {
                                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(x0 + c), a0)
                                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 8), _mm256_loadu_ps(x0 + c + 8), a1)
                                (k, c) = (k + 16, c + 16)
                            }
                            continue
                        }
                        while k < elements {
                            let wk = _mm256_loadu_ps(w + k)
                            a0 = _mm256_fmadd_ps(wk, _mm256_loadu_ps(x0 + c), a0)
                            a1 = _mm256_fmadd_ps(wk, _mm256_loadu_ps(x1 + c), a1)
                            if t > 2 { a2 = _mm256_fmadd_ps(wk, _mm256_loadu_ps(x2 + c), a2) }
                            if t > 3 { a3 = _mm256_fmadd_ps(wk, _mm256_loadu_ps(x3 + c), a3) }
                            (k, c) = (k + 8, c + 8)
                        }
                    }
                    if t == 1 {
                        y[i * rows + r] = _mm256_add_ps(a0, a1).sum()
                    } else {
                        y[i * rows + r] = a0.sum()
                        y[(i + 1) * rows + r] = a1.sum()
                        if t > 2 { y[(i + 2) * rows + r] = a2.sum() }
                        if t > 3 { y[(i + 3) * rows + r] = a3.sum() }
                    }
                    i += t
                }
            }
        }
    }
}
