import _Builtin_intrinsics.intel
import LowBitAVX2
import LowBitCore

/// The LUT family on AVX-512 (BW): the sums of `LUTKernelAVX2` on the same layout and tables,
/// one row block per register. A plane pair's unit of one row block and chunk is 64 bytes
/// (rows 0..<8, then 8..<16: `LUTLayout`), one zmm: its low nibbles look up in the chunk's
/// tables 4c | 4c+1 broadcast to both halves, its high nibbles in 4c+2 | 4c+3, so one
/// `vpshufb` does the 64 lookups that take two at AVX2, and one `vpmaddubsw` by bytes (2ᵖ, 2ᵖ⁺¹)
/// adds the pair's planes. The lone top plane (3 bits; the fifth plane of mixed value codes) is
/// one 32-byte unit holding all 16 rows: looked up at 256 bits, its rows 0..<8 and 8..<16 then
/// joined into one register. The int16 sums per lane are those of the AVX2 kernel, and its
/// bounds hold. 1-bit codes and sign matrices run the AVX2 kernel (`AVX512Kernels.lutMultiply`).
enum LUTKernelAVX512: LUTBlockKernels {
    static func run(_ layout: LUTLayout, groupSize: Int, rows: Int, n: Int, tables: LUTTables,
                    tableBase: UnsafeMutableRawPointer, tableStride: Int, y: UnsafeMutablePointer<Float>,
                    items: Range<Int>, prefetchNextQuads: Bool) {
        let p = prefetchNextQuads
        switch layout.bits {
        case 2: body(Static2.self, layout, groupSize, rows, n, tables, tableBase, tableStride, y, items, p)
        case 3: body(Static3.self, layout, groupSize, rows, n, tables, tableBase, tableStride, y, items, p)
        case 4: body(Static4.self, layout, groupSize, rows, n, tables, tableBase, tableStride, y, items, p)
        // 4-bit mixed value codes
        default: body(Static5.self, layout, groupSize, rows, n, tables, tableBase, tableStride, y, items, p)
        }
    }

    @inline(__always)
    static func load256(_ p: UnsafeRawPointer) -> __m256i { p.loadUnaligned(as: __m256i.self) }

    /// The tables of one chunk for both halves of a row block: 4c | 4c+1 (`low`) and 4c+2 | 4c+3.
    struct Tables {
        let low, high: __m512i

        @inline(__always)
        init(_ t: UnsafeRawPointer) {
            low = _mm512_broadcast_i64x4(load256(t))
            high = _mm512_broadcast_i64x4(load256(t + 32))
        }
    }

    /// The nibble indices of one chunk of one row block: plane pairs (0, 1) and (2, 3), and the
    /// lone top plane.
    struct Indices {
        var pair0Low, pair0High, pair1Low, pair1High: __m512i
        var loneLow, loneHigh: __m256i

        @inline(__always)
        init(bits: Int, _ w: UnsafeRawPointer) {
            let mask = _mm512_set1_epi8(0x0F)
            let v0 = w.loadUnaligned(as: __m512i.self)
            pair0Low = _mm512_and_si512(v0, mask); pair0High = _mm512_and_si512(_mm512_srli_epi16(v0, 4), mask)
            let v1 = bits >= 4 ? (w + 64).loadUnaligned(as: __m512i.self) : v0
            pair1Low = _mm512_and_si512(v1, mask); pair1High = _mm512_and_si512(_mm512_srli_epi16(v1, 4), mask)
            let lone = bits % 2 == 1 ? load256(w + 64 * (bits / 2)) : _mm512_castsi512_si256(v0)
            let mask256 = _mm256_set1_epi8(0x0F)
            loneLow = _mm256_and_si256(lone, mask256)
            loneHigh = _mm256_and_si256(_mm256_srli_epi16(lone, 4), mask256)
        }
    }

    /// Int16 group accumulators of one row block for one activation row, lanes as at AVX2 with
    /// its a0 in the low half and a1 in the high one: planes 0–3 at their weights in `sums`, the
    /// fifth plane of mixed value codes at weight 1 in `top`.
    struct Accumulators {
        var sums = _mm512_setzero_si512(), top = _mm512_setzero_si512()

        @inline(__always)
        static func pair(_ weights: __m512i, _ t: Tables, _ low: __m512i, _ high: __m512i) -> __m512i {
            _mm512_add_epi16(_mm512_maddubs_epi16(weights, _mm512_shuffle_epi8(t.low, low)),
                             _mm512_maddubs_epi16(weights, _mm512_shuffle_epi8(t.high, high)))
        }

        @inline(__always)
        mutating func add(bits: Int, _ ix: Indices, _ t: Tables) {
            var s = Accumulators.pair(_mm512_set1_epi16(0x0201), t, ix.pair0Low, ix.pair0High)
            if bits >= 4 { s = _mm512_add_epi16(s, Accumulators.pair(_mm512_set1_epi16(0x0804), t, ix.pair1Low,
                                                                      ix.pair1High)) }
            sums = _mm512_add_epi16(sums, s)
            guard bits % 2 == 1 else { return }
            // A row's two lookups (k-groups 4c + lane and 4c + 2 + lane) side by side, rows 0..<8
            // in the low half and 8..<16 in the high one, then added by the plane's weight.
            let low = _mm256_shuffle_epi8(_mm512_castsi512_si256(t.low), ix.loneLow)
            let high = _mm256_shuffle_epi8(_mm512_castsi512_si256(t.high), ix.loneHigh)
            let rows = _mm512_mask_broadcast_i64x4(_mm512_castsi256_si512(_mm256_unpacklo_epi8(low, high)), 0xF0,
                                                   _mm256_unpackhi_epi8(low, high))
            let lone = _mm512_maddubs_epi16(_mm512_set1_epi8(bits == 3 ? 4 : 1), rows)
            if bits == 5 { top = _mm512_add_epi16(top, lone) } else { sums = _mm512_add_epi16(sums, lone) }
        }

        /// The 16 row sums of an accumulator as int32: its lanes' int16s of one row put side by
        /// side (`vpermw`), then added in pairs by `vpmaddwd`, exactly.
        @inline(__always)
        static func rowSums(_ a: __m512i) -> __m512i {
            // Position 2r + e takes row r's sum from k-group parity e: lane e (rows 0..<8) or
            // lane 2 + e (rows 8..<16), at r mod 8.
            let order = _mm512_set_epi16(31, 23, 30, 22, 29, 21, 28, 20, 27, 19, 26, 18, 25, 17, 24, 16,
                                         15, 7, 14, 6, 13, 5, 12, 4, 11, 3, 10, 2, 9, 1, 8, 0)
            return _mm512_madd_epi16(_mm512_permutexvar_epi16(order, a), _mm512_set1_epi16(1))
        }

        /// Σₚ 2ᵖ·Lₚ for the 16 rows.
        @inline(__always)
        func planeSums(bits: Int) -> __m512i {
            let s = Accumulators.rowSums(sums)
            guard bits == 5 else { return s }
            return _mm512_add_epi32(s, _mm512_slli_epi32(Accumulators.rowSums(top), 4))
        }
    }

    /// Float outputs of one row block for one activation row.
    struct Outputs {
        var y = _mm512_setzero_ps()

        /// As `LUTKernelAVX2.Outputs.add`, 16 rows at once: y += d·((ts/2)·S + ((2ᵇ − 1)/2)·Σx) + m·Σx.
        @inline(__always)
        mutating func add(_ sums: __m512i, params p: UnsafeRawPointer, half: Bool, levels: Float, tableScale: Float,
                          groupSum: Float) {
            let d = half ? _mm512_cvtph_ps(load256(p)) : _mm512_loadu_ps(p)
            let m = half ? _mm512_cvtph_ps(load256(p + 32)) : _mm512_loadu_ps(p + 64)
            let t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_set1_ps(tableScale / 2),
                                    _mm512_set1_ps(levels / 2 * groupSum))
            y = _mm512_fmadd_ps(m, _mm512_set1_ps(groupSum), _mm512_fmadd_ps(d, t, y))
        }

        @inline(__always)
        func store(_ out: UnsafeMutablePointer<Float>, first: Int, rows: Int) {
            _mm512_mask_storeu_ps(out + first, VectorsAVX512.mask(rows - first), y)
        }
    }

    /// `run` for one bit width: N = 1 by quads of row blocks, N > 1 by activation tiles.
    @inline(__always)
    static func body<Bits: StaticInt>(_: Bits.Type, _ layout: LUTLayout, _ groupSize: Int, _ rows: Int, _ n: Int,
                                      _ tables: LUTTables, _ tableBase: UnsafeMutableRawPointer, _ tableStride: Int,
                                      _ y: UnsafeMutablePointer<Float>, _ items: Range<Int>,
                                      _ prefetchNextQuads: Bool) {
        if n == 1 {
            // A quad's row blocks together (they share each table load and read one stream of
            // codes); a quad of 3, or one that `items` holds only in part, block by block.
            var block = items.lowerBound
            while block < items.upperBound {
                let size = layout.quadSize(ofBlock: block)
                let wholeQuad = block % layout.blocksPerQuad == 0 && block + size <= items.upperBound
                if wholeQuad && size == 4 {
                    blocksOfOneRow(Bits.self, Static4.self, layout, groupSize, rows, tables, tableBase, y, block,
                                   prefetchNextQuads)
                    block += 4
                } else if wholeQuad && size == 2 {
                    blocksOfOneRow(Bits.self, Static2.self, layout, groupSize, rows, tables, tableBase, y, block,
                                   prefetchNextQuads)
                    block += 2
                } else {
                    tile(Bits.self, Static1.self, layout, groupSize, rows, tables, tableBase, tableStride, y,
                         block: block, firstRow: 0, prefetchNextQuad: false)
                    block += 1
                }
            }
            return
        }
        // The activation tiles in chunks whose tables fit `tableChunkBytes`; per chunk, block by
        // block (a block's codes stay in L1 across the chunk's tiles), its first tile
        // prefetching the block's share of the next quad.
        let tileRows = LUTKernelAVX2.tileRows, tileCount = LUTKernelAVX2.tiles(n: n)
        let tilesPerTableChunk = LUTKernelAVX2.tilesPerChunk(tableStride: tableStride)
        let firstBlock = items.lowerBound / tileCount, endBlock = (items.upperBound - 1) / tileCount + 1
        for chunk in stride(from: 0, to: tileCount, by: tilesPerTableChunk) {
            for block in firstBlock..<endBlock {
                var prefetch = true
                let tilesHere = chunk..<min(tileCount, chunk + tilesPerTableChunk)
                for t in tilesHere where items.contains(block * tileCount + t) {
                    let first = t * tileRows
                    switch n - first {
                    case 1: tile(Bits.self, Static1.self, layout, groupSize, rows, tables, tableBase, tableStride, y,
                                 block: block, firstRow: first, prefetchNextQuad: prefetch)
                    case 2: tile(Bits.self, Static2.self, layout, groupSize, rows, tables, tableBase, tableStride, y,
                                 block: block, firstRow: first, prefetchNextQuad: prefetch)
                    case 3: tile(Bits.self, Static3.self, layout, groupSize, rows, tables, tableBase, tableStride, y,
                                 block: block, firstRow: first, prefetchNextQuad: prefetch)
                    default: tile(Bits.self, Static4.self, layout, groupSize, rows, tables, tableBase, tableStride, y,
                                  block: block, firstRow: first, prefetchNextQuad: prefetch)
                    }
                    prefetch = false
                }
            }
        }
    }

    /// One row block for `Count` (1 to 4) activation rows from `firstRow` on: each chunk's
    /// indices decoded once and looked up in every row's tables. With `prefetchNextQuad`, block
    /// i of a quad brings the i-th block's worth of the next quad's bytes into L1 as it goes,
    /// one chunk's share per chunk, as at AVX2.
    @inline(never)
    static func tile<Bits: StaticInt, Count: StaticInt>(_: Bits.Type, _: Count.Type, _ layout: LUTLayout,
                                                        _ groupSize: Int, _ rows: Int, _ tables: LUTTables,
                                                        _ tableBase: UnsafeMutableRawPointer, _ tableStride: Int,
                                                        _ y: UnsafeMutablePointer<Float>, block: Int, firstRow: Int,
                                                        prefetchNextQuad: Bool) {
        let bits = Bits.value, count = Count.value
        let groups = tables.groups, chunksPerGroup = groupSize / 16
        let half = layout.halfParams, levels = Float((1 << bits) - 1)
        // This block's chunks follow each other a quad's worth apart; after a group's chunks,
        // the quad's parameters.
        let quadSize = layout.quadSize(ofBlock: block)
        let unitBytes = 32 * bits, chunkStride = quadSize * unitBytes
        let paramSkip = quadSize * layout.blockParamBytes, groupStride = layout.quadGroupBytes(quadSize: quadSize)
        let base = UnsafeRawPointer(layout.data.pointer)
        let rowParams = base + layout.paramOffset(block: block, group: 0)
        let inQuad = block % layout.blocksPerQuad
        let nextQuad = base + layout.quadOffset(first: block - inQuad + quadSize) + inQuad * layout.blockBytes
        let share = layout.blockBytes / layout.chunks
        let t0 = UnsafeRawPointer(tableBase + firstRow * tableStride)
        let scales = UnsafePointer(tables.tableScales(tableBase + firstRow * tableStride))
        let sums = UnsafePointer(tables.groupSums(tableBase + firstRow * tableStride))
        let floatStride = tableStride / 4
        var out0 = Outputs(), out1 = Outputs(), out2 = Outputs(), out3 = Outputs()
        var c = 0, u = base + layout.unitOffset(block: block, chunk: 0)
        for g in 0..<groups {
            var acc0 = Accumulators(), acc1 = Accumulators(), acc2 = Accumulators(), acc3 = Accumulators()
            for _ in 0..<chunksPerGroup {
                if prefetchNextQuad { CodePrefetch.ahead(of: nextQuad + c * share, bytes: share, distance: 0) }
                let ix = Indices(bits: bits, u)
                let t = t0 + 64 * c
                acc0.add(bits: bits, ix, Tables(t))
                if count > 1 { acc1.add(bits: bits, ix, Tables(t + tableStride)) }
                if count > 2 { acc2.add(bits: bits, ix, Tables(t + 2 * tableStride)) }
                if count > 3 { acc3.add(bits: bits, ix, Tables(t + 3 * tableStride)) }
                c += 1
                u += chunkStride
            }
            u += paramSkip
            let p = rowParams + g * groupStride
            out0.add(acc0.planeSums(bits: bits), params: p, half: half, levels: levels, tableScale: scales[g],
                     groupSum: sums[g])
            if count > 1 {
                out1.add(acc1.planeSums(bits: bits), params: p, half: half, levels: levels,
                         tableScale: scales[floatStride + g], groupSum: sums[floatStride + g])
            }
            if count > 2 {
                out2.add(acc2.planeSums(bits: bits), params: p, half: half, levels: levels,
                         tableScale: scales[2 * floatStride + g], groupSum: sums[2 * floatStride + g])
            }
            if count > 3 {
                out3.add(acc3.planeSums(bits: bits), params: p, half: half, levels: levels,
                         tableScale: scales[3 * floatStride + g], groupSum: sums[3 * floatStride + g])
            }
        }
        let first = block * LUTLayout.rowsPerBlock
        out0.store(y + firstRow * rows, first: first, rows: rows)
        if count > 1 { out1.store(y + (firstRow + 1) * rows, first: first, rows: rows) }
        if count > 2 { out2.store(y + (firstRow + 2) * rows, first: first, rows: rows) }
        if count > 3 { out3.store(y + (firstRow + 3) * rows, first: first, rows: rows) }
    }

    /// N = 1 on the quad of `Count` (2 or 4) row blocks from `block` on, as
    /// `LUTKernelAVX2.blocksOfOneRow`: chunk by chunk, the quad's units in turn, then the quad's
    /// parameters for the group, one stream prefetched into L2 (and below 4 bits into L1).
    @inline(never)
    static func blocksOfOneRow<Bits: StaticInt, Count: StaticInt>(_: Bits.Type, _: Count.Type, _ layout: LUTLayout,
                                                                  _ groupSize: Int, _ rows: Int, _ tables: LUTTables,
                                                                  _ tableBase: UnsafeMutableRawPointer,
                                                                  _ y: UnsafeMutablePointer<Float>, _ block: Int,
                                                                  _ prefetchNextQuad: Bool) {
        let bits = Bits.value, count = Count.value
        let groups = tables.groups, chunksPerGroup = groupSize / 16
        let half = layout.halfParams, levels = Float((1 << bits) - 1)
        let blockStride = layout.blockParamBytes, paramSkip = count * blockStride
        let unitBytes = 32 * bits, runBytes = count * unitBytes, quadBytes = count * layout.blockBytes
        let t0 = UnsafeRawPointer(tableBase)
        let scales = UnsafePointer(tables.tableScales(tableBase)), sums = UnsafePointer(tables.groupSums(tableBase))
        var out0 = Outputs(), out1 = Outputs(), out2 = Outputs(), out3 = Outputs()
        var c = 0, u = UnsafeRawPointer(layout.data.pointer) + layout.unitOffset(block: block, chunk: 0)
        for g in 0..<groups {
            var acc0 = Accumulators(), acc1 = Accumulators(), acc2 = Accumulators(), acc3 = Accumulators()
            for _ in 0..<chunksPerGroup {
                if prefetchNextQuad { CodePrefetch.aheadToL2(of: u, bytes: runBytes, distance: quadBytes) }
                else { CodePrefetch.aheadToL2(of: u, bytes: runBytes, distance: LUTLayout.quadPrefetchDistance) }
                if bits <= 3 { CodePrefetch.ahead(of: u, bytes: runBytes, distance: LUTLayout.quadL1PrefetchDistance) }
                let t = Tables(t0 + 64 * c)
                acc0.add(bits: bits, Indices(bits: bits, u), t)
                acc1.add(bits: bits, Indices(bits: bits, u + unitBytes), t)
                if count > 2 {
                    acc2.add(bits: bits, Indices(bits: bits, u + 2 * unitBytes), t)
                    acc3.add(bits: bits, Indices(bits: bits, u + 3 * unitBytes), t)
                }
                c += 1
                u += runBytes
            }
            if prefetchNextQuad { CodePrefetch.aheadToL2(of: u, bytes: paramSkip, distance: quadBytes) }
            else { CodePrefetch.aheadToL2(of: u, bytes: paramSkip, distance: LUTLayout.quadPrefetchDistance) }
            let ts = scales[g], sx = sums[g]
            out0.add(acc0.planeSums(bits: bits), params: u, half: half, levels: levels, tableScale: ts, groupSum: sx)
            out1.add(acc1.planeSums(bits: bits), params: u + blockStride, half: half, levels: levels, tableScale: ts,
                     groupSum: sx)
            if count > 2 {
                out2.add(acc2.planeSums(bits: bits), params: u + 2 * blockStride, half: half, levels: levels,
                         tableScale: ts, groupSum: sx)
                out3.add(acc3.planeSums(bits: bits), params: u + 3 * blockStride, half: half, levels: levels,
                         tableScale: ts, groupSum: sx)
            }
            u += paramSkip
        }
        let first = block * LUTLayout.rowsPerBlock
        out0.store(y, first: first, rows: rows)
        out1.store(y, first: first + LUTLayout.rowsPerBlock, rows: rows)
        if count > 2 {
            out2.store(y, first: first + 2 * LUTLayout.rowsPerBlock, rows: rows)
            out3.store(y, first: first + 3 * LUTLayout.rowsPerBlock, rows: rows)
        }
    }
}
