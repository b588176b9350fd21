/// BitMoD's mixture of data types: each group of a `.mixed(bits:)` matrix picks, by least squared
/// error, one of five 3- or 4-bit data types, and its choice is stored per group.
///
/// - `integer`: the plain asymmetric integer grid, w = d·q + m (exactly `.integer(bits:)`).
/// - four floating-point variants, w = d·v(q): a sign bit and the magnitudes of FP3 (1, 2, 4 and
///   0) or of FP4-E2M1 in half units (0, 1, 2, 3, 4, 6, 8, 12), where the code of "−0" carries one
///   extra value instead: extra resolution between the top two magnitudes (FP3 ±3, FP4 ±10) or
///   extra asymmetry beyond the top (FP3 ±6, FP4 ±16), each with either sign.
///
/// Every value is a small integer, so for the kernels a mixed matrix becomes an ordinary integer
/// matrix of unsigned "value codes" u = v + bias with w = d'·u + m' per group (`valueCodes`): 4 bits
/// for 3-bit mixed (v in −6 … 6), 5 bits for 4-bit mixed (v in −16 … 16, a group whose extra value
/// is +16 stores −v and −d). Files and the canonical form keep the 3- or 4-bit codes.
public enum MixedDataType: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    case integer = 0
    case extraResolutionPositive = 1
    case extraResolutionNegative = 2
    case extraAsymmetryPositive = 3
    case extraAsymmetryNegative = 4

    public var description: String {
        switch self {
        case .integer: return "int"
        case .extraResolutionPositive: return "fp+res"
        case .extraResolutionNegative: return "fp-res"
        case .extraAsymmetryPositive: return "fp+asym"
        case .extraAsymmetryNegative: return "fp-asym"
        }
    }

    @usableFromInline static let fp3Magnitudes = [0, 1, 2, 4]
    @usableFromInline static let fp4Magnitudes = [0, 1, 2, 3, 4, 6, 8, 12]

    /// The integer value of code q (bits 3 or 4) for a floating-point type: codes below half are
    /// +magnitude, the rest −magnitude, and the "−0" code the extra value.
    @usableFromInline
    static func fpValue(_ q: Int, bits: Int, type: MixedDataType) -> Int {
        let half = 1 << (bits - 1)
        let magnitudes = bits == 3 ? fp3Magnitudes : fp4Magnitudes
        if q < half { return magnitudes[q] }
        if q > half { return -magnitudes[q - half] }
        let (resolution, asymmetry) = bits == 3 ? (3, 6) : (10, 16)
        switch type {
        case .extraResolutionPositive: return resolution
        case .extraResolutionNegative: return -resolution
        case .extraAsymmetryPositive: return asymmetry
        case .extraAsymmetryNegative, .integer: return -asymmetry
        }
    }

    /// Bias of the value codes: u = v + bias ≥ 0.
    static func valueBias(bits: Int) -> Int { bits == 3 ? 8 : 16 }
}

extension Quantizer {
    /// One group of a mixed matrix: every candidate type fitted, the least squared error kept.
    /// Floating-point types scale so the group's extremes are representable (no clipping, as for
    /// the integer grid). Returns (d, m, type).
    static func quantizeMixedGroup(_ w: UnsafeBufferPointer<Float>, bits: Int, codes: UnsafeMutableBufferPointer<UInt8>,
                                   trial: UnsafeMutableBufferPointer<UInt8>) -> (Float, Float, MixedDataType) {
        var (d, m) = fitAsymmetric(w, levels: (1 << bits) - 1, codes: codes)
        var best = (err: squaredError(w, codes: codes, d: d, m: m, value: { Float($0) }), type: MixedDataType.integer)
        let hi = w.max()!, lo = w.min()!
        for type in MixedDataType.allCases where type != .integer {
            let values = (0..<(1 << bits)).map { Float(MixedDataType.fpValue($0, bits: bits, type: type)) }
            let top = values.max()!, bottom = -values.min()!
            let scale = toHalf(max(max(hi, 0) / top, max(-lo, 0) / bottom))
            guard scale > 0 else { continue }
            for i in 0..<w.count {
                var bestCode = 0, bestDistance = Float.infinity
                for (q, v) in values.enumerated() where abs(w[i] - scale * v) < bestDistance {
                    bestDistance = abs(w[i] - scale * v)
                    bestCode = q
                }
                trial[i] = UInt8(bestCode)
            }
            let err = squaredError(w, codes: trial, d: scale, m: 0, value: { values[$0] })
            if err < best.err {
                best = (err, type)
                (d, m) = (scale, 0)
                for i in 0..<w.count { codes[i] = trial[i] }
            }
        }
        return (d, m, best.type)
    }
}

extension QuantizedMatrix {
    /// The data type group g of row r uses (`.integer` for every group of a non-mixed matrix).
    @inlinable
    public func groupType(row r: Int, group g: Int) -> MixedDataType {
        guard let types = groupTypes else { return .integer }
        return MixedDataType(rawValue: types.bytes()[r * groupsPerRow + g]) ?? .integer
    }

    /// The integer matrix the kernels run for a mixed matrix: per group u = v + bias (or −v + bias
    /// for a group whose extra value is +16, with −d) and w = d'·u + m'.
    func buildValueCodes() throws -> QuantizedMatrix {
        guard case .mixed(let bits) = type else { return self }
        let bias = MixedDataType.valueBias(bits: bits)
        let view = try QuantizedMatrix(rows: rows, cols: cols, groupSize: groupSize, type: .integer(bits: bits + 1),
                                       symmetric: false, allowWideCodes: true)
        let groups = groupsPerRow
        parallelFor(rows) { r in
            for g in 0..<groups {
                let t = self.groupType(row: r, group: g), d = self.scale(row: r, group: g),
                    m = self.offset(row: r, group: g)
                let flip = bits == 4 && t == .extraAsymmetryPositive
                for k in 0..<self.groupSize {
                    let q = self.code(row: r, col: g * self.groupSize + k)
                    let u = t == .integer ? q : (flip ? -1 : 1) * MixedDataType.fpValue(q, bits: bits, type: t) + bias
                    view.setCode(u, row: r, col: g * self.groupSize + k)
                }
                let dv: Float = t == .integer ? d : (flip ? -d : d)
                view.scales.floats()[r * groups + g] = dv
                view.offsets.floats()[r * groups + g] = t == .integer ? m : -dv * Float(bias)
            }
        }
        return view
    }
}
