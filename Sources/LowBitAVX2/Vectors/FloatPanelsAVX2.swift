import _Builtin_intrinsics.intel
import LowBitCore

/// `FloatTile`'s panels on AVX2: 16 rows of a column in two registers, so the product is an
/// outer product per column with no horizontal sums.
enum FloatPanelsAVX2 {
    /// `FloatTile.pack`: whole panels by 8×8 transposes where the columns allow.
    static func packPanels(_ w: UnsafePointer<Float>, rows: Int, cols: Int, into p: UnsafeMutablePointer<Float>) {
        for panel in 0..<((rows + FloatTile.panelRows - 1) / FloatTile.panelRows) {
            let out = p + panel * FloatTile.panelRows * cols, first = panel * FloatTile.panelRows
            if first + FloatTile.panelRows <= rows, cols % 8 == 0 {
                for half in 0..<2 {
                    for c in stride(from: 0, to: cols, by: 8) {
                        transpose8x8(w + (first + 8 * half) * cols + c, stride: cols,
                                     into: out + c * FloatTile.panelRows + 8 * half, outStride: FloatTile.panelRows)
                    }
                }
                continue
            }
            for r in 0..<FloatTile.panelRows {
                let row = first + r
                for c in 0..<cols { out[c * FloatTile.panelRows + r] = row < rows ? w[row * cols + c] : 0 }
            }
        }
    }


    /// y[i·yStride + r] = Σ_c W[r, c]·x[i·cols + c] for r < rows and i < n, on the calling thread,
    /// from W's panels (`pack`) at p. Per panel and group of up to 6 activation rows, 12
    /// accumulators (16 rows × 6 activation rows) take one column at a time: 2 weight loads and
    /// 6 broadcasts feed 12 FMAs Activation
    /// rows in blocks that stay in L2 while the panels pass.
    static func panelProduct(_ p: UnsafePointer<Float>, rows: Int, cols: Int, x: UnsafePointer<Float>, n: Int,
                                     y: UnsafeMutablePointer<Float>, yStride: Int) {
        let block = max(6, (256 * 1024 / (cols * 4)) / 6 * 6)
        let panels = (rows + FloatTile.panelRows - 1) / FloatTile.panelRows
        for start in stride(from: 0, to: n, by: block) {
            let end = min(n, start + block)
            for panel in 0..<panels {
                let first = panel * FloatTile.panelRows, valid = min(FloatTile.panelRows, rows - first)
                let pp = p + first * cols
                var i = start
                while i < end {
                    let count = min(6, end - i)
                    switch count {
                    case 6: panelTile(Static6.self, pp, cols, x + i * cols, y + i * yStride + first, yStride, valid)
                    case 5: panelTile(Static5.self, pp, cols, x + i * cols, y + i * yStride + first, yStride, valid)
                    case 4: panelTile(Static4.self, pp, cols, x + i * cols, y + i * yStride + first, yStride, valid)
                    case 3: panelTile(Static3.self, pp, cols, x + i * cols, y + i * yStride + first, yStride, valid)
                    case 2: panelTile(Static2.self, pp, cols, x + i * cols, y + i * yStride + first, yStride, valid)
                    default: panelTile(Static1.self, pp, cols, x + i * cols, y + i * yStride + first, yStride, valid)
                    }
                    i += count
                }
            }
        }
    }


    /// out[j·outStride + i] = a[i·stride + j] for i, j < 8.
    @inline(__always)
    static func transpose8x8(_ a: UnsafePointer<Float>, stride: Int, into out: UnsafeMutablePointer<Float>,
                             outStride: Int) {
        let r0 = _mm256_loadu_ps(a), r1 = _mm256_loadu_ps(a + stride), r2 = _mm256_loadu_ps(a + 2 * stride),
            r3 = _mm256_loadu_ps(a + 3 * stride)
        let r4 = _mm256_loadu_ps(a + 4 * stride), r5 = _mm256_loadu_ps(a + 5 * stride),
            r6 = _mm256_loadu_ps(a + 6 * stride), r7 = _mm256_loadu_ps(a + 7 * stride)
        // Pairs of rows interleaved, then pairs of pairs, then the 128-bit halves swapped across.
        let t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
            t3 = _mm256_unpackhi_ps(r2, r3)
        let t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5), t6 = _mm256_unpacklo_ps(r6, r7),
            t7 = _mm256_unpackhi_ps(r6, r7)
        @inline(__always) func lo(_ a: __m256, _ b: __m256) -> __m256 {
            _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(a), _mm256_castps_pd(b)))
        }
        @inline(__always) func hi(_ a: __m256, _ b: __m256) -> __m256 {
            _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(a), _mm256_castps_pd(b)))
        }
        let u0 = lo(t0, t2), u1 = hi(t0, t2), u2 = lo(t1, t3), u3 = hi(t1, t3)
        let u4 = lo(t4, t6), u5 = hi(t4, t6), u6 = lo(t5, t7), u7 = hi(t5, t7)
        _mm256_storeu_ps(out, __m256(lowHalf: u0.lowHalf, highHalf: u4.lowHalf))
        _mm256_storeu_ps(out + outStride, __m256(lowHalf: u1.lowHalf, highHalf: u5.lowHalf))
        _mm256_storeu_ps(out + 2 * outStride, __m256(lowHalf: u2.lowHalf, highHalf: u6.lowHalf))
        _mm256_storeu_ps(out + 3 * outStride, __m256(lowHalf: u3.lowHalf, highHalf: u7.lowHalf))
        _mm256_storeu_ps(out + 4 * outStride, __m256(lowHalf: u0.highHalf, highHalf: u4.highHalf))
        _mm256_storeu_ps(out + 5 * outStride, __m256(lowHalf: u1.highHalf, highHalf: u5.highHalf))
        _mm256_storeu_ps(out + 6 * outStride, __m256(lowHalf: u2.highHalf, highHalf: u6.highHalf))
        _mm256_storeu_ps(out + 7 * outStride, __m256(lowHalf: u3.highHalf, highHalf: u7.highHalf))
    }

    /// `Count` activation rows (x, row stride cols) against one panel; y + t·yStride gets the
    /// panel's `valid` rows of activation row t.
    @inline(__always)
    static func panelTile<Count: StaticInt>(_: Count.Type, _ p: UnsafePointer<Float>, _ cols: Int,
                                            _ x: UnsafePointer<Float>,
                                                _ y: UnsafeMutablePointer<Float>, _ yStride: Int, _ valid: Int) {
        let count = Count.value
        var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0
        var b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0
        // Rows past `count` are never read; their pointers stay on row 0 rather than past x.
        let x1 = count > 1 ? x + cols : x, x2 = count > 2 ? x + 2 * cols : x, x3 = count > 3 ? x + 3 * cols : x
        let x4 = count > 4 ? x + 4 * cols : x, x5 = count > 5 ? x + 5 * cols : x
        for c in 0..<cols {
            let lo = _mm256_loadu_ps(p + 16 * c), hi = _mm256_loadu_ps(p + 16 * c + 8)
            var v = _mm256_set1_ps(x[c])
            a0 = _mm256_fmadd_ps(lo, v, a0); b0 = _mm256_fmadd_ps(hi, v, b0)
            if count > 1 { v = _mm256_set1_ps(x1[c]); a1 = _mm256_fmadd_ps(lo, v, a1); b1 = _mm256_fmadd_ps(hi, v, b1) }
            if count > 2 { v = _mm256_set1_ps(x2[c]); a2 = _mm256_fmadd_ps(lo, v, a2); b2 = _mm256_fmadd_ps(hi, v, b2) }
            if count > 3 { v = _mm256_set1_ps(x3[c]); a3 = _mm256_fmadd_ps(lo, v, a3); b3 = _mm256_fmadd_ps(hi, v, b3) }
            if count > 4 { v = _mm256_set1_ps(x4[c]); a4 = _mm256_fmadd_ps(lo, v, a4); b4 = _mm256_fmadd_ps(hi, v, b4) }
            if count > 5 { v = _mm256_set1_ps(x5[c]); a5 = _mm256_fmadd_ps(lo, v, a5); b5 = _mm256_fmadd_ps(hi, v, b5) }
        }
        @inline(__always) func store(_ a: __m256, _ b: __m256, _ t: Int) {
            VectorsAVX2.storePrefix(a, y + t * yStride, count: valid)
            if valid > 8 { VectorsAVX2.storePrefix(b, y + t * yStride + 8, count: valid - 8) }
        }
        store(a0, b0, 0)
        if count > 1 { store(a1, b1, 1) }
        if count > 2 { store(a2, b2, 2) }
        if count > 3 { store(a3, b3, 3) }
        if count > 4 { store(a4, b4, 4) }
        if count > 5 { store(a5, b5, 5) }
    }
}
