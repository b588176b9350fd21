import _Builtin_intrinsics.intel
import LowBitCore

/// Q8_0 blocks with float activations (`GroupedBlockLinear`, module LowBitModel) on AVX2: blocks
/// of 34 bytes, a Float16 d and 32 Int8 q, held in bands of eight rows (`GroupedBlockMatrix`).
enum Q8_0AVX2 {
    /// A band's eight rows at a time, so that the weights stream in the order they are held; per
    /// row and block, 32 Int8 sign-extended and converted to floats, 4 FMAs with the activation
    /// row and one with d. Each row's sums are made in the same order whatever the number of
    /// activation rows, so a row's result does not depend on the rows beside it. With several
    /// activation rows (a prompt), a band's values are converted once, into `bandValueCount`
    /// floats, and every row reads them there: the conversion cost more than the FMAs.
    static func rows(_ m: GroupedBlockMatrix, x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>,
                     range: Range<Int>) {
        let cols = m.cols, rows = m.rows, bytes = GroupedBlockType.q8_0.blockBytes, blocks = m.blocksPerRow
        typealias Eight = (__m256, __m256, __m256, __m256, __m256, __m256, __m256, __m256)
        // Rows r ..< r + live of one band (`full`: all eight, at constant offsets); the lanes
        // past them repeat row r and are not stored. `converted`: the band's values and d's as
        // floats, row l's block b at l·cols + 32·b and 8·cols + l·blocks + b; nil: from the blocks.
        @inline(__always) func band(_ r: Int, live: Int, full: Bool, converted: UnsafeMutablePointer<Float>?) {
            let (first, height) = m.band(of: r), stride = height * bytes
            let start = m.base + first * m.rowBytes + (r - first) * bytes
            @inline(__always) func offset(_ l: Int) -> Int { full || l < live ? l * bytes : 0 }
            @inline(__always) func block(_ l: Int, _ b: Int) -> UnsafeRawPointer { start + b * stride + offset(l) }
            // Values 8k ..< 8k + 8 of row l's block b, and its d, from the blocks.
            @inline(__always) func decoded(_ l: Int, _ b: Int, _ k: Int) -> __m256 {
                let bytes = (block(l, b) + 2 + 8 * k).assumingMemoryBound(to: __m128i.self)
                return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(bytes)))
            }
            @inline(__always) func scale(_ l: Int, _ b: Int) -> Float {
                Float(Float16(bitPattern: UInt16(littleEndian: block(l, b).loadUnaligned(as: UInt16.self))))
            }
            @inline(__always) func eight(_ l: Int, _ b: Int, _ k: Int) -> __m256 {
                guard let converted else { return decoded(l, b, k) }
                return _mm256_loadu_ps(converted + l * cols + 32 * b + 8 * k)
            }
            @inline(__always) func d(_ l: Int, _ b: Int) -> Float {
                guard let converted else { return scale(l, b) }
                return converted[8 * cols + l * blocks + b]
            }
            if let converted {
                for l in 0..<8 {
                    for b in 0..<blocks {
                        for k in 0..<4 { _mm256_storeu_ps(converted + l * cols + 32 * b + 8 * k, decoded(l, b, k)) }
                        converted[8 * cols + l * blocks + b] = scale(l, b)
                    }
                }
            }
            for i in 0..<n {
                let xi = x + i * cols
                let zero = _mm256_setzero_ps()
                var a: Eight = (zero, zero, zero, zero, zero, zero, zero, zero)
                for b in 0..<blocks {
                    let xb = xi + 32 * b
                    @inline(__always) func term(_ l: Int, _ acc: __m256) -> __m256 {
                        let s = _mm256_fmadd_ps(eight(l, b, 0), _mm256_loadu_ps(xb),
                                                _mm256_mul_ps(eight(l, b, 1), _mm256_loadu_ps(xb + 8)))
                        let dot = _mm256_fmadd_ps(eight(l, b, 2), _mm256_loadu_ps(xb + 16),
                                                  _mm256_fmadd_ps(eight(l, b, 3), _mm256_loadu_ps(xb + 24), s))
                        return _mm256_fmadd_ps(_mm256_set1_ps(d(l, b)), dot, acc)
                    }
                    a = (term(0, a.0), term(1, a.1), term(2, a.2), term(3, a.3),
                         term(4, a.4), term(5, a.5), term(6, a.6), term(7, a.7))
                }
                let sums = SIMD8<Float>(a.0.sum(), a.1.sum(), a.2.sum(), a.3.sum(),
                                        a.4.sum(), a.5.sum(), a.6.sum(), a.7.sum())
                for l in 0..<live { y[i * rows + r + l] = sums[l] }
            }
        }
        @inline(__always) func bands(converted: UnsafeMutablePointer<Float>?) {
            var r = range.lowerBound
            while r < range.upperBound {
                let (first, height) = m.band(of: r), live = min(first + height, range.upperBound) - r
                if live == 8 { band(r, live: 8, full: true, converted: converted) }
                else { band(r, live: live, full: false, converted: converted) }
                r += live
            }
        }
        guard n > 1 else { return bands(converted: nil) }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: bandValueCount(cols: cols)) {
            bands(converted: $0.baseAddress!)
        }
    }

    /// Floats of a band's converted values and d's.
    private static func bandValueCount(cols: Int) -> Int { 8 * cols + 8 * (cols / 32) }
}
