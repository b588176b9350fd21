/// Activation tables of the LUT (T-MAC) family, built once per activation row and product.
///
/// Write a code as bit planes, q = Σₚ 2ᵖ·bₚ, and map each bit to a sign sₚ = 2bₚ − 1. Then
///   q = ½·Σₚ 2ᵖ·sₚ + (2ᵇ − 1)/2,  so  Σₖ qₖ·xₖ = ½·Σₚ 2ᵖ·Σₖ sₚₖ·xₖ + (2ᵇ − 1)/2·Σₖ xₖ.
/// Group the activations by 4 ("k-groups"). For each k-group, a 16-entry table holds every signed
/// sum T[i] = Σⱼ (bit j of i ? +x₄ₖ₊ⱼ : −x₄ₖ₊ⱼ); one plane's 4 bits index it, so Σₖ sₚₖ·xₖ is one lookup
/// per k-group. The table is antisymmetric (T[15 − i] = −T[i]): 8 sums are computed, 8 negated.
/// Tables are rounded to int8 with one scale per weight group (ts = max |T| / 127 over the group),
/// so kernels add int8 lookups and convert once per group.
///
/// Memory per activation row: `cols / 4` tables of 16 Int8, then `groups` Float table scales,
/// then `groups` Float group sums Σx.
public struct LUTTables {
    public let cols: Int
    public let groupSize: Int
    public var groups: Int { cols / groupSize }

    public static func byteCount(cols: Int, groupSize: Int) -> Int {
        cols / 4 * 16 + 2 * (cols / groupSize) * 4
    }

    /// Bytes from one activation row's tables to the next: `byteCount` rounded up to a cache line.
    public static func stride(cols: Int, groupSize: Int) -> Int {
        (byteCount(cols: cols, groupSize: groupSize) + 63) / 64 * 64
    }

    public init(cols: Int, groupSize: Int) {
        self.cols = cols
        self.groupSize = groupSize
    }

    @inlinable public func tables(_ base: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Int8> {
        base.assumingMemoryBound(to: Int8.self)
    }
    @inlinable public func tableScales(_ base: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Float> {
        (base + cols / 4 * 16).assumingMemoryBound(to: Float.self)
    }
    @inlinable public func groupSums(_ base: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Float> {
        (base + cols / 4 * 16 + groups * 4).assumingMemoryBound(to: Float.self)
    }

    /// Entry i < 8 of a k-group's table (bit 3 clear: x₃ negative), evaluated as
    /// ((−x₃ ± x₀) ± x₁) ± x₂: every builder uses this order, so all round alike, and entry
    /// 15 − i, the same expression with every sign flipped, rounds to the exact negation.
    @inline(__always)
    static func entry(_ i: Int, _ x4: UnsafePointer<Float>) -> Float {
        let a = i & 1 != 0 ? x4[0] : -x4[0]
        let b = i & 2 != 0 ? x4[1] : -x4[1]
        let c = i & 4 != 0 ? x4[2] : -x4[2]
        return ((-x4[3] + a) + b) + c
    }

    /// The readable builder, one entry at a time.
    public func buildScalar(_ x: UnsafePointer<Float>, into base: UnsafeMutableRawPointer) {
        let t = tables(base), scales = tableScales(base), sums = groupSums(base)
        let kgroupsPerGroup = groupSize / 4
        for g in 0..<groups {
            var maxAbs: Float = 0, sum: Float = 0
            for k in (g * groupSize)..<((g + 1) * groupSize) { sum += x[k] }
            for kg in (g * kgroupsPerGroup)..<((g + 1) * kgroupsPerGroup) {
                for i in 0..<8 { maxAbs = max(maxAbs, abs(LUTTables.entry(i, x + 4 * kg))) }
            }
            let scale = maxAbs / 127
            let inverse: Float = scale > 0 ? 1 / scale : 0
            scales[g] = scale
            sums[g] = sum
            for kg in (g * kgroupsPerGroup)..<((g + 1) * kgroupsPerGroup) {
                let entries = t + 16 * kg
                for i in 0..<8 {
                    let q = roundToInt8(LUTTables.entry(i, x + 4 * kg) * inverse)
                    entries[i] = q
                    entries[15 - i] = -q
                }
            }
        }
    }
}

/// Rounds to the nearest integer (ties to even, as `vcvtps2dq`) in −127...127 (NaN, which only
/// overflowing inputs produce, to 0). Symmetric, so a mirrored entry rounds to the exact negation.
@inlinable
func roundToInt8(_ v: Float) -> Int8 {
    v.isNaN ? 0 : Int8(min(max(v.rounded(.toNearestOrEven), -127), 127))
}
