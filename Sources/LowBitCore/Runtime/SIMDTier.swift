#if canImport(Glibc)
import Glibc
#endif
import LowBitCPU

/// An instruction-set tier: a target of its own (`LowBitAVX2`, `LowBitAVX512`), compiled with
/// exactly that tier's flags while the rest of the library compiles for the architecture's
/// baseline, so that one build runs on every CPU of the architecture. `portable` is plain Swift,
/// the readable reference every other tier is tested against. `neon` names the aarch64 slot;
/// no kernels are written for it, so an aarch64 build runs `portable`.
public enum SIMDTier: String, CaseIterable, Sendable, CustomStringConvertible {
    case portable
    case avx2
    case avx512
    case neon

    public var description: String { rawValue }

    /// The tiers this CPU and OS can run, lowest first.
    public static let supported: [SIMDTier] = {
        let cpu = CPUFeatures.current
        var tiers: [SIMDTier] = [.portable]
        if cpu.contains(.avx2) { tiers.append(.avx2) }
        if cpu.isSuperset(of: avx512Needs) { tiers.append(.avx512) }
        return tiers
    }()

    /// The `avx512` target is compiled with all of these (Intel Ice Lake and later, AMD Zen 4), so
    /// the compiler may use any of them anywhere in it; CPUs with AVX-512 F/DQ/BW/VL only (Skylake-X)
    /// run `avx2`.
    static let avx512Needs: CPUFeatures = [.avx2, .avx512, .avx512VNNI, .avx512VBMI, .avx512VPOPCNTDQ]

    /// `LOWBIT_SIMD`'s tier where it names a supported one, else the best supported.
    static let initial: SIMDTier = {
        let best = supported.last!
        guard let name = FileIO.environment("LOWBIT_SIMD"), !name.isEmpty else { return best }
        guard let tier = SIMDTier(rawValue: name), supported.contains(tier) else {
            let choices = supported.map(\.description).joined(separator: ", ")
            fputs("lowbit: LOWBIT_SIMD=\(name) is not a tier this CPU runs (\(choices)); using \(best)\n", stderr)
            return best
        }
        return tier
    }()
}

/// What `lowbit_cpu_features` found: the instruction sets the tiers need, each only where the OS
/// also saves its registers.
public struct CPUFeatures: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let avx2 = CPUFeatures(rawValue: UInt32(LOWBIT_CPU_AVX2))
    public static let avx512 = CPUFeatures(rawValue: UInt32(LOWBIT_CPU_AVX512))
    public static let avx512VNNI = CPUFeatures(rawValue: UInt32(LOWBIT_CPU_AVX512_VNNI))
    public static let avx512VBMI = CPUFeatures(rawValue: UInt32(LOWBIT_CPU_AVX512_VBMI))
    public static let avx512VPOPCNTDQ = CPUFeatures(rawValue: UInt32(LOWBIT_CPU_AVX512_VPOPCNTDQ))
    public static let clflushopt = CPUFeatures(rawValue: UInt32(LOWBIT_CPU_CLFLUSHOPT))

    public static let current = CPUFeatures(rawValue: lowbit_cpu_features())

    /// "avx2 avx512 avx512vnni …": the features present, as `lowbit info` prints them.
    public var names: String {
        let all: [(CPUFeatures, String)] = [(.avx2, "avx2+fma+f16c+bmi2"), (.avx512, "avx512f+dq+bw+vl"),
                                            (.avx512VNNI, "avx512vnni"), (.avx512VBMI, "avx512vbmi"),
                                            (.avx512VPOPCNTDQ, "avx512vpopcntdq"), (.clflushopt, "clflushopt")]
        let present = all.filter { contains($0.0) }.map(\.1)
        return present.isEmpty ? "baseline only" : present.joined(separator: " ")
    }
}
