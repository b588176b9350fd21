import _Builtin_intrinsics.intel
import LowBitCPU
import LowBitCore

/// The dequant family on AVX2 with int8 activations (llama.cpp's Q4_0×Q8_0 idea on lowbit's
/// layout): codes unpacked to bytes by mask and shift, `vpmaddubsw` against 4 broadcast int8
/// activations, `vpmaddwd` to int32 per row, one row per 32-bit lane (`DequantLayout`). Per
/// group: y += d·sa·Σ q·qa + m·sa·Σqa. A tile of up to 4 activation rows shares each unpack,
/// which makes N > 1 a register-tiled int8 GEMM (8 rows × 4 activation rows).
enum DequantKernelAVX2 {
    static let tileRows = 4

    static func tiles(n: Int) -> Int { (n + tileRows - 1) / tileRows }

    /// Whether the kernels prefetch codes ahead (`CodePrefetch`): at
    /// widths 4 and 8. At width 2 the unpacking keeps the kernel compute-bound even from DRAM,
    /// and the prefetches made it 5% slower there.
    @inline(__always)
    static func prefetchCodes(width: Int) -> Bool { width >= 4 }

    /// Y = X·Wᵀ on a packed layout: activations rounded to int8 per group, then every
    /// (row block, activation tile) item on the thread pool.
    static func multiply(_ layout: DequantLayout, rows: Int, cols: Int, groupSize: Int, x: UnsafePointer<Float>, n: Int,
                         y: UnsafeMutablePointer<Float>) throws {
        let acts = Int8Activations(cols: cols, groupSize: groupSize)
        let stride = Int8Activations.byteCount(cols: cols, groupSize: groupSize)
        let ws = try Workspace.current.reserve(try checkedProduct(n, stride, what: "workspace"))
        parallelFor(n) { i in AVX2Kernels.quantize(acts, x + i * cols, into: ws + i * stride) }
        // Chunks of row blocks at N = 1 (by fours, as `oneRow` takes them), else of one row
        // block's activation tiles.
        let chunk = n == 1 ? rowBlockChunk(blockBytes: layout.blockCodeBytes) : tiles(n: n)
        parallelChunks(layout.rowBlocks * tiles(n: n), chunk: chunk) { items in
            run(layout, groupSize: groupSize, rows: rows, n: n, acts: acts, actBase: ws, actStride: stride, y: y,
                items: items)
        }
    }

    /// y for the (row block, activation tile) items, item = block·tiles + tile.
    static func run(_ layout: DequantLayout, groupSize: Int, rows: Int, n: Int, acts: Int8Activations,
                    actBase: UnsafeMutableRawPointer, actStride: Int, y: UnsafeMutablePointer<Float>,
                    items: Range<Int>) {
        let tileCount = tiles(n: n)
        if n == 1 {
            switch layout.width {
            case 8: oneRow(Static8.self, layout, groupSize, rows, acts, actBase, y, items)
            case 4: oneRow(Static4.self, layout, groupSize, rows, acts, actBase, y, items)
            default: oneRow(Static2.self, layout, groupSize, rows, acts, actBase, y, items)
            }
            return
        }
        for item in items {
            let block = item / tileCount, first = (item % tileCount) * tileRows
            let rowsInTile = min(tileRows, n - first)
            switch (layout.width, rowsInTile) {
            case (8, 1): body(Static8.self, Static1.self, layout, groupSize, rows, acts, actBase, actStride, y, block,
                              first)
            case (8, 2): body(Static8.self, Static2.self, layout, groupSize, rows, acts, actBase, actStride, y, block,
                              first)
            case (8, 3): body(Static8.self, Static3.self, layout, groupSize, rows, acts, actBase, actStride, y, block,
                              first)
            case (8, _): body(Static8.self, Static4.self, layout, groupSize, rows, acts, actBase, actStride, y, block,
                              first)
            case (4, 1): body(Static4.self, Static1.self, layout, groupSize, rows, acts, actBase, actStride, y, block,
                              first)
            case (4, 2): body(Static4.self, Static2.self, layout, groupSize, rows, acts, actBase, actStride, y, block,
                              first)
            case (4, 3): body(Static4.self, Static3.self, layout, groupSize, rows, acts, actBase, actStride, y, block,
                              first)
            case (4, _): body(Static4.self, Static4.self, layout, groupSize, rows, acts, actBase, actStride, y, block,
                              first)
            case (_, 1): body(Static2.self, Static1.self, layout, groupSize, rows, acts, actBase, actStride, y, block,
                              first)
            case (_, 2): body(Static2.self, Static2.self, layout, groupSize, rows, acts, actBase, actStride, y, block,
                              first)
            case (_, 3): body(Static2.self, Static3.self, layout, groupSize, rows, acts, actBase, actStride, y, block,
                              first)
            default: body(Static2.self, Static4.self, layout, groupSize, rows, acts, actBase, actStride, y, block,
                          first)
            }
        }
    }

    /// Σ over one step of q·qa for one activation row, as int16 pairs: 8/width sub-steps of 4
    /// columns (one for width 8, whose bytes are the codes). Per lane at most 2·15·127·2 = 7620
    /// (width 4), 3048 (width 2) or 7874 (width 8), so two steps add up in int16 safely.
    @inline(__always)
    static func stepDot16(width: Int, _ q: (__m256i, __m256i, __m256i, __m256i), _ a: UnsafePointer<Int8>) -> __m256i {
        @inline(__always) func four(_ p: UnsafePointer<Int8>) -> __m256i {
            _mm256_set1_epi32(UnsafeRawPointer(p).loadUnaligned(as: Int32.self))
        }
        if width == 8 { return _mm256_maddubs_epi16(q.0, four(a)) }
        var s = _mm256_add_epi16(_mm256_maddubs_epi16(q.0, four(a)), _mm256_maddubs_epi16(q.1, four(a + 4)))
        if width == 2 {
            s = _mm256_add_epi16(s,
                                 _mm256_add_epi16(_mm256_maddubs_epi16(q.2, four(a + 8)),
                                                  _mm256_maddubs_epi16(q.3, four(a + 12))))
        }
        return s
    }

    /// The codes of one step, unpacked to bytes.
    @inline(__always)
    static func unpack(width: Int, _ p: UnsafeRawPointer, _ mask: __m256i) -> (__m256i, __m256i, __m256i, __m256i) {
        let v = p.loadUnaligned(as: __m256i.self)
        if width == 8 { return (v, v, v, v) }
        return (_mm256_and_si256(v, mask),
                _mm256_and_si256(_mm256_srli_epi16(v, Int32(width)), mask),
                width == 2 ? _mm256_and_si256(_mm256_srli_epi16(v, 4), mask) : v,
                width == 2 ? _mm256_and_si256(_mm256_srli_epi16(v, 6), mask) : v)
    }

    @inline(__always)
    static func body<Width: StaticInt, Tile: StaticInt>(_: Width.Type, _: Tile.Type, _ layout: DequantLayout,
                                                        _ groupSize: Int, _ rows: Int,
                     _ acts: Int8Activations, _ actBase: UnsafeMutableRawPointer, _ actStride: Int,
                     _ y: UnsafeMutablePointer<Float>, _ block: Int, _ first: Int) {
        let width = Width.value, tile = Tile.value
        let groups = acts.groups, columnsPerStep = 32 / width, stepsPerGroup = groupSize / columnsPerStep
        let mask = _mm256_set1_epi8(width == 4 ? 0x0F : 0x03)
        let w = UnsafeRawPointer(layout.codes.pointer) + block * layout.blockCodeBytes
        let half = layout.params.half, e = layout.params.elementBytes
        let params = layout.params.address(block * groups * 16)
        let base0 = actBase + first * actStride
        let base1 = base0 + (tile > 1 ? actStride : 0)
        let base2 = base0 + (tile > 2 ? 2 * actStride : 0)
        let base3 = base0 + (tile > 3 ? 3 * actStride : 0)
        let a0 = UnsafePointer(acts.codes(base0)), a1 = UnsafePointer(acts.codes(base1))
        let a2 = UnsafePointer(acts.codes(base2)), a3 = UnsafePointer(acts.codes(base3))
        var y0 = _mm256_setzero_ps(), y1 = y0, y2 = y0, y3 = y0
        for g in 0..<groups {
            var s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0
            let ones = _mm256_set1_epi16(1)
            if tile == 1 {
                // One activation row (N = 1, memory-bound): widening every step streamed from DRAM
                // faster here (0.47 of read against 0.35 for the paired loop below).
                for step in 0..<stepsPerGroup {
                    let q = unpack(width: width, w + (g * stepsPerGroup + step) * 32, mask)
                    s0 = _mm256_add_epi32(s0,
                                          _mm256_madd_epi16(stepDot16(width: width, q,
                                                                      a0 + g * groupSize + step * columnsPerStep),
                                                            ones))
                }
            } else {
            // Steps in pairs (every group has an even number of steps): one widening per pair,
            // for the compute-bound tiles of N > 1.
            for step in stride(from: 0, to: stepsPerGroup, by: 2) {
                if prefetchCodes(width: width) {
                    CodePrefetch.line(w + (g * stepsPerGroup + step) * 32 + CodePrefetch.distance(streams: 1))
                }
                let q = unpack(width: width, w + (g * stepsPerGroup + step) * 32, mask)
                let r = unpack(width: width, w + (g * stepsPerGroup + step + 1) * 32, mask)
                let k = g * groupSize + step * columnsPerStep
                @inline(__always) func pair(_ a: UnsafePointer<Int8>) -> __m256i {
                    _mm256_madd_epi16(_mm256_add_epi16(stepDot16(width: width, q, a + k),
                                                       stepDot16(width: width, r, a + k + columnsPerStep)), ones)
                }
                s0 = _mm256_add_epi32(s0, pair(a0))
                if tile > 1 { s1 = _mm256_add_epi32(s1, pair(a1)) }
                if tile > 2 { s2 = _mm256_add_epi32(s2, pair(a2)) }
                if tile > 3 { s3 = _mm256_add_epi32(s3, pair(a3)) }
            }
            }
            let d = VectorsAVX2.load8(params + g * 16 * e, half: half)
            let m = VectorsAVX2.load8(params + (g * 16 + 8) * e, half: half)
            @inline(__always) func flush(_ yv: inout __m256, _ s: __m256i, _ base: UnsafeMutableRawPointer) {
                let sa = acts.scales(base)[g]
                yv = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(sa)), _mm256_cvtepi32_ps(s), yv)
                yv = _mm256_fmadd_ps(m, _mm256_set1_ps(sa * Float(acts.sums(base)[g])), yv)
            }
            flush(&y0, s0, base0)
            if tile > 1 { flush(&y1, s1, base1) }
            if tile > 2 { flush(&y2, s2, base2) }
            if tile > 3 { flush(&y3, s3, base3) }
        }
        let firstRow = block * DequantLayout.rowsPerBlock
        @inline(__always) func store(_ yv: __m256, _ i: Int) {
            VectorsAVX2.storePrefix(yv, y + (first + i) * rows + firstRow, count: rows - firstRow)
        }
        store(y0, 0)
        if tile > 1 { store(y1, 1) }
        if tile > 2 { store(y2, 2) }
        if tile > 3 { store(y3, 3) }
    }

    /// N = 1 on the row blocks `items`: by fours, then a pair, then one, so that several
    /// streams of codes come from memory at once (`blocks`).
    static func oneRow<Width: StaticInt>(_: Width.Type, _ layout: DequantLayout, _ groupSize: Int, _ rows: Int,
                                         _ acts: Int8Activations, _ actBase: UnsafeMutableRawPointer,
                                         _ y: UnsafeMutablePointer<Float>, _ items: Range<Int>) {
        var item = items.lowerBound
        while item + 3 < items.upperBound {
            blocks(Width.self, Static4.self, layout, groupSize, rows, acts, actBase, y, item)
            item += 4
        }
        if item + 1 < items.upperBound {
            blocks(Width.self, Static2.self, layout, groupSize, rows, acts, actBase, y, item)
            item += 2
        }
        if item < items.upperBound {
            body(Width.self, Static1.self, layout, groupSize, rows, acts, actBase, 0, y, item, 0)
        }
    }

    /// N = 1 on `Count` row blocks from `block` on at once (the last may be partial). Streamed
    /// from memory, one block at a time ran as if the memory reads and the arithmetic took turns
    /// (time ≈ their sum); interleaved streams of codes let the hardware prefetchers keep more
    /// reads going.
    @inline(__always)
    static func blocks<Width: StaticInt, Count: StaticInt>(_: Width.Type, _: Count.Type, _ layout: DequantLayout,
                                                           _ groupSize: Int,
                                                           _ rows: Int, _ acts: Int8Activations,
                                                           _ actBase: UnsafeMutableRawPointer,
                                                           _ y: UnsafeMutablePointer<Float>, _ block: Int) {
        let width = Width.value, count = Count.value
        let groups = acts.groups, columnsPerStep = 32 / width, stepsPerGroup = groupSize / columnsPerStep
        let mask = _mm256_set1_epi8(width == 4 ? 0x0F : 0x03), ones = _mm256_set1_epi16(1)
        let bytes = layout.blockCodeBytes
        let w = UnsafeRawPointer(layout.codes.pointer) + block * bytes
        let half = layout.params.half, e = layout.params.elementBytes
        let p = layout.params.address(block * groups * 16), pStride = groups * 16 * e
        let a = UnsafePointer(acts.codes(actBase))
        let scales = acts.scales(actBase), sums = acts.sums(actBase)
        let distance = CodePrefetch.distance(streams: count)
        // Bytes of codes per byte of parameters, groupSize·width / (16·elementBytes): a power of
        // two, so "once per line of parameters" is a mask.
        let codesPerParamByte = max(1, bytes / pStride), paramLineEvery = 64 * codesPerParamByte
        var y0 = _mm256_setzero_ps(), y1 = y0, y2 = y0, y3 = y0
        for g in 0..<groups {
            var s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0
            for step in 0..<stepsPerGroup {
                let offset = (g * stepsPerGroup + step) * 32, k = a + g * groupSize + step * columnsPerStep
                // Each block's codes ahead, once per cache line (`prefetchCodes`), and its group
                // parameters as far ahead, once per line of them; past a block's end, the same
                // place in the block this stream reads next (`count` blocks on): blocks of a few
                // KiB end before the hardware prefetchers have caught up with four streams.
                if prefetchCodes(width: width), offset & 63 == 0 {
                    let ahead = offset + distance, next = ahead < bytes ? ahead : ahead - bytes + count * bytes
                    for i in 0..<count { CodePrefetch.line(w + i * bytes + next) }
                    if offset & (paramLineEvery - 1) == 0 {
                        for i in 0..<count { CodePrefetch.line(p + i * pStride + next / codesPerParamByte) }
                    }
                }
                @inline(__always) func dot(_ i: Int) -> __m256i {
                    _mm256_madd_epi16(stepDot16(width: width, unpack(width: width, w + i * bytes + offset, mask), k),
                                      ones)
                }
                s0 = _mm256_add_epi32(s0, dot(0))
                s1 = _mm256_add_epi32(s1, dot(1))
                if count > 2 { s2 = _mm256_add_epi32(s2, dot(2)) }
                if count > 3 { s3 = _mm256_add_epi32(s3, dot(3)) }
            }
            let scale = _mm256_set1_ps(scales[g]), term = _mm256_set1_ps(scales[g] * Float(sums[g]))
            @inline(__always) func flush(_ yv: inout __m256, _ s: __m256i, _ i: Int) {
                let q = p + i * pStride + g * 16 * e
                yv = _mm256_fmadd_ps(_mm256_mul_ps(VectorsAVX2.load8(q, half: half), scale), _mm256_cvtepi32_ps(s), yv)
                yv = _mm256_fmadd_ps(VectorsAVX2.load8(q + 8 * e, half: half), term, yv)
            }
            flush(&y0, s0, 0)
            flush(&y1, s1, 1)
            if count > 2 { flush(&y2, s2, 2) }
            if count > 3 { flush(&y3, s3, 3) }
        }
        @inline(__always) func store(_ yv: __m256, _ i: Int) {
            let first = (block + i) * DequantLayout.rowsPerBlock
            VectorsAVX2.storePrefix(yv, y + first, count: rows - first)
        }
        store(y0, 0)
        store(y1, 1)
        if count > 2 { store(y2, 2) }
        if count > 3 { store(y3, 3) }
    }
}
