import _Builtin_intrinsics.intel
import LowBitCore

/// Q8_0 blocks with float activations (`GroupedBlockLinear`, module LowBitModel) on AVX2: blocks
/// of 34 bytes, a Float16 d and 32 Int8 q, held in bands of eight rows (`GroupedBlockMatrix`).
enum Q8_0AVX2 {
    /// A band's eight rows at a time, so that the weights stream in the order they are held; per
    /// row and block, 32 Int8 sign-extended and converted to floats, 4 FMAs with the activation
    /// row and one with d. Each row's sums are made in the same order whatever the number of
    /// activation rows, so a row's result does not depend on the rows beside it.
    static func rows(_ m: GroupedBlockMatrix, x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>,
                     range: Range<Int>) {
        let cols = m.cols, rows = m.rows, bytes = GroupedBlockType.q8_0.blockBytes
        typealias Eight = (__m256, __m256, __m256, __m256, __m256, __m256, __m256, __m256)
        // Rows r ..< r + live of one band (`full`: all eight, at constant offsets); the lanes
        // past them repeat row r and are not stored.
        @inline(__always) func band(_ r: Int, live: Int, full: Bool) {
            let (first, height) = m.band(of: r), stride = height * bytes
            let start = m.base + first * m.rowBytes + (r - first) * bytes
            @inline(__always) func offset(_ l: Int) -> Int { full || l < live ? l * bytes : 0 }
            for i in 0..<n {
                let xi = x + i * cols
                let zero = _mm256_setzero_ps()
                var a: Eight = (zero, zero, zero, zero, zero, zero, zero, zero)
                for b in 0..<m.blocksPerRow {
                    let column = start + b * stride, xb = xi + 32 * b
                    @inline(__always) func term(_ l: Int, _ acc: __m256) -> __m256 {
                        let block = column + offset(l)
                        @inline(__always) func eight(_ k: Int) -> __m256 {
                            let bytes = (block + 2 + 8 * k).assumingMemoryBound(to: __m128i.self)
                            return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(bytes)))
                        }
                        let s = _mm256_fmadd_ps(eight(0), _mm256_loadu_ps(xb), _mm256_mul_ps(eight(1),
                                                                                              _mm256_loadu_ps(xb + 8)))
                        let dot = _mm256_fmadd_ps(eight(2), _mm256_loadu_ps(xb + 16),
                                                  _mm256_fmadd_ps(eight(3), _mm256_loadu_ps(xb + 24), s))
                        let d = Float(Float16(bitPattern: UInt16(littleEndian: block.loadUnaligned(as: UInt16.self))))
                        return _mm256_fmadd_ps(_mm256_set1_ps(d), dot, acc)
                    }
                    a = (term(0, a.0), term(1, a.1), term(2, a.2), term(3, a.3),
                         term(4, a.4), term(5, a.5), term(6, a.6), term(7, a.7))
                }
                let sums = SIMD8<Float>(a.0.sum(), a.1.sum(), a.2.sum(), a.3.sum(),
                                        a.4.sum(), a.5.sum(), a.6.sum(), a.7.sum())
                for l in 0..<live { y[i * rows + r + l] = sums[l] }
            }
        }
        var r = range.lowerBound
        while r < range.upperBound {
            let (first, height) = m.band(of: r), live = min(first + height, range.upperBound) - r
            if live == 8 { band(r, live: 8, full: true) } else { band(r, live: live, full: false) }
            r += live
        }
    }
}
