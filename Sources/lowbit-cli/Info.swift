import LowBit

func printInfo() {
    print("lowbit \(LowBitVersion.string)")
    print("cpu features: \(CPUFeatures.current.names)")
    print("simd tiers this cpu runs: \(SIMDTier.supported.map(\.description).joined(separator: ", "))")
    print("simd tier in use: \(Runtime.simdTier) (LOWBIT_SIMD=portable|avx2|avx512 picks a lower one)")
    print("threads: \(Runtime.threads) of \(Runtime.cpuCount) CPUs")
    print("caches: \(Runtime.cacheSummary)")
    print("weight types: 1, 2, 3, 4-bit, ternary, and 3- or 4-bit mixed data types (BitMoD); group sizes "
          + supportedGroupSizes.map(String.init).joined(separator: ", "))
    print("kernel families:")
    for k in KernelFamily.allCases {
        print("  \(k.description.padded(10)) \(kernelTierNote(k))")
    }
}

/// How a family runs at the tier in use, said plainly (no silent slow paths).
func kernelTierNote(_ k: KernelFamily) -> String {
    k.note ?? "the fastest of \(AutoKernel.candidates.map(\.description).joined(separator: " and ")), "
        + "measured here per shape, type, n bucket, threads and tier"
}
