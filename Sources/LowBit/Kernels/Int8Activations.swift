#if LOWBIT_AVX2
import _Builtin_intrinsics.intel
#endif

/// Activations rounded to A-bit integers per weight group (A = 8 for the dequant family;
/// 2, 4 or 8 for bit-serial): x ≈ sa·qa with sa = max|x| / (2^(A−1) − 1) over the group and
/// |qa| ≤ 2^(A−1) − 1, so qa's low A bits are its A-bit two's complement.
/// Memory per activation row: `cols` Int8 codes, then `groups` Float scales sa, then `groups`
/// Int32 sums Σqa (the zero-point term m·Σx becomes m·sa·Σqa).
public struct Int8Activations {
    public let cols: Int
    public let groupSize: Int
    /// A: bits of each rounded activation.
    public let bits: Int
    public var groups: Int { cols / groupSize }
    public var limit: Float { Float((1 << (bits - 1)) - 1) }

    public init(cols: Int, groupSize: Int, bits: Int = 8) {
        self.cols = cols
        self.groupSize = groupSize
        self.bits = bits
    }

    public static func byteCount(cols: Int, groupSize: Int) -> Int {
        (cols + 8 * (cols / groupSize) + 63) / 64 * 64
    }

    @inlinable public func codes(_ base: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Int8> {
        base.assumingMemoryBound(to: Int8.self)
    }
    @inlinable public func scales(_ base: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Float> {
        (base + cols).assumingMemoryBound(to: Float.self)
    }
    @inlinable public func sums(_ base: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Int32> {
        (base + cols + 4 * groups).assumingMemoryBound(to: Int32.self)
    }

    /// qa = clamp(round-half-even(x / sa), ±(2^(A−1) − 1)), 32 activations per step where the
    /// AVX2 build runs (the same bytes as `quantizeScalar`: tests compare the two).
    public func quantize(_ x: UnsafePointer<Float>, into base: UnsafeMutableRawPointer) {
        #if LOWBIT_AVX2
        if Runtime.useAVX2, groupSize % 32 == 0 {
            quantizeAVX2(x, into: base)
            return
        }
        #endif
        quantizeScalar(x, into: base)
    }

    /// The readable quantizer, one activation at a time.
    public func quantizeScalar(_ x: UnsafePointer<Float>, into base: UnsafeMutableRawPointer) {
        let q = codes(base), sa = scales(base), s = sums(base), limit = self.limit
        for g in 0..<groups {
            var maxAbs: Float = 0
            for k in (g * groupSize)..<((g + 1) * groupSize) { maxAbs = max(maxAbs, abs(x[k])) }
            let scale = maxAbs / limit
            let inverse: Float = scale > 0 ? 1 / scale : 0
            var sum: Int32 = 0
            for k in (g * groupSize)..<((g + 1) * groupSize) {
                let v = x[k] * inverse
                let r = v.isNaN ? 0 : min(max(v.rounded(.toNearestOrEven), -limit), limit)
                q[k] = Int8(r)
                sum += Int32(r)
            }
            sa[g] = scale
            s[g] = sum
        }
    }
}

#if LOWBIT_AVX2
extension Int8Activations {
    /// `quantizeScalar`'s arithmetic on 8 lanes: the same max, the same x·(1/sa) product, the
    /// same round-half-even (the conversion's, in the default rounding mode every float
    /// operation here assumes) and clamp, so every byte, scale and sum is equal. The decode loop
    /// of a dequant-family model spent 15% of its time in the scalar version (its rounding is a
    /// library call per activation).
    func quantizeAVX2(_ x: UnsafePointer<Float>, into base: UnsafeMutableRawPointer) {
        let q = codes(base), sa = scales(base), s = sums(base), limit = self.limit
        let magnitude = _mm256_set1_epi32(0x7FFF_FFFF), infinity = _mm256_set1_epi32(0x7F80_0000)
        let high = _mm256_set1_epi32(Int32(limit)), low = _mm256_set1_epi32(-Int32(limit))
        // Dwords (4 codes) of two packs, back in order: a0 a1 b0 b1 c0 c1 d0 d1.
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)
        for g in 0..<groups {
            let xg = x + g * groupSize
            var m = _mm256_setzero_ps()
            for k in stride(from: 0, to: groupSize, by: 8) {
                // |x| first: `maxps` returns its second operand when either is NaN, so a NaN is
                // skipped as the scalar max skips it.
                m = _mm256_max_ps(_mm256_castsi256_ps(_mm256_and_si256(_mm256_castps_si256(_mm256_loadu_ps(xg + k)), magnitude)), m)
            }
            let m4 = _mm_max_ps(m.lowHalf, m.highHalf)
            let maxAbs = max(max(m4[0], m4[1]), max(m4[2], m4[3]))
            let scale = maxAbs / limit
            let inverse: Float = scale > 0 ? 1 / scale : 0
            let inv = _mm256_set1_ps(inverse)
            var sum = _mm256_setzero_si256()
            for k in stride(from: 0, to: groupSize, by: 32) {
                @inline(__always) func rounded(_ i: Int) -> __m256i {
                    let v = _mm256_mul_ps(_mm256_loadu_ps(xg + k + 8 * i), inv)
                    let r = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(v), low), high)
                    let isNaN = _mm256_cmpgt_epi32(_mm256_and_si256(_mm256_castps_si256(v), magnitude), infinity)
                    return _mm256_andnot_si256(isNaN, r)  // NaN → 0, as the scalar version
                }
                let a = rounded(0), b = rounded(1), c = rounded(2), d = rounded(3)
                sum = _mm256_add_epi32(sum, _mm256_add_epi32(_mm256_add_epi32(a, b), _mm256_add_epi32(c, d)))
                let packed = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d))
                UnsafeMutableRawPointer(q + g * groupSize + k).storeBytes(of: _mm256_permutevar8x32_epi32(packed, order), as: __m256i.self)
            }
            let s4 = _mm_add_epi32(sum.lowHalf, sum.highHalf)
            let lanes = unsafeBitCast(s4, to: SIMD4<Int32>.self)
            sa[g] = scale
            s[g] = (lanes[0] &+ lanes[1]) &+ (lanes[2] &+ lanes[3])
        }
    }
}
#endif
