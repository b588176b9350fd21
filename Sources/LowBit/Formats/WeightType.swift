/// The value sets a weight can take. Every type is stored the same way:
/// per group of `groupSize` consecutive columns of a row, a scale d and an offset m, and per
/// weight an unsigned code q of `storageBits` bits, so that w = d·q + m.
///
/// - `.integer(bits: b)`: q in [0, 2^b). Asymmetric groups fit (d, m) freely; symmetric groups
///   use the balanced levels q − (2^b − 1)/2, i.e. m = −d·(2^b − 1)/2, so no zero point is stored
///   in effect (and the LUT kernel's ±1 bit mapping needs no Σx term for them).
/// - `.ternary`: BitNet b1.58 values t ∈ {−1, 0, +1} with w = d·t, stored as q = t + 1 in 2 bits
///   with m = −d.
/// - `.mixed(bits: 3 | 4)`: BitMoD's per-group choice of data type (`MixedDataType`): the
///   integer grid or a 3-/4-bit float grid with one extra value, w = d·v(q) + m.
public enum WeightType: Equatable, Hashable, Sendable, CustomStringConvertible {
    case integer(bits: Int)
    case ternary
    case mixed(bits: Int)

    /// The C code for ternary (`LOWBIT_BITS_TERNARY`): 1.58 bits.
    public static let ternaryCode: Int32 = 158
    /// The C codes of mixed data types (`LOWBIT_BITS_MIXED3`, `LOWBIT_BITS_MIXED4`): 200 + bits.
    public static let mixedCodeBase: Int32 = 200

    /// Decodes the C/Python `bits` argument: 1, 2, 3, 4, 158 (ternary), 203 or 204 (mixed).
    public init(code: Int32) throws {
        switch code {
        case 1...4: self = .integer(bits: Int(code))
        case WeightType.ternaryCode: self = .ternary
        case (WeightType.mixedCodeBase + 3)...(WeightType.mixedCodeBase
            + 4): self = .mixed(bits: Int(code - WeightType.mixedCodeBase))
        default:
            throw LowBitError(.unsupported,
                              "unsupported bit width \(code): use 1, 2, 3, 4, \(WeightType.ternaryCode) (ternary), 203 "
                              + "or 204 (mixed 3 or 4-bit data types)")
        }
    }

    public var code: Int32 {
        switch self {
        case .integer(let b): return Int32(b)
        case .ternary: return WeightType.ternaryCode
        case .mixed(let b): return WeightType.mixedCodeBase + Int32(b)
        }
    }

    public var isMixed: Bool {
        if case .mixed = self { return true }
        return false
    }

    /// Bits per stored code (bit planes per weight).
    public var storageBits: Int {
        switch self {
        case .integer(let b), .mixed(let b): return b
        case .ternary: return 2
        }
    }

    /// Largest valid code.
    public var maxCode: Int {
        switch self {
        case .integer(let b), .mixed(let b): return (1 << b) - 1
        case .ternary: return 2
        }
    }

    public var description: String {
        switch self {
        case .integer(let b): return "\(b)-bit"
        case .ternary: return "ternary"
        case .mixed(let b): return "\(b)-bit mixed"
        }
    }
}

/// Group sizes along the columns. Every kernel handles each of them; 128 is the GPTQ/AWQ default.
public let supportedGroupSizes = [32, 64, 128]

/// Checks a matrix shape once, before anything is allocated.
public func validateShape(rows: Int, cols: Int, groupSize: Int) throws {
    guard rows > 0, cols > 0 else {
        throw LowBitError(.invalidArgument, "matrix shape \(rows) x \(cols): rows and cols must be positive")
    }
    guard supportedGroupSizes.contains(groupSize) else {
        throw LowBitError(.unsupported, "unsupported group size \(groupSize): use 32, 64 or 128")
    }
    guard cols % groupSize == 0 else {
        throw LowBitError(.invalidArgument, "cols \(cols) is not a multiple of group size \(groupSize)")
    }
    // Every internal size (codes, padded rows, floats) must stay far from Int overflow.
    _ = try checkedProduct(rows + 64, cols, 8, what: "matrix")
}
