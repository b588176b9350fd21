import LowBit

func printInfo() {
    let wanted = ["sse4_2", "popcnt", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512bw", "avx512_vnni"]
    print("lowbit \(LowBitVersion.string)")
    print("cpu features: \(wanted.map { "\($0)=\(Runtime.cpuFeatures.contains($0) ? "yes" : "no")" }.joined(separator: " "))")
    print("avx2 kernels compiled in: \(Runtime.compiledWithAVX2 ? "yes" : "no (portable build)")")
    print("simd tier: \(Runtime.tier)")
    print("threads: \(Runtime.threads) of \(Runtime.cpuCount) CPUs")
    print("caches: \(Runtime.cacheSummary)")
    print("weight types: 1, 2, 3, 4-bit, ternary, and 3- or 4-bit mixed data types (BitMoD); group sizes \(supportedGroupSizes.map(String.init).joined(separator: ", "))")
    print("kernel families:")
    for k in KernelFamily.allCases {
        print("  \(k.description.padded(10)) \(kernelTierNote(k))")
    }
}

/// How fast a family runs in this build, said plainly (no silent slow paths).
func kernelTierNote(_ k: KernelFamily) -> String {
    switch k {
    case .auto: return "the fastest of lut and dequant, measured here per shape, type, n bucket and threads"
    case .lut: return Runtime.useAVX2 ? "avx2 (vpshufb tables), every type and shape" : "portable scalar (slow path)"
    case .bitSerial: return (Runtime.useAVX2 ? "avx2 (nibble-vpshufb popcount at 2 and 4 activation bits, masked sums at 8)" : "portable (64-bit popcount words)") + ", activations 2, 4 or 8 bits"
    case .dequant: return (Runtime.useAVX2 ? "avx2 int8 (vpmaddubsw, 8-row interleave, 8x4 register tile for n > 1)" : "portable int8 (codes unpacked per group, plain loops)")
        + "; float activations (act_bits 32): " + (Runtime.useAVX2 ? "avx2 (codes to floats, FMA, same layout)" : "portable")
    case .reference: return "scalar Float64 (the spec; slow by design)"
    }
}
