import LowBitCore
import LowBitPortable

/// ggml's tensor block formats, decoded to Float32 exactly as ggml's own reference does (and the
/// `gguf` Python package, which the tests compare against bit for bit): the same products in the
/// same order, each rounded to Float32, so a dequantized model is the file's model.
///
/// Block layouts (little-endian; `half` is an IEEE binary16 scale):
/// - Q4_0 {d, 16 nibble bytes}: element j in byte j's low nibble, j + 16 in its high one; d·(q − 8).
/// - Q4_1 {d, m, 16 nibble bytes}: d·q + m.  Q5_0 / Q5_1 add 4 bytes holding each element's 5th bit.
/// - Q8_0 {d, 32 int8}: d·q.
/// - K-quants: super-blocks of 256 with 6-bit (Q4_K, Q5_K), 4-bit (Q2_K), packed 6-bit (Q3_K) or
///   int8 (Q6_K) scales of 16- or 32-element sub-blocks, and for Q2_K / Q4_K / Q5_K minimums.
/// - IQ4_NL / IQ4_XS: 4-bit indices into a fixed table of 16 non-uniform values.
/// - TQ1_0 / TQ2_0: ternary, 5 trits per byte (base 3) or 2 bits per element; d·(t − 1).
public enum GGMLBlocks {
    static let superBlock = 256

    @inline(__always) static func half(_ p: UnsafeRawPointer, _ offset: Int = 0) -> Float {
        Float(Float16(bitPattern: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
    }

    @inline(__always) static func byte(_ p: UnsafeRawPointer, _ offset: Int) -> Int {
        Int(p.load(fromByteOffset: offset, as: UInt8.self))
    }

    /// Decodes `blocks` blocks of `type` from `src` into `out` (type.block.elements each).
    public static func decode(_ type: GGUFFile.TensorType, _ src: UnsafeRawPointer, blocks: Int,
                       into out: UnsafeMutablePointer<Float>) {
        let (elements, bytes) = type.block
        for b in 0..<blocks {
            let block = src + b * bytes, y = out + b * elements
            switch type {
            case .f32: y[0] = Float(bitPattern: UInt32(littleEndian: block.loadUnaligned(as: UInt32.self)))
            case .f16: y[0] = half(block)
            case .i8: y[0] = Float(block.load(as: Int8.self))
            case .bf16:
                y[0] = Float(bitPattern: UInt32(UInt16(littleEndian: block.loadUnaligned(as: UInt16.self))) << 16)
            case .q4_0: q4_0(block, y)
            case .q4_1: q4_1(block, y)
            case .q5_0: q5(block, y, hasMinimum: false)
            case .q5_1: q5(block, y, hasMinimum: true)
            case .q8_0: for j in 0..<32 { y[j] = half(block) * Float(block.load(fromByteOffset: 2 + j, as: Int8.self)) }
            case .q2_K, .q3_K, .q6_K, .iq4_nl, .iq4_xs: groupedBlockValues(type, block, y)
            case .q4_K: q45_K(block, y, fifthBits: false)
            case .q5_K: q45_K(block, y, fifthBits: true)
            case .tq1_0: tq1_0(block, y)
            case .tq2_0: tq2_0(block, y)
            }
        }
    }

    static func q4_0(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p)
        for j in 0..<16 {
            y[j] = d * Float(byte(p, 2 + j) & 0x0F - 8)
            y[j + 16] = d * Float(byte(p, 2 + j) >> 4 - 8)
        }
    }

    static func q4_1(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p), m = half(p, 2)
        for j in 0..<16 {
            y[j] = d * Float(byte(p, 4 + j) & 0x0F) + m
            y[j + 16] = d * Float(byte(p, 4 + j) >> 4) + m
        }
    }

    /// Q5_0 {d, high bits, nibbles}: d·(q − 16); Q5_1 {d, m, high bits, nibbles}: d·q + m.
    static func q5(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, hasMinimum: Bool) {
        let d = half(p), m = hasMinimum ? half(p, 2) : 0
        let bitsAt = hasMinimum ? 4 : 2, nibblesAt = bitsAt + 4
        let high = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: bitsAt, as: UInt32.self))
        for j in 0..<32 {
            let nibble = byte(p, nibblesAt + j % 16) >> (4 * (j / 16)) & 0x0F
            let q = nibble | Int(high >> UInt32(j) & 1) << 4
            y[j] = hasMinimum ? d * Float(q) + m : d * Float(q - 16)
        }
    }

    /// Q4_K and Q5_K's eight 6-bit scales and minimums in 12 bytes: the first four of each in the
    /// low 6 bits of bytes 0–3 and 4–7, the last four from the nibbles of bytes 8–11 with the top
    /// two bits of bytes 0–7.
    static func scaleAndMinimum(_ s: UnsafeRawPointer, _ j: Int) -> (Float, Float) {
        if j < 4 { return (Float(byte(s, j) & 63), Float(byte(s, j + 4) & 63)) }
        let scale = byte(s, j + 4) & 0x0F | (byte(s, j - 4) >> 6) << 4
        let minimum = byte(s, j + 4) >> 4 | (byte(s, j) >> 6) << 4
        return (Float(scale), Float(minimum))
    }

    /// Q4_K {d, dmin, 12 scale bytes, 128 nibble bytes}; Q5_K puts 32 bytes of fifth bits before
    /// the nibbles. Element v of 32-element sub-block v/32 is (d·scale)·q − dmin·minimum.
    static func q45_K(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, fifthBits: Bool) {
        let d = half(p), dmin = half(p, 2), nibblesAt = fifthBits ? 48 : 16
        for g in 0..<8 {
            let (scale, minimum) = scaleAndMinimum(p + 4, g)
            let dl = d * scale, ml = dmin * minimum
            for l in 0..<32 {
                var q = byte(p, nibblesAt + g / 2 * 32 + l) >> (4 * (g % 2)) & 0x0F
                if fifthBits { q |= (byte(p, 16 + l) >> g & 1) << 4 }
                y[32 * g + l] = dl * Float(q) - ml
            }
        }
    }

    /// TQ1_0 {48 bytes of 5 trits each, 4 bytes of 4, d}: a byte b holds trit n as
    /// ((b·3ⁿ mod 256)·3) >> 8; element d·(t − 1). Elements 0–159 from bytes 0–31 (trit n of byte
    /// l is element 32n + l), 160–239 from bytes 32–47, 240–255 from the last 4 bytes.
    static func tq1_0(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p, 52), powers = [1, 3, 9, 27, 81]
        func trit(_ b: Int, _ n: Int) -> Float { Float((((b * powers[n]) & 0xFF) * 3) >> 8 - 1) }
        for v in 0..<160 { y[v] = d * trit(byte(p, v % 32), v / 32) }
        for w in 0..<80 { y[160 + w] = d * trit(byte(p, 32 + w % 16), w / 16) }
        for w in 0..<16 { y[240 + w] = d * trit(byte(p, 48 + w % 4), w / 4) }
    }

    // MARK: integer groups

    /// The code width of block types whose every 32-element group is scale·q + offset with an
    /// integer q (lowbit's own form, so a matrix of them is held as its codes): Q4_0, Q4_1, Q4_K
    /// 4 bits; Q5_0, Q5_1, Q5_K 5; TQ1_0, TQ2_0 2 (q = t + 1). Nil for the others, whose groups
    /// are 16 elements (Q2_K, Q3_K, Q6_K), 8-bit (Q8_0), a value table (IQ4) or floats
    /// (`groupedBlockType` names the K-quants and IQ4 types).
    public static func integerGroupBits(_ type: GGUFFile.TensorType) -> Int? {
        switch type {
        case .q4_0, .q4_1, .q4_K: return 4
        case .q5_0, .q5_1, .q5_K: return 5
        case .tq1_0, .tq2_0: return 2
        default: return nil
        }
    }

    /// One block of an `integerGroupBits` type as groups of 32: codes q (type.block.elements of
    /// them), and per group its scale and offset, such that scale·q + offset is `decode`'s value
    /// bit for bit.
    public static func integerGroups(_ type: GGUFFile.TensorType, _ p: UnsafeRawPointer,
                                     codes q: UnsafeMutablePointer<UInt8>, scales: UnsafeMutablePointer<Float>,
                                     offsets: UnsafeMutablePointer<Float>) {
        switch type {
        case .q4_0, .q4_1:
            let hasMinimum = type == .q4_1, d = half(p), nibblesAt = hasMinimum ? 4 : 2
            (scales[0], offsets[0]) = (d, hasMinimum ? half(p, 2) : -8 * d)
            for j in 0..<16 {
                q[j] = UInt8(byte(p, nibblesAt + j) & 0x0F)
                q[j + 16] = UInt8(byte(p, nibblesAt + j) >> 4)
            }
        case .q5_0, .q5_1:
            let hasMinimum = type == .q5_1, d = half(p), bitsAt = hasMinimum ? 4 : 2
            (scales[0], offsets[0]) = (d, hasMinimum ? half(p, 2) : -16 * d)
            let high = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: bitsAt, as: UInt32.self))
            for j in 0..<32 {
                let nibble = byte(p, bitsAt + 4 + j % 16) >> (4 * (j / 16)) & 0x0F
                q[j] = UInt8(nibble | Int(high >> UInt32(j) & 1) << 4)
            }
        case .q4_K, .q5_K:
            let d = half(p), dmin = half(p, 2), fifthBits = type == .q5_K, nibblesAt = fifthBits ? 48 : 16
            for g in 0..<8 {
                let (scale, minimum) = scaleAndMinimum(p + 4, g)
                (scales[g], offsets[g]) = (d * scale, -(dmin * minimum))
                for l in 0..<32 {
                    var code = byte(p, nibblesAt + g / 2 * 32 + l) >> (4 * (g % 2)) & 0x0F
                    if fifthBits { code |= (byte(p, 16 + l) >> g & 1) << 4 }
                    q[32 * g + l] = UInt8(code)
                }
            }
        case .tq1_0, .tq2_0:
            let d = half(p, type == .tq1_0 ? 52 : 64)
            for g in 0..<8 { (scales[g], offsets[g]) = (d, -d) }
            // d·(t − 1) = d·q − d with q = t, read back from the values (d = 0 leaves all zero).
            withUnsafeTemporaryAllocation(of: Float.self, capacity: superBlock) { values in
                decode(type, p, blocks: 1, into: values.baseAddress!)
                for v in 0..<superBlock { q[v] = d == 0 || !d.isFinite ? 1 : UInt8(values[v] / d + 1) }
            }
        default:
            preconditionFailure("integerGroups of \(type), which integerGroupBits excludes")
        }
    }

    // MARK: grouped blocks

    /// The block types whose values are small integers with a scale and minimum per group of 16
    /// or 32 (`GroupedBlockType`: Q2_K, Q3_K, Q6_K, IQ4_NL, IQ4_XS, Q8_0), which products decode
    /// as they go because lowbit's codes cannot hold them. Nil for the others.
    package static func groupedBlockType(_ type: GGUFFile.TensorType) -> GroupedBlockType? {
        switch type {
        case .q2_K: return .q2_K
        case .q3_K: return .q3_K
        case .q6_K: return .q6_K
        case .iq4_nl: return .iq4_nl
        case .iq4_xs: return .iq4_xs
        case .q8_0: return .q8_0
        default: return nil
        }
    }

    /// A grouped block decoded by the reference (`GroupedBlocks`): s·v − m per element.
    static func groupedBlockValues(_ type: GGUFFile.TensorType, _ p: UnsafeRawPointer,
                                   _ y: UnsafeMutablePointer<Float>) {
        PortableKernels.groupedBlockWeights(groupedBlockType(type)!, p, count: 1, stride: 0, into: y)
    }

    /// TQ2_0 {64 bytes of 2-bit codes, d}: d·(q − 1).
    static func tq2_0(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p, 64)
        for v in 0..<superBlock {
            let w = v % 128, q = byte(p, v / 128 * 32 + w % 32) >> (2 * (w / 32)) & 3
            y[v] = d * Float(q - 1)
        }
    }
}
