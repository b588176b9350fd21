import _Builtin_intrinsics.intel
import LowBitCPU
import LowBitCore

/// The dequant family on AVX2 with float activations (act_bits 32), on the int8 kernel's
/// `DequantLayout`: per group, y += d·Σₖ qₖ·xₖ + m·Σₖ xₖ with x as given (no rounding), so the
/// error is float rounding only, as in `DequantKernel.multiplyFloat`.
///
/// A 32-byte step holds 4 bytes per row in the row's 32-bit lane; byte j of a sub-step's
/// (mask-and-shift) codes is column 4t + j. One `vpshufb` moves byte j of every lane to the
/// lane's low byte, `vcvtdq2ps` makes 8 rows' codes floats, and an FMA adds them times the
/// broadcast xₖ. A tile of 1, 2 or 4 activation rows shares each conversion; the 8 float
/// accumulators are split over the tile's rows and then over columns, so that 8 FMA chains run
/// at once (one chain per row waits on the FMA latency).
enum DequantFloatKernelAVX2 {
    /// Activation rows per tile: the int8 kernel's tiling.
    static let tileRows = DequantKernelAVX2.tileRows

    /// Y = X·Wᵀ on a packed layout: Σx per activation row and group, then every
    /// (row block, activation tile) item on the thread pool.
    static func multiply(_ layout: DequantLayout, rows: Int, cols: Int, groupSize: Int, x: UnsafePointer<Float>, n: Int,
                         y: UnsafeMutablePointer<Float>) throws {
        let ws = try Workspace.current.reserve(try checkedProduct(n, cols / groupSize, 4, what: "workspace"))
        let sums = ws.assumingMemoryBound(to: Float.self)
        DequantLayout.groupSums(x, n: n, cols: cols, groupSize: groupSize, into: sums)
        let tileCount = DequantKernelAVX2.tiles(n: n)
        parallelRanges(layout.rowBlocks * tileCount) { items in
            for item in items {
                let block = item / tileCount
                var first = (item % tileCount) * tileRows
                let end = min(first + tileRows, n)
                // A tile of 4, or its last 1–3 rows by a pair and then one.
                while first < end {
                    let count = end - first >= 4 ? 4 : end - first >= 2 ? 2 : 1
                    switch (layout.width, count) {
                    case (8, 4): tile(Static8.self, Static4.self, layout, groupSize, rows, cols, x, sums, y, block,
                                      first)
                    case (8, 2): tile(Static8.self, Static2.self, layout, groupSize, rows, cols, x, sums, y, block,
                                      first)
                    case (8, _): tile(Static8.self, Static1.self, layout, groupSize, rows, cols, x, sums, y, block,
                                      first)
                    case (4, 4): tile(Static4.self, Static4.self, layout, groupSize, rows, cols, x, sums, y, block,
                                      first)
                    case (4, 2): tile(Static4.self, Static2.self, layout, groupSize, rows, cols, x, sums, y, block,
                                      first)
                    case (4, _): tile(Static4.self, Static1.self, layout, groupSize, rows, cols, x, sums, y, block,
                                      first)
                    case (_, 4): tile(Static2.self, Static4.self, layout, groupSize, rows, cols, x, sums, y, block,
                                      first)
                    case (_, 2): tile(Static2.self, Static2.self, layout, groupSize, rows, cols, x, sums, y, block,
                                      first)
                    default: tile(Static2.self, Static1.self, layout, groupSize, rows, cols, x, sums, y, block, first)
                    }
                    first += count
                }
            }
        }
    }

    /// Eight float vectors addressed by index: the loops over them unroll, so every index is a
    /// compile-time constant and the switches fold away.
    struct Eight {
        var v0 = _mm256_setzero_ps(), v1 = _mm256_setzero_ps(), v2 = _mm256_setzero_ps(), v3 = _mm256_setzero_ps()
        var v4 = _mm256_setzero_ps(), v5 = _mm256_setzero_ps(), v6 = _mm256_setzero_ps(), v7 = _mm256_setzero_ps()

        @inline(__always)
        subscript(_ i: Int) -> __m256 {
            get {
                switch i {
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
            set {
                switch i {
                case 0: v0 = newValue
                case 1: v1 = newValue
                case 2: v2 = newValue
                case 3: v3 = newValue
                case 4: v4 = newValue
                case 5: v5 = newValue
                case 6: v6 = newValue
                default: v7 = newValue
                }
            }
        }
    }

    /// Rows 8·block ..< 8·block + 8 for activation rows first ..< first + Tile.
    @inline(__always)
    static func tile<Width: StaticInt, Tile: StaticInt>(_: Width.Type, _: Tile.Type, _ layout: DequantLayout,
                                                        _ groupSize: Int,
                                                         _ rows: Int, _ cols: Int, _ x: UnsafePointer<Float>,
                                                         _ sums: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                                         _ block: Int, _ first: Int) {
        let width = Width.value, tile = Tile.value
        let chains = 8 / tile  // accumulators per activation row, taking columns in turn
        let groups = cols / groupSize, columnsPerStep = 32 / width, stepsPerGroup = groupSize / columnsPerStep
        let mask = _mm256_set1_epi8(width == 8 ? -1 : width == 4 ? 0x0F : 0x03)
        // Byte j of each 32-bit lane to the lane's low byte, the other three bytes zero.
        @inline(__always) func select(_ j: Int8) -> __m256i {
            let z: Int8 = -128
            return _mm256_setr_epi8(j, z, z, z, 4 + j, z, z, z, 8 + j, z, z, z, 12 + j, z, z, z,
                                    j, z, z, z, 4 + j, z, z, z, 8 + j, z, z, z, 12 + j, z, z, z)
        }
        let select0 = select(0), select1 = select(1), select2 = select(2), select3 = select(3)
        let w = UnsafeRawPointer(layout.codes.pointer) + block &* layout.blockCodeBytes
        let half = layout.params.half, e = layout.params.elementBytes
        let params = layout.params.address(block * groups * 16)
        let xs = x + first * cols
        var out = Eight()
        for g in 0..<groups {
            var acc = Eight()
            for step in 0..<stepsPerGroup {
                let v = (w + (g &* stepsPerGroup &+ step) &* 32).loadUnaligned(as: __m256i.self)
                let column = xs + (g &* groupSize &+ step &* columnsPerStep)
                for t in 0..<(8 / width) {
                    let codes = width == 8 ? v : _mm256_and_si256(t == 0 ? v : _mm256_srli_epi16(v, Int32(t * width)),
                                                                  mask)
                    for j in 0..<4 {
                        let select = j == 0 ? select0 : j == 1 ? select1 : j == 2 ? select2 : select3
                        let q = _mm256_cvtepi32_ps(_mm256_shuffle_epi8(codes, select))
                        for i in 0..<tile {
                            let c = i * chains + (4 * t + j) % chains
                            acc[c] = _mm256_fmadd_ps(q, _mm256_broadcast_ss(column + (i &* cols &+ 4 &* t &+ j)),
                                                     acc[c])
                        }
                    }
                }
            }
            let d = VectorsAVX2.load8(params + g * 16 * e, half: half)
            let m = VectorsAVX2.load8(params + (g * 16 + 8) * e, half: half)
            for i in 0..<tile {
                var s = acc[i * chains]
                for c in 1..<chains { s = _mm256_add_ps(s, acc[i * chains + c]) }
                out[i] = _mm256_fmadd_ps(m, _mm256_set1_ps(sums[(first + i) * groups + g]),
                                         _mm256_fmadd_ps(d, s, out[i]))
            }
        }
        let firstRow = block * DequantLayout.rowsPerBlock
        for i in 0..<tile { VectorsAVX2.storePrefix(out[i], y + (first + i) * rows + firstRow, count: rows - firstRow) }
    }
}
