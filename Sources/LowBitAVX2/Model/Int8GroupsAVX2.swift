import _Builtin_intrinsics.intel

/// `Int8GroupLinear` (module LowBitModel) on AVX2. Each 8 values become their weights s·v − m in
/// floats (the file's values, rounded as its decoder rounds them), so a product needs no
/// per-group sums: one FMA per 8 weights and activation row. One activation row keeps four
/// accumulators in flight (an FMA's latency would otherwise bound the loop); more rows take up to
/// four at a time, each weight conversion shared by them.
enum Int8GroupsAVX2 {
    static func rows(_ values: UnsafePointer<Int8>, scales: UnsafePointer<Float>, minimums: UnsafePointer<Float>?,
                     groupSize: Int, cols: Int, rows: Int, x: UnsafePointer<Float>, n: Int,
                     y: UnsafeMutablePointer<Float>, range: Range<Int>) {
        let groups = cols / groupSize, groupShift = groupSize.trailingZeroBitCount
        for r in range {
            let v = UnsafeRawPointer(values + r * cols), s = scales + r * groups
            let m = minimums.map { $0 + r * groups }
            @inline(__always) func weights(_ c: Int) -> __m256 {
                let q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(
                    (v + c).assumingMemoryBound(to: __m128i.self))))
                let w = _mm256_mul_ps(q, _mm256_set1_ps(s[c >> groupShift]))
                guard let m else { return w }
                return _mm256_sub_ps(w, _mm256_set1_ps(m[c >> groupShift]))
            }
            if n == 1 {
                // cols is a multiple of 32 for every type held this way.
                var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0
                var c = 0
                while c < cols {
                    a0 = _mm256_fmadd_ps(weights(c), _mm256_loadu_ps(x + c), a0)
                    a1 = _mm256_fmadd_ps(weights(c + 8), _mm256_loadu_ps(x + c + 8), a1)
                    a2 = _mm256_fmadd_ps(weights(c + 16), _mm256_loadu_ps(x + c + 16), a2)
                    a3 = _mm256_fmadd_ps(weights(c + 24), _mm256_loadu_ps(x + c + 24), a3)
                    c += 32
                }
                y[r] = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)).sum()
                continue
            }
            var i = 0
            while i < n {
                let t = min(4, n - i)
                let x0 = x + i * cols, x1 = x0 + (t > 1 ? cols : 0), x2 = x0 + (t > 2 ? 2 * cols : 0)
                let x3 = x0 + (t > 3 ? 3 * cols : 0)
                var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0
                var c = 0
                while c < cols {
                    let w = weights(c)
                    a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x0 + c), a0)
                    if t > 1 { a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x1 + c), a1) }
                    if t > 2 { a2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x2 + c), a2) }
                    if t > 3 { a3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x3 + c), a3) }
                    c += 8
                }
                y[i * rows + r] = a0.sum()
                if t > 1 { y[(i + 1) * rows + r] = a1.sum() }
                if t > 2 { y[(i + 2) * rows + r] = a2.sum() }
                if t > 3 { y[(i + 3) * rows + r] = a3.sum() }
                i += t
            }
        }
    }
}
