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

    public func readWeights() -> UInt64? {
        blocks.withUnsafeBytes { MemoryBaseline.read($0.baseAddress!, bytes: $0.count / 32 * 32) }
    }

    public init(blocks: [UInt8], rows: Int, cols: Int) throws {
        guard rows > 0, cols > 0, cols % 32 == 0, blocks.count == rows * (cols / 32) * Q8_0Linear.blockBytes else {
            throw LowBitError(.badFormat,
                              "Q8_0 tensor of \(rows) x \(cols) with \(blocks.count) bytes: cols must be a multiple of "
                              + "32 and bytes rows·cols/32·34")
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
            parallelChunks(rows, chunk: 8) { range in
                Tiers.active.q8_0Rows(base, cols: cols, rows: rows, x: x, n: n, y: y, range: range)
            }
        }
    }

}
