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

    /// IQ4_NL's and IQ4_XS's 16 values.
    static let iq4Values: [Int8] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]

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
            case .q2_K, .q3_K, .q6_K, .iq4_nl, .iq4_xs: int8GroupValues(type, block, y)
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
    /// (`int8GroupSize` holds the K-quants and IQ4 types).
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

    // MARK: int8 groups

    /// The group size of block types held as int8 values v with a Float32 scale s and minimum m
    /// per group, s·v − m, because lowbit's codes cannot hold them: Q2_K, Q3_K and Q6_K scale
    /// sub-blocks of 16 elements (lowbit's groups are 32 or more), IQ4_NL and IQ4_XS index a table
    /// of 16 non-uniform values. Nil for the others.
    public static func int8GroupSize(_ type: GGUFFile.TensorType) -> Int? {
        switch type {
        case .q2_K, .q3_K, .q6_K: return 16
        case .iq4_nl, .iq4_xs: return 32
        default: return nil
        }
    }

    /// One block of an `int8GroupSize` type: its values v (type.block.elements of them), and per
    /// group the scale s and minimum m (0 but for Q2_K), whose value is s·v − m: the products
    /// ggml's decoder makes, in its order (`int8GroupValues`).
    /// - Q2_K {16 scale bytes (low nibble: scale, high: minimum), 64 bytes of 2-bit codes, d, dmin}:
    ///   (d·scale)·q − dmin·minimum per 16-element sub-block.
    /// - Q3_K {32 bytes: each element's high bit, 64 bytes of low 2 bits, 12 bytes of 6-bit scales,
    ///   d}: (d·(scale − 32))·(low − 4 where the high bit is clear).
    /// - Q6_K {128 bytes of low nibbles, 64 bytes of high 2 bits, 16 int8 scales, d}:
    ///   (d·scale)·(q − 32) per 16-element sub-block.
    /// - IQ4_NL {d, 16 index bytes}: d·value; IQ4_XS {d, 2 bytes of high scale bits, 4 bytes of low
    ///   scale nibbles, 128 index bytes}: (d·(scale − 32))·value per 32-element sub-block.
    public static func int8Groups(_ type: GGUFFile.TensorType, _ p: UnsafeRawPointer,
                                  values v: UnsafeMutablePointer<Int8>, scales: UnsafeMutablePointer<Float>,
                                  minimums: UnsafeMutablePointer<Float>) {
        switch type {
        case .q2_K:
            let d = half(p, 80), dmin = half(p, 82)
            for g in 0..<16 {
                (scales[g], minimums[g]) = (d * Float(byte(p, g) & 0x0F), dmin * Float(byte(p, g) >> 4))
            }
            for j in 0..<superBlock {
                let w = j % 128
                v[j] = Int8(byte(p, 16 + j / 128 * 32 + w % 32) >> (2 * (w / 32)) & 3)
            }
        case .q3_K:
            let d = half(p, 108)
            for g in 0..<16 {
                let low = (g < 8 ? byte(p, 96 + g) : byte(p, 96 + g - 8) >> 4) & 0x0F
                let high = byte(p, 104 + g % 4) >> (2 * (g / 4)) & 3
                (scales[g], minimums[g]) = (d * Float(Int(Int8(truncatingIfNeeded: low | high << 4)) - 32), 0)
            }
            for j in 0..<superBlock {
                let w = j % 128, low = byte(p, 32 + j / 128 * 32 + w % 32) >> (2 * (w / 32)) & 3
                v[j] = Int8(low - (byte(p, j % 32) >> (j / 32) & 1 ^ 1) << 2)
            }
        case .q6_K:
            let d = half(p, 208)
            for g in 0..<16 {
                (scales[g], minimums[g]) = (d * Float(p.load(fromByteOffset: 192 + g, as: Int8.self)), 0)
            }
            for j in 0..<superBlock {
                let h = j / 128, w = j % 128
                let low = byte(p, h * 64 + w % 64) >> (4 * (w / 64)) & 0x0F
                let high = byte(p, 128 + h * 32 + w % 32) >> (2 * (w / 32)) & 3
                v[j] = Int8(low | high << 4 - 32)
            }
        case .iq4_nl:
            (scales[0], minimums[0]) = (half(p), 0)
            for j in 0..<16 {
                v[j] = iq4Values[byte(p, 2 + j) & 0x0F]
                v[j + 16] = iq4Values[byte(p, 2 + j) >> 4]
            }
        case .iq4_xs:
            let d = half(p), highBits = Int(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
            for g in 0..<8 {
                let low = byte(p, 4 + g / 2) >> (4 * (g % 2)) & 0x0F, high = highBits >> (2 * g) & 3
                (scales[g], minimums[g]) = (d * Float(Int(Int8(truncatingIfNeeded: low | high << 4)) - 32), 0)
                for w in 0..<32 {
                    v[32 * g + w] = iq4Values[byte(p, 8 + 16 * g + w % 16) >> (4 * (w / 16)) & 0x0F]
                }
            }
        default:
            preconditionFailure("int8Groups of \(type), which int8GroupSize excludes")
        }
    }

    /// A block of an `int8GroupSize` type decoded: s·v − m per element.
    static func int8GroupValues(_ type: GGUFFile.TensorType, _ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let elements = type.block.elements, groupSize = int8GroupSize(type)!
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: elements) { v in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * elements / groupSize) { parameters in
                let s = parameters.baseAddress!, m = s + elements / groupSize
                int8Groups(type, p, values: v.baseAddress!, scales: s, minimums: m)
                for j in 0..<elements { y[j] = s[j / groupSize] * Float(v[j]) - m[j / groupSize] }
            }
        }
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
