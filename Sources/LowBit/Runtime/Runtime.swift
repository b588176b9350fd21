#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Library-wide settings and facts about the machine.
public enum Runtime {
    private static let threadSetting = Atomic<Int>(0)
    private static let portableOnly = Atomic<Bool>(FileIO.environment("LOWBIT_PORTABLE") == "1")

    /// Logical CPUs of this machine.
    public static let cpuCount = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))

    /// Threads used by products and quantizers: the last `setThreads` value, or every CPU.
    public static var threads: Int {
        let t = threadSetting.load(ordering: .relaxed)
        return t > 0 ? t : cpuCount
    }

    /// 0 means "one per CPU". Results do not depend on this setting.
    public static func setThreads(_ n: Int) throws {
        guard (0...1024).contains(n) else {
            throw LowBitError(.invalidArgument, "thread count \(n) is out of range 0...1024 (0 = one per CPU)")
        }
        threadSetting.store(n, ordering: .relaxed)
    }

    /// CPU features as the kernel reads them (/proc/cpuinfo on Linux).
    public static let cpuFeatures: Set<String> = {
        guard let raw = try? FileIO.read("/proc/cpuinfo"), case let info = String(decoding: raw, as: UTF8.self),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
        return Set(line.split(separator: " ").dropFirst(2).map(String.init))
    }()

    /// True when this build contains the AVX2 kernels.
    public static var compiledWithAVX2: Bool {
        #if LOWBIT_AVX2
        return true
        #else
        return false
        #endif
    }

    /// True when the AVX2 kernels are compiled in, the CPU has them, and they are not switched off.
    public static var useAVX2: Bool {
        compiledWithAVX2 && hostHasAVX2 && !portableOnly.load(ordering: .relaxed)
    }
    static let hostHasAVX2 = ["avx2", "fma", "f16c", "popcnt"].allSatisfy(cpuFeatures.contains)

    /// Forces the portable kernels (tests compare them with the AVX2 ones; also `LOWBIT_PORTABLE=1`).
    public static func setPortableOnly(_ on: Bool) { portableOnly.store(on, ordering: .relaxed) }


    /// The SIMD tier kernels run at now.
    public static var tier: String { useAVX2 ? "avx2" : "portable" }
}

/// Splits 0..<count into one contiguous range per thread (at most `Runtime.threads`) and runs
/// body on each. Every index is handled by exactly one call, so results cannot depend on the
/// thread count.
public func parallelRanges(_ count: Int, threads: Int = Runtime.threads, _ body: (Range<Int>) -> Void) {
    let workers = min(threads, count)
    if workers <= 1 {
        if count > 0 { body(0..<count) }
        return
    }
    ThreadPool.shared.run(parts: workers) { w in
        body((count * w / workers)..<(count * (w + 1) / workers))
    }
}

/// body(i) for i in 0..<count, over `parallelRanges`.
public func parallelFor(_ count: Int, threads: Int = Runtime.threads, _ body: (Int) -> Void) {
    parallelRanges(count, threads: threads) { range in
        for i in range { body(i) }
    }
}
