#if LOWBIT_AVX2
import _Builtin_intrinsics.intel
#endif
import LowBit

/// A GGUF Q8_0 tensor run on its own blocks (per 32 weights: Float16 d, then 32 Int8 q, so
/// w = d·q) with float activations: the exact weights at 8.5 bits each instead of Float32's 32.
/// This is how `--weights q4_1` holds a file's Q8_0 tensors (SmolLM2's tied output, 49152 × 576),
/// which lowbit's 1–4 bit formats cannot hold without requantizing.
///
///     y[r] = Σ_b d[r, b] · Σ_j q[r, 32b + j] · x[32b + j]
public final class Q8_0Linear: Linear, @unchecked Sendable {
    public static let blockBytes = 34
    public let rows: Int, cols: Int
    /// The file's blocks, row-major: rows · cols/32 blocks. Shared (not copied) with the model's
    /// embedding table when the output is tied to it.
    let blocks: [UInt8]
    public var byteCount: Int { blocks.count }

    public init(blocks: [UInt8], rows: Int, cols: Int) throws {
        guard rows > 0, cols > 0, cols % 32 == 0, blocks.count == rows * (cols / 32) * Q8_0Linear.blockBytes else {
            throw LowBitError(.badFormat, "Q8_0 tensor of \(rows) x \(cols) with \(blocks.count) bytes: cols must be a multiple of 32 and bytes rows·cols/32·34")
        }
        (self.blocks, self.rows, self.cols) = (blocks, rows, cols)
    }

    @inline(__always)
    static func scale(_ block: UnsafeRawPointer) -> Float {
        Float(Float16(bitPattern: UInt16(littleEndian: block.loadUnaligned(as: UInt16.self))))
    }

    public func forward(_ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) throws {
        let rows = self.rows, cols = self.cols
        blocks.withUnsafeBytes { raw in
            let base = raw.baseAddress!
            parallelRanges(rows) { range in
                #if LOWBIT_AVX2
                if Runtime.useAVX2 { return Q8_0Linear.rowsAVX2(base, cols: cols, rows: rows, x: x, n: n, y: y, range: range) }
                #endif
                Q8_0Linear.rowsPortable(base, cols: cols, rows: rows, x: x, n: n, y: y, range: range)
            }
        }
    }

    /// The formula above, one block and one activation row at a time (the reference of the AVX2 path).
    static func rowsPortable(_ base: UnsafeRawPointer, cols: Int, rows: Int, x: UnsafePointer<Float>, n: Int,
                             y: UnsafeMutablePointer<Float>, range: Range<Int>) {
        let blocksPerRow = cols / 32
        for r in range {
            for i in 0..<n {
                var total: Float = 0
                for b in 0..<blocksPerRow {
                    let block = base + (r * blocksPerRow + b) * blockBytes, xb = x + i * cols + 32 * b
                    var dot: Float = 0
                    for j in 0..<32 { dot += Float(block.load(fromByteOffset: 2 + j, as: Int8.self)) * xb[j] }
                    total += scale(block) * dot
                }
                y[i * rows + r] = total
            }
        }
    }

    #if LOWBIT_AVX2
    /// Per block: 32 Int8 sign-extended and converted to floats once, then 4 FMAs per activation
    /// row (up to 4 rows share the conversion) and one FMA with d.
    static func rowsAVX2(_ base: UnsafeRawPointer, cols: Int, rows: Int, x: UnsafePointer<Float>, n: Int,
                         y: UnsafeMutablePointer<Float>, range: Range<Int>) {
        let blocksPerRow = cols / 32
        @inline(__always) func dot(_ w: (__m256, __m256, __m256, __m256), _ xb: UnsafePointer<Float>) -> __m256 {
            let s = _mm256_fmadd_ps(w.0, _mm256_loadu_ps(xb), _mm256_mul_ps(w.1, _mm256_loadu_ps(xb + 8)))
            return _mm256_fmadd_ps(w.2, _mm256_loadu_ps(xb + 16), _mm256_fmadd_ps(w.3, _mm256_loadu_ps(xb + 24), s))
        }
        @inline(__always) func sum(_ v: __m256) -> Float { v.sum() }
        for r in range {
            var i = 0
            while i < n {
                let t = min(4, n - i)
                var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0
                let x0 = x + i * cols
                for b in 0..<blocksPerRow {
                    let block = base + (r * blocksPerRow + b) * blockBytes
                    @inline(__always) func eight(_ k: Int) -> __m256 {
                        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((block + 2 + 8 * k).assumingMemoryBound(to: __m128i.self))))
                    }
                    let w = (eight(0), eight(1), eight(2), eight(3))
                    let d = _mm256_set1_ps(scale(block)), k = 32 * b
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
    #endif
}
