import _Builtin_intrinsics.intel
import LowBitCPU
import LowBitCore

/// A tier's LUT kernels for row blocks of a `LUTLayout`, which `LUTKernelAVX2.multiply`
/// schedules on the thread pool: the AVX2 tier's and the AVX-512 tier's take the same items.
package protocol LUTBlockKernels {
    /// y[i·rows + r] for the row blocks and activation tiles of `items` (item = block·tiles + tile,
    /// tiles of `LUTKernelAVX2.tileRows`), tables of activation row i at `tableBase + i·tableStride`.
    /// `prefetchNextQuads` (N = 1): each quad's kernel brings the next quad into L2 instead of
    /// its own next bytes (see `LUTKernelAVX2.multiply`).
    static func run(_ layout: LUTLayout, groupSize: Int, rows: Int, n: Int, tables: LUTTables,
                    tableBase: UnsafeMutableRawPointer, tableStride: Int, y: UnsafeMutablePointer<Float>,
                    items: Range<Int>, prefetchNextQuads: Bool)
}

/// The LUT family on AVX2: the sums of `LUTKernel.portable`, 32 lookups per `vpshufb`, on the
/// `LUTLayout` permutation. `vpmaddubsw` takes the plane weights (bytes 2ᵖ, 2ᵖ⁺¹) as its
/// unsigned operand and the int8 lookups as its signed one, adding a plane pair of one row into
/// int16 (a lone plane: its weight twice, on its two lookups of a row interleaved by
/// `vpunpck*bw`), so all planes of a row add into one int16 per lane. Int16 holds: per group
/// (G ≤ 128), a lane's row adds G/8 lookups of at most 127 per plane, at most
/// (2ᵇ − 1)·127·G/8 = 30480 at 4 bits (14224 at 3; the fifth plane of mixed value codes adds
/// into accumulators of its own), and a sign matrix's blocks of up to 256 columns 4064. The
/// two lanes are added in int16 only below 4 bits. (Tables biased to UInt8 as the unsigned
/// operand would need the bias subtracted at every flush.)
///
/// For N > 1 activation rows, each chunk's weight indices are decoded once and looked up in
/// the tables of a tile of activation rows.
package enum LUTKernelAVX2: LUTBlockKernels {
    /// Activation rows sharing one decode of the weight indices: 4 is faster than 2 at every
    /// width, and more would not fit the accumulators in 16 registers. A tile's last 1–3 rows go
    /// by pairs, then alone.
    package static let tileRows = 4

    /// `LUTBlockKernels.run`: every width, sign matrices included.
    package static func run(_ layout: LUTLayout, groupSize: Int, rows: Int, n: Int, tables: LUTTables,
                            tableBase: UnsafeMutableRawPointer, tableStride: Int, y: UnsafeMutablePointer<Float>,
                            items: Range<Int>, prefetchNextQuads: Bool = false) {
        let p = prefetchNextQuads
        switch layout.bits {
        case 1 where layout.isSignMatrix: body(SignPlane.self, layout, groupSize, rows, n, tables, tableBase,
                                               tableStride, y, items, p)
        case 1: body(Static1.self, layout, groupSize, rows, n, tables, tableBase, tableStride, y, items, p)
        case 2: body(Static2.self, layout, groupSize, rows, n, tables, tableBase, tableStride, y, items, p)
        case 3: body(Static3.self, layout, groupSize, rows, n, tables, tableBase, tableStride, y, items, p)
        case 4: body(Static4.self, layout, groupSize, rows, n, tables, tableBase, tableStride, y, items, p)
        // 4-bit mixed value codes
        default: body(Static5.self, layout, groupSize, rows, n, tables, tableBase, tableStride, y, items, p)
        }
    }

    package static func tiles(n: Int) -> Int { (n + tileRows - 1) / tileRows }

    /// Below this many activation rows, `multiply` runs each quad once per row in the one-row
    /// kernel rather than in tiles: below a tile at every width, and at any N at 1 bit, where a
    /// tile's shared decode of one plane saves less than the one-row kernel's sharing of table
    /// loads across a quad (measured faster at every N from 4 to 1024; at 2 bits neither wins
    /// clearly). (Sign matrices do not come here: `SignMatrix` calls `run`, in tiles.)
    static func rowsPassedOneByOne(_ layout: LUTLayout) -> Int { layout.bits == 1 ? Int.max : tileRows }

    /// N > 1 runs the activation tiles in chunks whose tables take at most this many bytes (half
    /// of a core's share of L2; 256 KiB where the size is unknown), each chunk over every row
    /// block. In block order alone, every row block would read all N rows' tables, from L3 once
    /// they outgrow L2 (a BitStack's prefill runs 16 table rows per token and block).
    package static var tableChunkBytes: Int { Runtime.halfL2Bytes }

    /// Activation rows whose tables fit `tableChunkBytes`.
    package static func rowsPerChunk(tableStride: Int) -> Int { max(1, tableChunkBytes / tableStride) }

    /// Activation tiles whose tables fit `tableChunkBytes`.
    package static func tilesPerChunk(tableStride: Int) -> Int {
        max(1, rowsPerChunk(tableStride: tableStride) / tileRows)
    }

    /// The bit width of a sign matrix's codes: 1, with d = 2 and m = −1 for every row and group,
    /// known when the kernel is specialized, so its flush has neither a branch nor parameters.
    enum SignPlane: StaticInt { static var value: Int { 1 } }

    /// Y = X·Wᵀ on a packed layout: tables of every activation row, then on the thread pool
    /// (`parallelChunks`) whole quads of row blocks for N < `rowsPassedOneByOne` (one activation
    /// row at a time), or every (row block, activation tile) item by quads (a lone last row
    /// through the one-row kernel, quad by quad), each piece in `Kernels.run`.
    package static func multiply<Kernels: LUTBlockKernels>(_: Kernels.Type, _ layout: LUTLayout, rows: Int, cols: Int,
                                                           groupSize: Int, x: UnsafePointer<Float>, n: Int,
                                                           y: UnsafeMutablePointer<Float>) throws {
        let tables = LUTTables(cols: cols, groupSize: groupSize)
        let tableBytes = LUTTables.stride(cols: cols, groupSize: groupSize)
        let ws = try Workspace.current.reserve(try checkedProduct(n, tableBytes, what: "workspace"))
        parallelFor(n) { i in AVX2Kernels.buildTables(tables, x + i * cols, into: ws + i * tableBytes) }
        let tileCount = tiles(n: n)
        let body = { (items: Range<Int>) in
            Kernels.run(layout, groupSize: groupSize, rows: rows, n: n, tables: tables, tableBase: ws,
                        tableStride: tableBytes, y: y, items: items, prefetchNextQuads: false)
        }
        // By whole quads, so that each runs in the kernel that reads it as one stream.
        let quadChunk = max(1, rowBlockChunk(blockBytes: layout.blockCodeBytes) / layout.blocksPerQuad)
        if n == 1 {
            parallelChunks(layout.quads, chunk: quadChunk) { quads in body(layout.blocks(ofQuads: quads)) }
            return
        }
        if n < rowsPassedOneByOne(layout) {
            // Few activation rows (at 1 bit, any number): each quad once per row in the one-row
            // kernel, back to back, so the quad comes from DRAM once and from L1/L2 for the next
            // rows. The second row's pass, whose own bytes are in cache, prefetches the next quad,
            // so the first row's pass finds it in L2. The rows go in chunks whose tables fit
            // `tableChunkBytes`, each chunk over every quad, as each quad reads all its chunk's
            // tables: with all rows at once, N = 1024's tables would stream from L3.
            let perChunk = rowsPerChunk(tableStride: tableBytes)
            for first in stride(from: 0, to: n, by: perChunk) {
                let last = min(n, first + perChunk)
                parallelChunks(layout.quads, chunk: quadChunk) { quads in
                    for quad in quads {
                        let blocks = layout.blocks(ofQuads: quad..<(quad + 1))
                        for i in first..<last {
                            Kernels.run(layout, groupSize: groupSize, rows: rows, n: 1, tables: tables,
                                        tableBase: ws + i * tableBytes, tableStride: tableBytes, y: y + i * rows,
                                        items: blocks, prefetchNextQuads: i == first + 1)
                        }
                    }
                }
            }
            return
        }
        let perTableChunk = tilesPerChunk(tableStride: tableBytes)
        if n % tileRows == 1, tiles(n: n - 1) <= perTableChunk {
            // A lone last activation row (N = 5, 9, …) runs in the one-row kernel on each quad
            // right after the quad's tiles, while the quad is in cache, rather than in the
            // tiles' single-row path, which shares no table loads across a quad.
            let tiled = n - 1, tiledCount = tiles(n: tiled)
            parallelChunks(layout.quads, chunk: 1) { quads in
                for quad in quads {
                    let blocks = layout.blocks(ofQuads: quad..<(quad + 1))
                    Kernels.run(layout, groupSize: groupSize, rows: rows, n: tiled, tables: tables, tableBase: ws,
                                tableStride: tableBytes, y: y,
                                items: (blocks.lowerBound * tiledCount)..<(blocks.upperBound * tiledCount),
                                prefetchNextQuads: false)
                    Kernels.run(layout, groupSize: groupSize, rows: rows, n: 1, tables: tables,
                                tableBase: ws + tiled * tableBytes, tableStride: tableBytes, y: y + tiled * rows,
                                items: blocks, prefetchNextQuads: false)
                }
            }
            return
        }
        // Per table chunk (the tiles whose tables fit `tableChunkBytes`), that chunk's tiles of
        // every row block, the blocks by quads on the pool (one call for all of a range's blocks
        // when the chunk holds every tile, as at N ≤ 63 for 4096 columns).
        for first in stride(from: 0, to: tileCount, by: perTableChunk) {
            let last = min(tileCount, first + perTableChunk)
            parallelChunks(layout.quads, chunk: 1) { quads in
                let blocks = layout.blocks(ofQuads: quads)
                if first == 0 && last == tileCount {
                    body((blocks.lowerBound * tileCount)..<(blocks.upperBound * tileCount))
                } else {
                    for block in blocks { body((block * tileCount + first)..<(block * tileCount + last)) }
                }
            }
        }
    }

    @inline(__always)
    static func load(_ p: UnsafeRawPointer) -> __m256i { p.loadUnaligned(as: __m256i.self) }

    /// The nibble indices of one chunk of one row block: low (tables 4c | 4c+1) and high
    /// (tables 4c+2 | 4c+3) nibbles of up to 5 unit vectors.
    struct Indices {
        var l0, h0, l1, h1, l2, h2, l3, h3, l4, h4: __m256i

        @inline(__always)
        init(bits: Int, _ w: UnsafeRawPointer) {
            let mask = _mm256_set1_epi8(0x0F)
            let units = bits == 1 ? 1 : bits
            let v0 = load(w)
            l0 = _mm256_and_si256(v0, mask); h0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), mask)
            let v1 = units > 1 ? load(w + 32) : v0
            l1 = _mm256_and_si256(v1, mask); h1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), mask)
            let v2 = units > 2 ? load(w + 64) : v0
            l2 = _mm256_and_si256(v2, mask); h2 = _mm256_and_si256(_mm256_srli_epi16(v2, 4), mask)
            let v3 = units > 3 ? load(w + 96) : v0
            l3 = _mm256_and_si256(v3, mask); h3 = _mm256_and_si256(_mm256_srli_epi16(v3, 4), mask)
            let v4 = units > 4 ? load(w + 128) : v0
            l4 = _mm256_and_si256(v4, mask); h4 = _mm256_and_si256(_mm256_srli_epi16(v4, 4), mask)
        }
    }

    /// Int16 group accumulators of one row block for one activation row: a0 / a1 hold rows
    /// 0..<8 / 8..<16, every plane p ≤ 3 added at its weight 2ᵖ (`vpmaddubsw` by bytes (1, 2) or
    /// (4, 8) for a plane pair, by 1 or 4 for a lone plane); top0 / top1 the fifth plane of the
    /// 4-bit mixed value codes, at weight 1 (2⁴ would overflow). One pair of accumulators per
    /// block instead of one per unit: the N = 1 quad kernel at 3 and 4 bits needed 16 and spilled.
    struct Accumulators {
        var a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256()
        var top0 = _mm256_setzero_si256(), top1 = _mm256_setzero_si256()

        /// A plane pair's lookups of one unit, planes at `weights` (bytes 2ᵖ, 2ᵖ⁺¹), as int16 per row and lane.
        @inline(__always)
        static func pair(_ weights: __m256i, _ tlo: __m256i, _ thi: __m256i, _ lo: __m256i, _ hi: __m256i) -> __m256i {
            _mm256_add_epi16(_mm256_maddubs_epi16(weights, _mm256_shuffle_epi8(tlo, lo)),
                             _mm256_maddubs_epi16(weights, _mm256_shuffle_epi8(thi, hi)))
        }

        @inline(__always)
        mutating func add(bits: Int, _ ix: Indices, _ tlo: __m256i, _ thi: __m256i) {
            if bits >= 2 {
                let planes01 = _mm256_set1_epi16(0x0201)
                var s0 = Accumulators.pair(planes01, tlo, thi, ix.l0, ix.h0)
                var s1 = Accumulators.pair(planes01, tlo, thi, ix.l1, ix.h1)
                if bits >= 4 {
                    let planes23 = _mm256_set1_epi16(0x0804)
                    s0 = _mm256_add_epi16(s0, Accumulators.pair(planes23, tlo, thi, ix.l2, ix.h2))
                    s1 = _mm256_add_epi16(s1, Accumulators.pair(planes23, tlo, thi, ix.l3, ix.h3))
                }
                a0 = _mm256_add_epi16(a0, s0)
                a1 = _mm256_add_epi16(a1, s1)
            }
            if bits % 2 == 1 {
                // Interleave a row's two lookups (k-groups 4c + lane and 4c + 2 + lane) and add
                // each pair with `vpmaddubsw` by the plane's weight: 2 shuffles and 2 multiply-adds
                // per unit instead of 4 shuffles (widen each) and 2 adds; shuffles share one port.
                let weight = _mm256_set1_epi8(bits == 3 ? 4 : 1)
                let lo = _mm256_shuffle_epi8(tlo, bits == 1 ? ix.l0 : bits == 3 ? ix.l2 : ix.l4)
                let hi = _mm256_shuffle_epi8(thi, bits == 1 ? ix.h0 : bits == 3 ? ix.h2 : ix.h4)
                let lone0 = _mm256_maddubs_epi16(weight, _mm256_unpacklo_epi8(lo, hi))
                let lone1 = _mm256_maddubs_epi16(weight, _mm256_unpackhi_epi8(lo, hi))
                if bits == 5 {
                    top0 = _mm256_add_epi16(top0, lone0)
                    top1 = _mm256_add_epi16(top1, lone1)
                } else {
                    a0 = _mm256_add_epi16(a0, lone0)
                    a1 = _mm256_add_epi16(a1, lone1)
                }
            }
        }

        /// Adds the two lanes (k-group parities) of 8 row sums into int32: in int16 when their
        /// sum fits (`wide` false), else each lane widened first.
        @inline(__always)
        static func laneSum(_ a: __m256i, wide: Bool) -> __m256i {
            wide ? _mm256_add_epi32(_mm256_cvtepi16_epi32(a.lowHalf), _mm256_cvtepi16_epi32(a.highHalf))
                 : _mm256_cvtepi16_epi32(_mm_add_epi16(a.lowHalf, a.highHalf))
        }

        /// Σₚ 2ᵖ·Lₚ for rows 0..<8 and 8..<16.
        @inline(__always)
        func planeSums(bits: Int) -> (__m256i, __m256i) {
            // A lane's sums reach 30480 with planes 0–3 (see the type's comment): two would not fit.
            let wide = bits >= 4
            let s0 = Accumulators.laneSum(a0, wide: wide), s1 = Accumulators.laneSum(a1, wide: wide)
            guard bits == 5 else { return (s0, s1) }
            return (_mm256_add_epi32(s0, _mm256_slli_epi32(Accumulators.laneSum(top0, wide: false), 4)),
                    _mm256_add_epi32(s1, _mm256_slli_epi32(Accumulators.laneSum(top1, wide: false), 4)))
        }
    }

    /// How a layout's group parameters enter the outputs: Float16 or Float32, 2ᵇ − 1 levels, or a
    /// sign matrix's shared d = 2, m = −1, whose terms reduce to ts·S.
    struct ParameterFormat {
        let half: Bool
        let levels: Float
        let signs: Bool

        init<Bits: StaticInt>(_ layout: LUTLayout, _: Bits.Type, half: Bool? = nil) {
            (self.half, levels, signs) = (half ?? layout.halfParams, Float((1 << Bits.value) - 1),
                                          Bits.self == SignPlane.self)
        }
    }

    /// Float outputs of one row block for one activation row.
    struct Outputs {
        var y0 = _mm256_setzero_ps(), y1 = _mm256_setzero_ps()

        /// y += (d/2)·ts·Σₚ 2ᵖ·Lₚ + (m + d·(2ᵇ − 1)/2)·Σx for one group, evaluated as
        /// d·((ts/2)·S + ((2ᵇ − 1)/2)·Σx) + m·Σx so that d and m are the matrix's own values.
        /// Parameters at p: 16 d, then 16 m, Float16 or Float32 (`GroupParameters`). A sign
        /// matrix (d = 2, m = −1 everywhere) adds just ts·S.
        @inline(__always)
        mutating func add(_ sums: (__m256i, __m256i), params p: UnsafeRawPointer, format: ParameterFormat,
                          tableScale: Float, groupSum: Float) {
            if format.signs {
                let scale = _mm256_set1_ps(tableScale)
                y0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums.0), scale, y0)
                y1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums.1), scale, y1)
                return
            }
            let half = format.half, e = GroupParameters.elementBytes(half: half)
            let scale = _mm256_set1_ps(tableScale / 2), zeroPoint = _mm256_set1_ps(format.levels / 2 * groupSum)
            let sum = _mm256_set1_ps(groupSum)
            let t0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums.0), scale, zeroPoint)
            let t1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums.1), scale, zeroPoint)
            y0 = _mm256_fmadd_ps(VectorsAVX2.load8(p, half: half), t0, y0)
            y1 = _mm256_fmadd_ps(VectorsAVX2.load8(p + 8 * e, half: half), t1, y1)
            y0 = _mm256_fmadd_ps(VectorsAVX2.load8(p + 16 * e, half: half), sum, y0)
            y1 = _mm256_fmadd_ps(VectorsAVX2.load8(p + 24 * e, half: half), sum, y1)
        }

        @inline(__always)
        func store(_ y: UnsafeMutablePointer<Float>, first: Int, rows: Int) {
            VectorsAVX2.storePrefix(y0, y + first, count: rows - first)
            if first + 8 < rows { VectorsAVX2.storePrefix(y1, y + first + 8, count: rows - first - 8) }
        }
    }

    /// `run` for one bit width: N = 1 by groups of row blocks, N > 1 by chunks of activation tiles.
    @inline(__always)
    static func body<Bits: StaticInt>(_: Bits.Type, _ layout: LUTLayout, _ groupSize: Int, _ rows: Int, _ n: Int,
                                      _ tables: LUTTables,
                     _ tableBase: UnsafeMutableRawPointer, _ tableStride: Int, _ y: UnsafeMutablePointer<Float>,
                     _ items: Range<Int>, _ prefetchNextQuads: Bool) {
        let tileCount = tiles(n: n)
        if n == 1 {
            // One activation row: the row blocks of a quad together (they share each table load
            // and read one stream of codes); a quad of 3 or 1 (a sign matrix's), or one that
            // `items` holds only in part, block by block.
            var block = items.lowerBound
            while block < items.upperBound {
                let size = layout.quadSize(ofBlock: block)
                let wholeQuad = block % layout.blocksPerQuad == 0 && block + size <= items.upperBound
                let half = layout.halfParams
                if wholeQuad && size == 4 {
                    if half {
                        blocksOfOneRow(Bits.self, Static4.self, Static1.self, layout, groupSize, rows, tables,
                                       tableBase, y, block, prefetchNextQuads)
                    }
                    else {
                        blocksOfOneRow(Bits.self, Static4.self, Static0.self, layout, groupSize, rows, tables,
                                       tableBase, y, block, prefetchNextQuads)
                    }
                    block += 4
                } else if wholeQuad && size == 2 {
                    if half {
                        blocksOfOneRow(Bits.self, Static2.self, Static1.self, layout, groupSize, rows, tables,
                                       tableBase, y, block, prefetchNextQuads)
                    }
                    else {
                        blocksOfOneRow(Bits.self, Static2.self, Static0.self, layout, groupSize, rows, tables,
                                       tableBase, y, block, prefetchNextQuads)
                    }
                    block += 2
                } else {
                    tile(Bits.self, Static0.self, layout, groupSize, rows, n, tables, tableBase, tableStride, y,
                         block: block, tileFirst: 0)
                    block += 1
                }
            }
            return
        }
        // N > 1: the activation tiles in chunks whose tables fit `tableChunkBytes`; per chunk,
        // block by block (a block's codes stay in L1 across the chunk's tiles).
        let tilesPerTableChunk = tilesPerChunk(tableStride: tableStride)
        let firstBlock = items.lowerBound / tileCount, endBlock = (items.upperBound - 1) / tileCount + 1
        for chunk in stride(from: 0, to: tileCount, by: tilesPerTableChunk) {
            for block in firstBlock..<endBlock {
                // (Sign matrices' blocks are not interleaved, and sit in L2 when BitStack runs them.)
                var prefetchNextQuad = layout.blocksPerQuad > 1
                for t in chunk..<min(tileCount,
                                     chunk + tilesPerTableChunk) where items.contains(block * tileCount + t) {
                    if prefetchNextQuad {
                        tile(Bits.self, Static1.self, layout, groupSize, rows, n, tables, tableBase, tableStride, y,
                             block: block, tileFirst: t * tileRows)
                    } else {
                        tile(Bits.self, Static0.self, layout, groupSize, rows, n, tables, tableBase, tableStride, y,
                             block: block, tileFirst: t * tileRows)
                    }
                    prefetchNextQuad = false
                }
            }
        }
    }

    /// Rows of one row block for the activation rows tileFirst ..< tileFirst + tileRows;
    /// `PrefetchNextQuad` 1 or 0 (a static choice: a branch in the chunk loops, even never taken,
    /// slows BitStack's sign products measurably).
    @inline(__always)
    static func tile<Bits: StaticInt, PrefetchNextQuad: StaticInt>(_: Bits.Type, _: PrefetchNextQuad.Type,
                                                                   _ layout: LUTLayout, _ groupSize: Int,
                     _ rows: Int, _ n: Int, _ tables: LUTTables, _ tableBase: UnsafeMutableRawPointer,
                     _ tableStride: Int,
                     _ y: UnsafeMutablePointer<Float>, block: Int, tileFirst: Int) {
        let bits = Bits.value
        let groups = tables.groups, chunksPerGroup = groupSize / 16
        let format = ParameterFormat(layout, Bits.self)
        // This block's chunks and groups are a quad's worth apart (`LUTLayout`): per group, runs
        // of k chunks runStride apart, then the quad's parameters (paramSkip bytes; none in a
        // sign matrix, whose parameter pointer is never read).
        let quadSize = layout.quadSize(ofBlock: block)
        let unitBytes = 32 * bits, k = LUTLayout.unitsPerRun(bits: bits), runStride = quadSize * k * unitBytes
        let paramSkip = quadSize * layout.blockParamBytes, groupStride = layout.quadGroupBytes(quadSize: quadSize)
        let base = UnsafeRawPointer(layout.data.pointer)
        let w0 = base + layout.unitOffset(block: block, chunk: 0)
        let rowParams = layout.isSignMatrix ? base : base + layout.paramOffset(block: block, group: 0)
        // Block i of a quad prefetches the i-th block's worth of bytes of the next quad, one
        // chunk's share per chunk (on the first tile of each block and call): reading every
        // quad-th unit alone left the hardware prefetchers behind.
        let inQuad = block % layout.blocksPerQuad, firstOfQuad = block - inQuad
        let nextQuad = base + layout.quadOffset(first: firstOfQuad + quadSize) + inQuad * layout.blockBytes
        let share = layout.blockBytes / layout.chunks
        let prefetching = PrefetchNextQuad.value == 1
        var first = tileFirst
        while first < min(tileFirst + tileRows, n) {
            let t0 = UnsafeRawPointer(tableBase + first * tableStride)
            let ts0 = UnsafePointer(tables.tableScales(tableBase + first * tableStride))
            let sx0 = UnsafePointer(tables.groupSums(tableBase + first * tableStride))
            if first + 3 < n {
                // Four activation rows: decode each chunk once, look up in all four rows' tables.
                let ts = (ts0, ts0 + tableStride / 4, ts0 + 2 * tableStride / 4, ts0 + 3 * tableStride / 4)
                let sx = (sx0, sx0 + tableStride / 4, sx0 + 2 * tableStride / 4, sx0 + 3 * tableStride / 4)
                var out0 = Outputs(), out1 = Outputs(), out2 = Outputs(), out3 = Outputs()
                var c = 0, u = w0
                for g in 0..<groups {
                    var acc0 = Accumulators(), acc1 = Accumulators(), acc2 = Accumulators(), acc3 = Accumulators()
                    for _ in 0..<chunksPerGroup / k {
                        for j in 0..<k {
                            if prefetching { CodePrefetch.ahead(of: nextQuad + c * share, bytes: share, distance: 0) }
                            let ix = Indices(bits: bits, u + j * unitBytes)
                            let t = t0 + 64 * c
                            acc0.add(bits: bits, ix, load(t), load(t + 32))
                            acc1.add(bits: bits, ix, load(t + tableStride), load(t + tableStride + 32))
                            acc2.add(bits: bits, ix, load(t + 2 * tableStride), load(t + 2 * tableStride + 32))
                            acc3.add(bits: bits, ix, load(t + 3 * tableStride), load(t + 3 * tableStride + 32))
                            c += 1
                        }
                        u += runStride
                    }
                    u += paramSkip
                    let p = rowParams + g * groupStride
                    out0.add(acc0.planeSums(bits: bits), params: p, format: format, tableScale: ts.0[g],
                             groupSum: sx.0[g])
                    out1.add(acc1.planeSums(bits: bits), params: p, format: format, tableScale: ts.1[g],
                             groupSum: sx.1[g])
                    out2.add(acc2.planeSums(bits: bits), params: p, format: format, tableScale: ts.2[g],
                             groupSum: sx.2[g])
                    out3.add(acc3.planeSums(bits: bits), params: p, format: format, tableScale: ts.3[g],
                             groupSum: sx.3[g])
                }
                let firstRow = block * LUTLayout.rowsPerBlock
                out0.store(y + first * rows, first: firstRow, rows: rows)
                out1.store(y + (first + 1) * rows, first: firstRow, rows: rows)
                out2.store(y + (first + 2) * rows, first: firstRow, rows: rows)
                out3.store(y + (first + 3) * rows, first: firstRow, rows: rows)
                first += 4
            } else if first + 1 < n {
                // Two activation rows: decode each chunk once, look up in both rows' tables.
                let t1 = t0 + tableStride
                let ts1 = ts0 + tableStride / 4, sx1 = sx0 + tableStride / 4
                var out0 = Outputs(), out1 = Outputs()
                var c = 0, u = w0
                for g in 0..<groups {
                    var acc0 = Accumulators(), acc1 = Accumulators()
                    for _ in 0..<chunksPerGroup / k {
                        for j in 0..<k {
                            if prefetching { CodePrefetch.ahead(of: nextQuad + c * share, bytes: share, distance: 0) }
                            let ix = Indices(bits: bits, u + j * unitBytes)
                            acc0.add(bits: bits, ix, load(t0 + 64 * c), load(t0 + 64 * c + 32))
                            acc1.add(bits: bits, ix, load(t1 + 64 * c), load(t1 + 64 * c + 32))
                            c += 1
                        }
                        u += runStride
                    }
                    u += paramSkip
                    out0.add(acc0.planeSums(bits: bits), params: rowParams + g * groupStride, format: format,
                             tableScale: ts0[g], groupSum: sx0[g])
                    out1.add(acc1.planeSums(bits: bits), params: rowParams + g * groupStride, format: format,
                             tableScale: ts1[g], groupSum: sx1[g])
                }
                out0.store(y + first * rows, first: block * LUTLayout.rowsPerBlock, rows: rows)
                out1.store(y + (first + 1) * rows, first: block * LUTLayout.rowsPerBlock, rows: rows)
                first += 2
            } else {
                var out = Outputs()
                var c = 0, u = w0
                for g in 0..<groups {
                    var acc = Accumulators()
                    for _ in 0..<chunksPerGroup / k {
                        for j in 0..<k {
                            if prefetching { CodePrefetch.ahead(of: nextQuad + c * share, bytes: share, distance: 0) }
                            acc.add(bits: bits, Indices(bits: bits, u + j * unitBytes), load(t0 + 64 * c),
                                    load(t0 + 64 * c + 32))
                            c += 1
                        }
                        u += runStride
                    }
                    u += paramSkip
                    out.add(acc.planeSums(bits: bits), params: rowParams + g * groupStride, format: format,
                            tableScale: ts0[g], groupSum: sx0[g])
                }
                out.store(y + first * rows, first: block * LUTLayout.rowsPerBlock, rows: rows)
                first += 1
            }
        }
    }

    /// N = 1 on the quad of `Count` (2 or 4) row blocks from `block` on: chunk by chunk, the
    /// quad's units in turn, then the quad's parameters for the group, one stream prefetched
    /// `LUTLayout.quadPrefetchDistance` ahead into L2 (or, with `prefetchNextQuad`, the next quad's
    /// bytes: see `multiply`) and, below 4 bits, `LUTLayout.quadL1PrefetchDistance` ahead into L1. Kept out of
    /// line: once inlined into `run` with the N > 1 paths, its chunk loop lost registers to their
    /// values and reloaded two constants every chunk.
    @inline(never)
    static func blocksOfOneRow<Bits: StaticInt, Count: StaticInt, Half: StaticInt>(_: Bits.Type, _: Count.Type,
                                                                                   _: Half.Type,
                                                                  _ layout: LUTLayout, _ groupSize: Int,
                                                                  _ rows: Int, _ tables: LUTTables,
                                                                  _ tableBase: UnsafeMutableRawPointer,
                                                                  _ y: UnsafeMutablePointer<Float>, _ block: Int,
                                                                  _ prefetchNextQuad: Bool) {
        let bits = Bits.value, count = Count.value
        let groups = tables.groups, chunksPerGroup = groupSize / 16
        let format = ParameterFormat(layout, Bits.self, half: Half.value == 1)
        // Per group: runs of k chunks, then the quad's blocks' parameters, blockStride bytes each.
        let blockStride = layout.blockParamBytes, paramSkip = count * blockStride
        let unitBytes = 32 * bits, k = LUTLayout.unitsPerRun(bits: bits)
        let w = UnsafeRawPointer(layout.data.pointer) + layout.unitOffset(block: block, chunk: 0)
        let t0 = UnsafeRawPointer(tableBase)
        let ts = UnsafePointer(tables.tableScales(tableBase)), sx = UnsafePointer(tables.groupSums(tableBase))
        var out0 = Outputs(), out1 = Outputs(), out2 = Outputs(), out3 = Outputs()
        // Per run of k chunks (`LUTLayout.unitOffset`), block i's units at u + i·k·unitBytes.
        let nextBlock = k * unitBytes, runBytes = count * nextBlock
        let quadBytes = count * layout.blockBytes
        var c = 0, u = w
        for g in 0..<groups {
            var acc0 = Accumulators(), acc1 = Accumulators(), acc2 = Accumulators(), acc3 = Accumulators()
            for _ in 0..<chunksPerGroup / k {
                // Two calls with constant distances: with the distance in a variable, the
                // prefetches fall behind and 3-bit from DRAM loses a third of its speed.
                if prefetchNextQuad { CodePrefetch.aheadToL2(of: u, bytes: runBytes, distance: quadBytes) }
                else { CodePrefetch.aheadToL2(of: u, bytes: runBytes, distance: LUTLayout.quadPrefetchDistance) }
                if bits <= 3 { CodePrefetch.ahead(of: u, bytes: runBytes, distance: LUTLayout.quadL1PrefetchDistance) }
                for j in 0..<k {
                    let tlo = load(t0 + 64 * c), thi = load(t0 + 64 * c + 32)
                    let v = u + j * unitBytes
                    acc0.add(bits: bits, Indices(bits: bits, v), tlo, thi)
                    acc1.add(bits: bits, Indices(bits: bits, v + nextBlock), tlo, thi)
                    if count > 2 {
                        acc2.add(bits: bits, Indices(bits: bits, v + 2 * nextBlock), tlo, thi)
                        acc3.add(bits: bits, Indices(bits: bits, v + 3 * nextBlock), tlo, thi)
                    }
                    c += 1
                }
                u += runBytes
            }
            if prefetchNextQuad { CodePrefetch.aheadToL2(of: u, bytes: paramSkip, distance: quadBytes) }
            else { CodePrefetch.aheadToL2(of: u, bytes: paramSkip, distance: LUTLayout.quadPrefetchDistance) }
            let q = u
            u += paramSkip
            out0.add(acc0.planeSums(bits: bits), params: q, format: format, tableScale: ts[g], groupSum: sx[g])
            out1.add(acc1.planeSums(bits: bits), params: q + blockStride, format: format, tableScale: ts[g],
                     groupSum: sx[g])
            if count > 2 {
                out2.add(acc2.planeSums(bits: bits), params: q + 2 * blockStride, format: format, tableScale: ts[g],
                         groupSum: sx[g])
                out3.add(acc3.planeSums(bits: bits), params: q + 3 * blockStride, format: format, tableScale: ts[g],
                         groupSum: sx[g])
            }
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
