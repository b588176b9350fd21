// swift-tools-version:6.0
import Foundation
import PackageDescription

// AVX2 kernels are compiled only where the build machine has AVX2+FMA+F16C, or never when
// LOWBIT_PORTABLE=1. The intrinsics crash the compiler without these flags, so the flags and the
// LOWBIT_AVX2 define travel together (DESIGN §5). The portable kernels are always compiled.
func hostFlags() -> Set<String> {
    if ProcessInfo.processInfo.environment["LOWBIT_PORTABLE"] == "1" { return [] }
    guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return [] }
    guard let flagsLine = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
    return Set(flagsLine.split(separator: " ").map(String.init))
}

let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
let flags = hostFlags()
let simdSettings: [SwiftSetting] = ["avx2", "fma", "f16c", "popcnt"].allSatisfy(flags.contains)
    ? [.define("LOWBIT_AVX2"),
       .unsafeFlags(["-Xcc", "-mavx2", "-Xcc", "-mfma", "-Xcc", "-mf16c", "-Xcc", "-mpopcnt", "-Xcc", "-mbmi2"])]
      // `auto` times each family with its weights flushed from the cache (the one cache-flush
      // intrinsic Swift can call is CLFLUSHOPT's; without it that timing is cache-hot too).
      + (flags.contains("clflushopt") ? [.define("LOWBIT_CLFLUSHOPT"), .unsafeFlags(["-Xcc", "-mclflushopt"])] : [])
    : []

let package = Package(
    name: "lowbit",
    products: [
        // liblowbit.so: the stable C ABI of Include/lowbit.h.
        .library(name: "lowbit", type: .dynamic, targets: ["LowBitC"]),
        // SwiftPM refuses two products with one name, so the tool is built as `lowbit-cli`;
        // scripts/build.sh installs it as dist/bin/lowbit.
        .executable(name: "lowbit-cli", targets: ["lowbit-cli"]),
    ],
    targets: [
        .target(name: "LowBitPrefetch", path: "Sources/LowBitPrefetch"),
        .target(name: "LowBit", dependencies: ["LowBitPrefetch"], path: "Sources/LowBit", swiftSettings: simdSettings),
        .target(
            name: "LowBitC", dependencies: ["LowBit", "LowBitModel"], path: "Sources/LowBitC", exclude: ["lowbit.map"],
            swiftSettings: simdSettings,
            // Export the lowbit_* symbols only (the version script hides everything else).
            linkerSettings: [.unsafeFlags(["-Xlinker", "--version-script=\(root)/Sources/LowBitC/lowbit.map",
                                           "-Xlinker", "-soname=liblowbit.so"])]),
        // The Llama runner: tokenizer, forward pass, sampling, perplexity, on lowbit matrices.
        .target(name: "LowBitModel", dependencies: ["LowBit"], path: "Sources/LowBitModel", swiftSettings: simdSettings),
        .executableTarget(name: "lowbit-cli", dependencies: ["LowBit", "LowBitModel"], path: "Sources/lowbit-cli",
                          swiftSettings: simdSettings),
        .testTarget(name: "LowBitTests", dependencies: ["LowBit", "LowBitModel", "LowBitFuzzTargets"],
                    path: "Tests/LowBitTests", swiftSettings: simdSettings),
        // A parser entry point per file format, for libFuzzer and for the tests' corpus replay.
        .target(name: "LowBitFuzzTargets", dependencies: ["LowBit", "LowBitModel"], path: "Tests/Fuzz/Targets"),
        // scripts/fuzz.sh builds it with -sanitize=fuzzer,address and LOWBIT_FUZZ defined.
        .executableTarget(name: "lowbit-fuzz", dependencies: ["LowBit", "LowBitFuzzTargets"], path: "Tests/Fuzz/Driver",
                          swiftSettings: ProcessInfo.processInfo.environment["LOWBIT_FUZZ"] == "1"
                              ? [.define("LOWBIT_FUZZ")] : []),
    ],
    swiftLanguageModes: [.v5]
)
