import _Builtin_intrinsics.intel
import LowBitCore

/// Q8_0 blocks with float activations (`GroupedBlockLinear`, module LowBitModel) on AVX2: blocks of 34 bytes, a Float16 d and 32 Int8 q.
enum Q8_0AVX2 {
    /// Per block: 32 Int8 sign-extended and converted to floats once, then 4 FMAs per activation
    /// row (up to 4 rows share the conversion) and one FMA with d.
    static func rows(_ m: GroupedBlockMatrix, x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>,
                     range: Range<Int>) {
        let cols = m.cols, rows = m.rows, blocksPerRow = m.blocksPerRow
        @inline(__always) func dot(_ w: (__m256, __m256, __m256, __m256), _ xb: UnsafePointer<Float>) -> __m256 {
            let s = _mm256_fmadd_ps(w.0, _mm256_loadu_ps(xb), _mm256_mul_ps(w.1, _mm256_loadu_ps(xb + 8)))
            return _mm256_fmadd_ps(w.2, _mm256_loadu_ps(xb + 16), _mm256_fmadd_ps(w.3, _mm256_loadu_ps(xb + 24), s))
        }
        @inline(__always) func sum(_ v: __m256) -> Float { v.sum() }
        for r in range {
            let start = m.block(row: r, 0), stride = m.blockStride(row: r)
            var i = 0
            while i < n {
                let t = min(4, n - i)
                var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0
                let x0 = x + i * cols
                for b in 0..<blocksPerRow {
                    let block = start + b * stride
                    @inline(__always) func eight(_ k: Int) -> __m256 {
                        let bytes = (block + 2 + 8 * k).assumingMemoryBound(to: __m128i.self)
                        return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(bytes)))
                    }
                    let w = (eight(0), eight(1), eight(2), eight(3))
                    let scale = Float(Float16(bitPattern: UInt16(littleEndian: block.loadUnaligned(as: UInt16.self))))
                    let d = _mm256_set1_ps(scale), k = 32 * b
                    a0 = _mm256_fmadd_ps(d, dot(w, x0 + k), a0)
                    if t > 1 { a1 = _mm256_fmadd_ps(d, dot(w, x0 + cols + k), a1) }
                    if t > 2 { a2 = _mm256_fmadd_ps(d, dot(w, x0 + 2 * cols + k), a2) }
                    if t > 3 { a3 = _mm256_fmadd_ps(d, dot(w, x0 + 3 * cols + k), a3) }
                }
                y[i * rows + r] = sum(a0)
                if t > 1 { y[(i + 1) * rows + r] = sum(a1) }
                if t > 2 { y[(i + 2) * rows + r] = sum(a2) }
                if t > 3 { y[(i + 3) * rows + r] = sum(a3) }
                i += t
            }
        }
    }
}
