#if LOWBIT_AVX2
import _Builtin_intrinsics.intel
#endif

/// Float32 matrix × activation rows, register-tiled: the reference model's layers, and BitStack
/// products of many activation rows on a slice of weights rebuilt in Float32 (`Stack.multiply`).
public enum FloatTile {
    /// y[i·yStride + r] = Σ_c w[r·cols + c]·x[i·cols + c] for r < rows and i < n, on the calling
    /// thread. cols must be a multiple of 8. Activation rows in blocks that stay in L2 while
    /// every weight row passes them.
    public static func product(_ w: UnsafePointer<Float>, rows: Int, cols: Int, x: UnsafePointer<Float>, n: Int,
                               y: UnsafeMutablePointer<Float>, yStride: Int) {
        let block = max(4, (128 * 1024 / (cols * 4)) & ~3)
        for start in stride(from: 0, to: n, by: block) {
            let tokens = start..<min(n, start + block)
            #if LOWBIT_AVX2
            if Runtime.useAVX2 {
                tileAVX2(w, rows: yStride, cols: cols, x: x, y: y, rowRange: 0..<rows, tokens: tokens)
                continue
            }
            #endif
            tilePortable(w, rows: yStride, cols: cols, x: x, y: y, rowRange: 0..<rows, tokens: tokens)
        }
    }

    /// y[i·rows + r] = w_r · x_i for r in rowRange and i in tokens: one weight row against up to 4
    /// activation rows (`rows` is y's row stride).
    static func tilePortable(_ w: UnsafePointer<Float>, rows: Int, cols: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                             rowRange: Range<Int>, tokens: Range<Int>) {
        let xb = UnsafeRawPointer(x)
        for r in rowRange {
            let wr = UnsafeRawPointer(w + r * cols)
            var i = tokens.lowerBound
            while i < tokens.upperBound {
                let t = min(4, tokens.upperBound - i)
                var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
                let x0 = xb + i * cols * 4
                for c in stride(from: 0, to: cols, by: 8) {
                    let wv = wr.loadUnaligned(fromByteOffset: c * 4, as: SIMD8<Float>.self)
                    a0.addProduct(wv, x0.loadUnaligned(fromByteOffset: c * 4, as: SIMD8<Float>.self))
                    if t > 1 { a1.addProduct(wv, x0.loadUnaligned(fromByteOffset: (cols + c) * 4, as: SIMD8<Float>.self)) }
                    if t > 2 { a2.addProduct(wv, x0.loadUnaligned(fromByteOffset: (2 * cols + c) * 4, as: SIMD8<Float>.self)) }
                    if t > 3 { a3.addProduct(wv, x0.loadUnaligned(fromByteOffset: (3 * cols + c) * 4, as: SIMD8<Float>.self)) }
                }
                y[i * rows + r] = a0.sum()
                if t > 1 { y[(i + 1) * rows + r] = a1.sum() }
                if t > 2 { y[(i + 2) * rows + r] = a2.sum() }
                if t > 3 { y[(i + 3) * rows + r] = a3.sum() }
                i += t
            }
        }
    }

    #if LOWBIT_AVX2
    /// The same on AVX2 with a 2 weight rows × 4 activation rows register tile (6 loads per 8
    /// FMAs instead of 5 per 4); leftover activation rows go one at a time.
    static func tileAVX2(_ w: UnsafePointer<Float>, rows: Int, cols: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                         rowRange: Range<Int>, tokens: Range<Int>) {
        var r = rowRange.lowerBound
        while r < rowRange.upperBound {
            let pair = r + 1 < rowRange.upperBound
            let w0 = w + r * cols, w1 = pair ? w0 + cols : w0
            var i = tokens.lowerBound
            while i + 4 <= tokens.upperBound {
                let x0 = x + i * cols, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols
                var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0
                for c in stride(from: 0, to: cols, by: 8) {
                    let u = _mm256_loadu_ps(w0 + c), v = _mm256_loadu_ps(w1 + c)
                    let p0 = _mm256_loadu_ps(x0 + c), p1 = _mm256_loadu_ps(x1 + c)
                    let p2 = _mm256_loadu_ps(x2 + c), p3 = _mm256_loadu_ps(x3 + c)
                    a0 = _mm256_fmadd_ps(u, p0, a0); a1 = _mm256_fmadd_ps(u, p1, a1)
                    a2 = _mm256_fmadd_ps(u, p2, a2); a3 = _mm256_fmadd_ps(u, p3, a3)
                    b0 = _mm256_fmadd_ps(v, p0, b0); b1 = _mm256_fmadd_ps(v, p1, b1)
                    b2 = _mm256_fmadd_ps(v, p2, b2); b3 = _mm256_fmadd_ps(v, p3, b3)
                }
                y[i * rows + r] = a0.sum(); y[(i + 1) * rows + r] = a1.sum()
                y[(i + 2) * rows + r] = a2.sum(); y[(i + 3) * rows + r] = a3.sum()
                if pair {
                    y[i * rows + r + 1] = b0.sum(); y[(i + 1) * rows + r + 1] = b1.sum()
                    y[(i + 2) * rows + r + 1] = b2.sum(); y[(i + 3) * rows + r + 1] = b3.sum()
                }
                i += 4
            }
            while i < tokens.upperBound {
                let xi = x + i * cols
                var a = _mm256_setzero_ps(), b = a
                for c in stride(from: 0, to: cols, by: 8) {
                    let p = _mm256_loadu_ps(xi + c)
                    a = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + c), p, a)
                    b = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + c), p, b)
                }
                y[i * rows + r] = a.sum()
                if pair { y[i * rows + r + 1] = b.sum() }
                i += 1
            }
            r += pair ? 2 : 1
        }
    }
    #endif
}
