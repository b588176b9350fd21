import _Builtin_intrinsics.intel
import LowBitCore

/// The dequant family's int8 products on AVX-512 VNNI, on the same layout as the AVX2 kernel
/// (`DequantLayout`). One zmm holds one step of two row blocks
/// (16 rows, one per 32-bit lane), so a single `vpdpbusd` multiplies 4 codes of each of 16 rows
/// by 4 broadcast int8 activations and adds them to int32 lanes: the AVX2 kernel's
/// `vpmaddubsw` + `vpmaddwd` + add in one instruction on twice the rows, and with no int16
/// intermediate. The register tile is 32 weight rows (two zmm) × 4 activation rows: each unpack
/// of codes serves 4 activation rows, each broadcast 2 zmm of rows (at N = 3 too: the padded
/// tile outruns the AVX2 kernel; at N = 2 the AVX2 kernel runs). Per group:
/// y += d·sa·Σ q·qa + m·sa·Σqa, as in the reference.
enum DequantKernelAVX512 {
    /// Activation rows per register tile.
    static let tileRows = 4
    /// Row blocks (of 8 rows) per tile: two zmm of 16 rows.
    static let tileBlocks = 4
    /// Row blocks per item at N = 1: four zmm, each with two accumulator chains (even and odd
    /// steps), so that eight independent `vpdpbusd` chains cover its latency.
    static let oneRowBlocks = 8

    /// Whether the one-row kernel prefetches codes ahead (`CodePrefetch`): at widths 4 and 8,
    /// as the AVX2 kernel does.
    @inline(__always)
    static func prefetchCodes(width: Int) -> Bool { width >= 4 }

    /// Y = X·Wᵀ: activations rounded to int8 per group, then every (32-row stripe, activation
    /// tile) item on the thread pool, a stripe's tiles in one chunk so its codes stay in cache.
    static func multiply(_ layout: DequantLayout, rows: Int, cols: Int, groupSize: Int, x: UnsafePointer<Float>,
                         n: Int, y: UnsafeMutablePointer<Float>) throws {
        let acts = Int8Activations(cols: cols, groupSize: groupSize)
        let stride = Int8Activations.byteCount(cols: cols, groupSize: groupSize)
        let ws = try Workspace.current.reserve(try checkedProduct(n, stride, what: "workspace"))
        parallelFor(n) { i in AVX512Kernels.quantize(acts, x + i * cols, into: ws + i * stride) }
        if n == 1 {
            let stripes = (layout.rowBlocks + oneRowBlocks - 1) / oneRowBlocks
            let chunk = max(1, rowBlockChunk(blockBytes: layout.blockCodeBytes) / oneRowBlocks)
            parallelChunks(stripes, chunk: chunk) { items in
                for stripe in items {
                    switch layout.width {
                    case 8: oneRow(Static8.self, layout, groupSize, rows, acts, ws, y, stripe)
                    case 4: oneRow(Static4.self, layout, groupSize, rows, acts, ws, y, stripe)
                    default: oneRow(Static2.self, layout, groupSize, rows, acts, ws, y, stripe)
                    }
                }
            }
            return
        }
        let stripes = (layout.rowBlocks + tileBlocks - 1) / tileBlocks
        let tiles = (n + tileRows - 1) / tileRows
        parallelChunks(stripes * tiles, chunk: tiles) { items in
            for item in items {
                let stripe = item / tiles, first = (item % tiles) * tileRows
                switch layout.width {
                case 8: tile(Static8.self, layout, groupSize, rows, n, acts, ws, stride, y, stripe, first)
                case 4: tile(Static4.self, layout, groupSize, rows, n, acts, ws, stride, y, stripe, first)
                default: tile(Static2.self, layout, groupSize, rows, n, acts, ws, stride, y, stripe, first)
                }
            }
        }
    }

    /// The low 16 lanes' mask for `count` lanes (at most 16).
    @inline(__always)
    static func mask(_ count: Int) -> __mmask16 { __mmask16(truncatingIfNeeded: (1 << min(count, 16)) - 1) }

    /// Where the row blocks from `first` on keep their codes and parameters; blocks past the
    /// matrix's last are the last again (a kernel computes them and does not store them).
    struct Blocks {
        let layout: DequantLayout, first: Int, groups: Int

        @inline(__always)
        func index(_ i: Int) -> Int { min(first + i, layout.rowBlocks - 1) }
        @inline(__always)
        func codes(_ i: Int) -> UnsafeRawPointer {
            UnsafeRawPointer(layout.codes.pointer) + index(i) * layout.blockCodeBytes
        }
        @inline(__always)
        func params(_ i: Int) -> UnsafeRawPointer { layout.params.address(index(i) * groups * 16) }
    }

    /// One step of two row blocks' codes: block a's 32 bytes in the low half, block b's in the high.
    @inline(__always)
    static func pair(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer) -> __m512i {
        _mm512_mask_broadcast_i64x4(_mm512_castsi256_si512(a.loadUnaligned(as: __m256i.self)), 0xF0,
                                    b.loadUnaligned(as: __m256i.self))
    }

    /// Eight parameters of block a then eight of block b, as 16 floats.
    @inline(__always)
    static func parameters(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, half: Bool) -> __m512 {
        if half {
            let low = a.loadUnaligned(as: __m128i.self), high = b.loadUnaligned(as: __m128i.self)
            return _mm512_cvtph_ps(_mm256_set_m128i(high, low))
        }
        return _mm512_mask_broadcast_f32x8(_mm512_castps256_ps512(a.loadUnaligned(as: __m256.self)), 0xFF00,
                                           b.loadUnaligned(as: __m256.self))
    }

    /// Sub-step `sub` of a step's codes as bytes: columns j + 4·sub of each row at byte 4r + j.
    @inline(__always)
    static func unpack(width: Int, _ v: __m512i, _ sub: Int, _ low: __m512i) -> __m512i {
        if width == 8 { return v }
        if sub == 0 { return _mm512_and_si512(v, low) }
        return _mm512_and_si512(_mm512_srli_epi16(v, UInt32(sub * width)), low)
    }

    /// The tile of row blocks 4·stripe ..< 4·stripe + 4 and activation rows first ..< first + 4.
    /// Blocks past the last and activation rows past n repeat the last one, so that every tile
    /// runs whole; their results are not stored.
    @inline(__always)
    static func tile<Width: StaticInt>(_: Width.Type, _ layout: DequantLayout, _ groupSize: Int, _ rows: Int,
                                       _ n: Int, _ acts: Int8Activations, _ actBase: UnsafeMutableRawPointer,
                                       _ actStride: Int, _ y: UnsafeMutablePointer<Float>, _ stripe: Int,
                                       _ first: Int) {
        let width = Width.value
        let groups = acts.groups, columnsPerStep = 32 / width, stepsPerGroup = groupSize / columnsPerStep
        let low = _mm512_set1_epi8(width == 4 ? 0x0F : 0x03)
        let firstBlock = stripe * tileBlocks, blocks = Blocks(layout: layout, first: firstBlock, groups: groups)
        let half = layout.params.half, e = layout.params.elementBytes, groupBytes = 16 * e
        let w0 = blocks.codes(0), w1 = blocks.codes(1), w2 = blocks.codes(2), w3 = blocks.codes(3)
        let p0 = blocks.params(0), p1 = blocks.params(1), p2 = blocks.params(2), p3 = blocks.params(3)
        @inline(__always) func row(_ t: Int) -> UnsafeMutableRawPointer { actBase + min(first + t, n - 1) * actStride }
        let r0 = row(0), r1 = row(1), r2 = row(2), r3 = row(3)
        let a0 = UnsafeRawPointer(acts.codes(r0)), a1 = UnsafeRawPointer(acts.codes(r1))
        let a2 = UnsafeRawPointer(acts.codes(r2)), a3 = UnsafeRawPointer(acts.codes(r3))
        // y[h][t]: rows of zmm h (blocks 2h, 2h + 1) against activation row t.
        var y00 = _mm512_setzero_ps(), y01 = y00, y02 = y00, y03 = y00
        var y10 = y00, y11 = y00, y12 = y00, y13 = y00
        for g in 0..<groups {
            var s00 = _mm512_setzero_si512(), s01 = s00, s02 = s00, s03 = s00
            var s10 = s00, s11 = s00, s12 = s00, s13 = s00
            for step in 0..<stepsPerGroup {
                let offset = (g * stepsPerGroup + step) * 32
                let v0 = pair(w0 + offset, w1 + offset), v1 = pair(w2 + offset, w3 + offset)
                let k = g * groupSize + step * columnsPerStep
                for sub in 0..<(8 / width) {
                    let q0 = unpack(width: width, v0, sub, low), q1 = unpack(width: width, v1, sub, low)
                    @inline(__always) func four(_ a: UnsafeRawPointer) -> __m512i {
                        _mm512_set1_epi32(a.loadUnaligned(fromByteOffset: k + 4 * sub, as: Int32.self))
                    }
                    let b0 = four(a0), b1 = four(a1), b2 = four(a2), b3 = four(a3)
                    s00 = _mm512_dpbusd_epi32(s00, q0, b0)
                    s10 = _mm512_dpbusd_epi32(s10, q1, b0)
                    s01 = _mm512_dpbusd_epi32(s01, q0, b1)
                    s11 = _mm512_dpbusd_epi32(s11, q1, b1)
                    s02 = _mm512_dpbusd_epi32(s02, q0, b2)
                    s12 = _mm512_dpbusd_epi32(s12, q1, b2)
                    s03 = _mm512_dpbusd_epi32(s03, q0, b3)
                    s13 = _mm512_dpbusd_epi32(s13, q1, b3)
                }
            }
            let at = g * groupBytes, mAt = at + 8 * e
            let d0 = parameters(p0 + at, p1 + at, half: half), m0 = parameters(p0 + mAt, p1 + mAt, half: half)
            let d1 = parameters(p2 + at, p3 + at, half: half), m1 = parameters(p2 + mAt, p3 + mAt, half: half)
            @inline(__always) func flush(_ y0: inout __m512, _ s0: __m512i, _ y1: inout __m512, _ s1: __m512i,
                                         _ base: UnsafeMutableRawPointer) {
                let sa = acts.scales(base)[g]
                let scale = _mm512_set1_ps(sa), term = _mm512_set1_ps(sa * Float(acts.sums(base)[g]))
                y0 = _mm512_fmadd_ps(_mm512_mul_ps(d0, scale), _mm512_cvtepi32_ps(s0), y0)
                y0 = _mm512_fmadd_ps(m0, term, y0)
                y1 = _mm512_fmadd_ps(_mm512_mul_ps(d1, scale), _mm512_cvtepi32_ps(s1), y1)
                y1 = _mm512_fmadd_ps(m1, term, y1)
            }
            flush(&y00, s00, &y10, s10, r0)
            flush(&y01, s01, &y11, s11, r1)
            flush(&y02, s02, &y12, s12, r2)
            flush(&y03, s03, &y13, s13, r3)
        }
        @inline(__always) func store(_ v0: __m512, _ v1: __m512, _ t: Int) {
            guard first + t < n else { return }
            let out = y + (first + t) * rows
            let row0 = firstBlock * DequantLayout.rowsPerBlock, row1 = row0 + 16
            if row0 < rows { _mm512_mask_storeu_ps(out + row0, mask(rows - row0), v0) }
            if row1 < rows { _mm512_mask_storeu_ps(out + row1, mask(rows - row1), v1) }
        }
        store(y00, y10, 0)
        store(y01, y11, 1)
        store(y02, y12, 2)
        store(y03, y13, 3)
    }

    /// N = 1 on row blocks 8·stripe ..< 8·stripe + 8 (past the last: the last again, not stored).
    @inline(__always)
    static func oneRow<Width: StaticInt>(_: Width.Type, _ layout: DequantLayout, _ groupSize: Int, _ rows: Int,
                                         _ acts: Int8Activations, _ actBase: UnsafeMutableRawPointer,
                                         _ y: UnsafeMutablePointer<Float>, _ stripe: Int) {
        let width = Width.value
        let groups = acts.groups, columnsPerStep = 32 / width, stepsPerGroup = groupSize / columnsPerStep
        let low = _mm512_set1_epi8(width == 4 ? 0x0F : 0x03)
        let firstBlock = stripe * oneRowBlocks, blocks = Blocks(layout: layout, first: firstBlock, groups: groups)
        let half = layout.params.half, e = layout.params.elementBytes, groupBytes = 16 * e
        let w0 = blocks.codes(0), w1 = blocks.codes(1), w2 = blocks.codes(2), w3 = blocks.codes(3)
        let w4 = blocks.codes(4), w5 = blocks.codes(5), w6 = blocks.codes(6), w7 = blocks.codes(7)
        let p0 = blocks.params(0), p1 = blocks.params(1), p2 = blocks.params(2), p3 = blocks.params(3)
        let p4 = blocks.params(4), p5 = blocks.params(5), p6 = blocks.params(6), p7 = blocks.params(7)
        let a = UnsafeRawPointer(acts.codes(actBase)), scales = acts.scales(actBase), sums = acts.sums(actBase)
        let distance = CodePrefetch.distance(streams: oneRowBlocks)
        var y0 = _mm512_setzero_ps(), y1 = y0, y2 = y0, y3 = y0
        for g in 0..<groups {
            // s·e: even steps, s·o: odd ones (every group has an even number of steps).
            var s0e = _mm512_setzero_si512(), s1e = s0e, s2e = s0e, s3e = s0e
            var s0o = s0e, s1o = s0e, s2o = s0e, s3o = s0e
            @inline(__always) func step(_ step: Int, _ s0: inout __m512i, _ s1: inout __m512i, _ s2: inout __m512i,
                                        _ s3: inout __m512i) {
                let offset = (g * stepsPerGroup + step) * 32
                let v0 = pair(w0 + offset, w1 + offset), v1 = pair(w2 + offset, w3 + offset)
                let v2 = pair(w4 + offset, w5 + offset), v3 = pair(w6 + offset, w7 + offset)
                let k = g * groupSize + step * columnsPerStep
                for sub in 0..<(8 / width) {
                    let b = _mm512_set1_epi32(a.loadUnaligned(fromByteOffset: k + 4 * sub, as: Int32.self))
                    s0 = _mm512_dpbusd_epi32(s0, unpack(width: width, v0, sub, low), b)
                    s1 = _mm512_dpbusd_epi32(s1, unpack(width: width, v1, sub, low), b)
                    s2 = _mm512_dpbusd_epi32(s2, unpack(width: width, v2, sub, low), b)
                    s3 = _mm512_dpbusd_epi32(s3, unpack(width: width, v3, sub, low), b)
                }
            }
            for s in stride(from: 0, to: stepsPerGroup, by: 2) {
                // Each block's codes ahead, once per cache line (two steps).
                if prefetchCodes(width: width) {
                    let ahead = (g * stepsPerGroup + s) * 32 + distance
                    CodePrefetch.line(w0 + ahead); CodePrefetch.line(w1 + ahead)
                    CodePrefetch.line(w2 + ahead); CodePrefetch.line(w3 + ahead)
                    CodePrefetch.line(w4 + ahead); CodePrefetch.line(w5 + ahead)
                    CodePrefetch.line(w6 + ahead); CodePrefetch.line(w7 + ahead)
                }
                step(s, &s0e, &s1e, &s2e, &s3e)
                step(s + 1, &s0o, &s1o, &s2o, &s3o)
            }
            let scale = _mm512_set1_ps(scales[g]), term = _mm512_set1_ps(scales[g] * Float(sums[g]))
            let at = g * groupBytes, mAt = at + 8 * e
            @inline(__always) func flush(_ yv: inout __m512, _ even: __m512i, _ odd: __m512i,
                                         _ pa: UnsafeRawPointer, _ pb: UnsafeRawPointer) {
                let d = parameters(pa + at, pb + at, half: half), m = parameters(pa + mAt, pb + mAt, half: half)
                yv = _mm512_fmadd_ps(_mm512_mul_ps(d, scale), _mm512_cvtepi32_ps(_mm512_add_epi32(even, odd)), yv)
                yv = _mm512_fmadd_ps(m, term, yv)
            }
            flush(&y0, s0e, s0o, p0, p1)
            flush(&y1, s1e, s1o, p2, p3)
            flush(&y2, s2e, s2o, p4, p5)
            flush(&y3, s3e, s3o, p6, p7)
        }
        @inline(__always) func store(_ v: __m512, _ h: Int) {
            let first = (firstBlock + 2 * h) * DequantLayout.rowsPerBlock
            if first < rows { _mm512_mask_storeu_ps(y + first, mask(rows - first), v) }
        }
        store(y0, 0)
        store(y1, 1)
        store(y2, 2)
        store(y3, 3)
    }
}
