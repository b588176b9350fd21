import _Builtin_intrinsics.intel

/// eˣ for the runner's softmax and SiLU, 8 values per call on AVX2 (libm's scalar `exp` stands
/// out in a prefill's profile). x = n·ln2 + r with n = round(x/ln2) and |r| ≤ ln2/2, ln2 split in
/// two parts so that r is exact to float precision; eʳ by its Taylor series to r⁷ (the first
/// term left out is below 1.2e-8 relative at |r| = ln2/2); 2ⁿ built in the exponent bits.
/// Within 1.2e-7 relative (2 ulp) of the exact value for x in [lowest, highest]; between -87.68 and
/// `lowest` the subnormal product p·2⁻¹²⁶; 0 below (x is clamped at -88, where n = −127 makes
/// 2ⁿ's bits those of 0); e^88.3 ≈ 2.2e38 above. NaN stays NaN. The portable path keeps libm's
/// `exp`.
enum ExponentialAVX2 {
    /// ln(2⁻¹²⁶), the smallest normal result, and a bound below ln(2¹²⁷·⁵), so that n ≤ 127.
    static var lowest: Float { -87.33654 }
    static var highest: Float { 88.3 }

    @inline(__always)
    static func exp8(_ x: __m256) -> __m256 {
        // min/max with x second: a NaN x comes back NaN rather than as the bound.
        let v = _mm256_min_ps(_mm256_set1_ps(highest), _mm256_max_ps(_mm256_set1_ps(-88), x))
        let n = _mm256_cvtps_epi32(_mm256_mul_ps(v, _mm256_set1_ps(1.442695)))  // nearest-even
        let nf = _mm256_cvtepi32_ps(n)
        let r = _mm256_fnmadd_ps(nf, _mm256_set1_ps(-2.1219444e-4),
                                 _mm256_fnmadd_ps(nf, _mm256_set1_ps(0.693359375), v))
        var p = _mm256_set1_ps(1 / 5040)
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1 / 720))
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1 / 120))
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1 / 24))
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1 / 6))
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1 / 2))
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1))
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1))
        let twoToN = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23))
        return _mm256_mul_ps(p, twoToN)
    }

    /// `exp8` of eight values in an array (for tests, which compile without AVX2).
    package static func exp8(_ x: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: 8)
        x.withUnsafeBufferPointer { _mm256_storeu_ps(&out, exp8(_mm256_loadu_ps($0.baseAddress!))) }
        return out
    }
}
