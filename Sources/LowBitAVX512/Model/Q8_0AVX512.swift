import _Builtin_intrinsics.intel
import LowBitCore

/// Q8_0 blocks with float activations (`GroupedBlockLinear`, module LowBitModel) on AVX-512: blocks of 34 bytes, a Float16 d and 32 Int8 q.
enum Q8_0AVX512 {
    /// As on AVX2, a block's 32 Int8 are sign-extended and converted to floats once and shared by
    /// up to 4 activation rows; in two 16-lane registers here, so each row costs 2 FMAs per block
    /// (and one with d) instead of 4.
    static func rows(_ m: GroupedBlockMatrix, x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>,
                     range: Range<Int>) {
        let cols = m.cols, rows = m.rows, blocksPerRow = m.blocksPerRow
        for r in range {
            let start = m.block(row: r, 0), stride = m.blockStride(row: r)
            var i = 0
            while i < n {
                let t = min(4, n - i)
                var a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0
                let x0 = x + i * cols
                for b in 0..<blocksPerRow {
                    let block = start + b * stride, q = block + 2
                    let w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q.loadUnaligned(as: __m128i.self)))
                    let w1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32((q + 16).loadUnaligned(as: __m128i.self)))
                    let scale = Float(Float16(bitPattern: UInt16(littleEndian: block.loadUnaligned(as: UInt16.self))))
                    let d = _mm512_set1_ps(scale), k = 32 * b
                    @inline(__always) func dot(_ xb: UnsafePointer<Float>) -> __m512 {
                        _mm512_fmadd_ps(w0, _mm512_loadu_ps(xb), _mm512_mul_ps(w1, _mm512_loadu_ps(xb + 16)))
                    }
                    a0 = _mm512_fmadd_ps(d, dot(x0 + k), a0)
                    if t > 1 { a1 = _mm512_fmadd_ps(d, dot(x0 + cols + k), a1) }
                    if t > 2 { a2 = _mm512_fmadd_ps(d, dot(x0 + 2 * cols + k), a2) }
                    if t > 3 { a3 = _mm512_fmadd_ps(d, dot(x0 + 3 * cols + k), a3) }
                }
                y[i * rows + r] = _mm512_reduce_add_ps(a0)
                if t > 1 { y[(i + 1) * rows + r] = _mm512_reduce_add_ps(a1) }
                if t > 2 { y[(i + 2) * rows + r] = _mm512_reduce_add_ps(a2) }
                if t > 3 { y[(i + 3) * rows + r] = _mm512_reduce_add_ps(a3) }
                i += t
            }
        }
    }
}
