import _Builtin_intrinsics.intel
import LowBitCore

enum SignedRowsAVX2 {
    /// `TierKernels.addSignedRow` (a BitStack block rebuilt): 64 columns (then 32) at a time, so that 8 (then 4)
    /// independent FMA chains run over j; the signs flip the float sign bit where S is −1.
    @inline(__always)
    static func addSignedRow(_ signs: LUTLayout, row: Int, u: UnsafePointer<Float>, v: UnsafePointer<Float>, k: Int,
                             cols: Int, into w: UnsafeMutablePointer<Float>) {
        let bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64,
                                     128), signBit = _mm256_set1_epi32(Int32(bitPattern: 0x8000_0000))
        @inline(__always) func add(_ d: __m256, _ c: Int) {
            let octet = _mm256_set1_epi32(Int32(signs.signOctet(row: row, octet: c / 8)))
            let negative = _mm256_cmpeq_epi32(_mm256_and_si256(octet, bits), _mm256_setzero_si256())
            let signed = _mm256_xor_ps(d, _mm256_castsi256_ps(_mm256_and_si256(negative, signBit)))
            _mm256_storeu_ps(w + c, _mm256_add_ps(_mm256_loadu_ps(w + c), signed))
        }
        // `Vectors` (8, or 4 for the last 32 columns) × 8 columns from c on.
        @inline(__always) func columns<Vectors: StaticInt>(_: Vectors.Type, _ c: Int) {
            let wide = Vectors.value == 8
            var d0 = _mm256_setzero_ps(), d1 = d0, d2 = d0, d3 = d0, d4 = d0, d5 = d0, d6 = d0, d7 = d0
            for j in 0..<k {
                let uj = _mm256_set1_ps(u[j]), vj = v + j * cols + c
                d0 = _mm256_fmadd_ps(uj, _mm256_loadu_ps(vj), d0)
                d1 = _mm256_fmadd_ps(uj, _mm256_loadu_ps(vj + 8), d1)
                d2 = _mm256_fmadd_ps(uj, _mm256_loadu_ps(vj + 16), d2)
                d3 = _mm256_fmadd_ps(uj, _mm256_loadu_ps(vj + 24), d3)
                if wide {
                    d4 = _mm256_fmadd_ps(uj, _mm256_loadu_ps(vj + 32), d4)
                    d5 = _mm256_fmadd_ps(uj, _mm256_loadu_ps(vj + 40), d5)
                    d6 = _mm256_fmadd_ps(uj, _mm256_loadu_ps(vj + 48), d6)
                    d7 = _mm256_fmadd_ps(uj, _mm256_loadu_ps(vj + 56), d7)
                }
            }
            add(d0, c); add(d1, c + 8); add(d2, c + 16); add(d3, c + 24)
            if wide { add(d4, c + 32); add(d5, c + 40); add(d6, c + 48); add(d7, c + 56) }
        }
        var c = 0
        while c + 64 <= cols {
            columns(Static8.self, c)
            c += 64
        }
        if c < cols { columns(Static4.self, c) }  // cols is a multiple of 32
    }
}
