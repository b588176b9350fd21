// swift-tools-version:6.0
import Foundation
import PackageDescription

// Every target compiles for its architecture's baseline (x86-64: SSE2) except the instruction-set
// tiers, each compiled with exactly its own flags: the library picks the best tier the running CPU
// supports at load (`Tiers`), so one build runs on any x86-64 CPU. Code outside a tier target
// never contains an instruction the baseline lacks (`scripts/check-baseline.sh` checks the objects).
let avx2Flags = ["-mavx2", "-mfma", "-mf16c", "-mbmi2", "-mpopcnt"]
let avx512Flags = avx2Flags + ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512vnni", "-mavx512vbmi",
                               "-mavx512vpopcntdq"]
// No cross-module optimization out of a tier: a tier function inlined into its caller would be
// compiled with the caller's (baseline) flags.
func tierSettings(_ clangFlags: [String]) -> [SwiftSetting] {
    [.unsafeFlags(clangFlags.flatMap { ["-Xcc", $0] } + ["-disable-cmo"])]
}

let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path

// A kernel family's folder, Sources/LowBit/Kernels/<Family>/, holds all of it: its reference and
// portable kernel, its registry entry, its layout and its kernels for each tier. A file's name
// says which target compiles it, and the lists below follow the names (scripts/check-baseline.sh
// finds each object by the same rule): ending in AVX2 or AVX512, that tier; in Layout, Tables or
// Activations, LowBitCore (what every tier reads); anything else, LowBit. (Named here rather than
// found by listing the folders: SwiftPM caches the evaluated manifest until this file changes.)
let familyCoreFiles = ["BitSerial/BitSerialActivations.swift", "BitSerial/BitSerialLayout.swift",
                       "Dequant/DequantLayout.swift", "LUT/LUTLayout.swift", "LUT/LUTTables.swift"]
let familyTierFiles: [String: [String]] = [
    "AVX2": ["BitSerial/BitSerialKernelAVX2.swift", "Dequant/DequantFloatKernelAVX2.swift",
             "Dequant/DequantKernelAVX2.swift", "LUT/LUTKernelAVX2.swift", "LUT/LUTTablesAVX2.swift"],
    "AVX512": ["BitSerial/BitSerialKernelAVX512.swift", "Dequant/DequantKernelAVX512.swift",
               "LUT/LUTKernelAVX512.swift"],
]
/// A family file's path from Sources/, for a target rooted there.
func fromSources(_ files: [String]) -> [String] { files.map { "LowBit/Kernels/\($0)" } }
/// For a target rooted at Sources/ that compiles `sources` (folders or files): the rest of
/// Sources/, which it must exclude (SwiftPM warns of files a target neither compiles nor
/// excludes), as whole folders wherever a folder holds none of `sources`, so that a file added
/// to another target's folder is excluded too while SwiftPM holds this manifest's evaluation
/// in its cache.
func sourcesExcept(_ sources: [String]) -> [String] {
    let base = "\(root)/Sources", files = FileManager.default
    func rest(of folder: String) -> [String] {
        let names = (try? files.contentsOfDirectory(atPath: folder.isEmpty ? base : "\(base)/\(folder)")) ?? []
        return names.sorted().flatMap { name -> [String] in
            let path = folder.isEmpty ? name : "\(folder)/\(name)"
            if sources.contains(path) { return [] }
            return sources.contains { $0.hasPrefix(path + "/") } ? rest(of: path) : [path]
        }
    }
    return rest(of: "")
}
func rootedAtSources(_ sources: [String]) -> (sources: [String], exclude: [String]) {
    (sources, sourcesExcept(sources))
}
let coreSources = rootedAtSources(["LowBitCore"] + fromSources(familyCoreFiles))
let avx2Sources = rootedAtSources(["LowBitAVX2"] + fromSources(familyTierFiles["AVX2"]!))
let avx512Sources = rootedAtSources(["LowBitAVX512"] + fromSources(familyTierFiles["AVX512"]!))
/// The library's soname is liblowbit.so.MAJOR, MAJOR being LOWBIT_VERSION_MAJOR of Include/lowbit.h (the ABI
/// check compares them): programs linked against one major version never load another.
let abiMajor = 0

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
        // cpuid, xgetbv, prefetch and cache flush: what Swift cannot execute itself.
        .target(name: "LowBitCPU", path: "Sources/LowBitCPU"),
        // What every tier's kernels share: layouts, tables, activations, workspaces, threads, errors.
        // Its bodies are serialized for inlining into other modules, the tiers' inner loops above
        // all (layout offsets, prefetch distances): called across the module boundary instead,
        // LUT and dequant products took up to 3 times as long.
        .target(name: "LowBitCore", dependencies: ["LowBitCPU"], path: "Sources",
                exclude: coreSources.exclude, sources: coreSources.sources,
                swiftSettings: [.unsafeFlags(["-enable-cmo-everything"])]),
        // The tiers (`Tiers` in LowBit lists them): portable, the reference, needs no flags.
        .target(name: "LowBitPortable", dependencies: ["LowBitCore"], path: "Sources/LowBitPortable"),
        .target(name: "LowBitAVX2", dependencies: ["LowBitCore", "LowBitCPU", "LowBitPortable"],
                path: "Sources", exclude: avx2Sources.exclude, sources: avx2Sources.sources,
                swiftSettings: tierSettings(avx2Flags)),
        .target(name: "LowBitAVX512", dependencies: ["LowBitCore", "LowBitAVX2"],
                path: "Sources", exclude: avx512Sources.exclude, sources: avx512Sources.sources,
                swiftSettings: tierSettings(avx512Flags)),
        .target(name: "LowBit", dependencies: ["LowBitCore", "LowBitPortable", "LowBitAVX2", "LowBitAVX512"],
                path: "Sources/LowBit",
                exclude: (familyCoreFiles + familyTierFiles.values.joined()).map { "Kernels/\($0)" }),
        .target(
            name: "LowBitC", dependencies: ["LowBit", "LowBitModel"], path: "Sources/LowBitC", exclude: ["lowbit.map"],
            // Export the lowbit_* symbols only (the version script hides everything else).
            linkerSettings: [.unsafeFlags(["-Xlinker", "--version-script=\(root)/Sources/LowBitC/lowbit.map",
                                           "-Xlinker", "-soname=liblowbit.so.\(abiMajor)"])]),
        // The Llama runner: tokenizer, forward pass, sampling, perplexity, on lowbit matrices.
        .target(name: "LowBitModel", dependencies: ["LowBit"], path: "Sources/LowBitModel"),
        .executableTarget(name: "lowbit-cli", dependencies: ["LowBit", "LowBitModel"], path: "Sources/lowbit-cli"),
        .testTarget(name: "LowBitTests", dependencies: ["LowBit", "LowBitModel", "LowBitFuzzTargets"],
                    path: "Tests/LowBitTests"),
        // A parser entry point per file format, for libFuzzer and for the tests' corpus replay.
        .target(name: "LowBitFuzzTargets", dependencies: ["LowBit", "LowBitModel"], path: "Tests/Fuzz/Targets"),
        // scripts/fuzz.sh builds it with -sanitize=fuzzer,address and LOWBIT_FUZZ defined.
        .executableTarget(name: "lowbit-fuzz", dependencies: ["LowBit", "LowBitFuzzTargets"], path: "Tests/Fuzz/Driver",
                          swiftSettings: ProcessInfo.processInfo.environment["LOWBIT_FUZZ"] == "1"
                              ? [.define("LOWBIT_FUZZ")] : []),
    ],
    swiftLanguageModes: [.v5]
)
