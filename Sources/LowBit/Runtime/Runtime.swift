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

    /// One data (or unified) cache level of CPU 0: how big, and how many CPUs share it.
    public struct CacheLevel: Sendable, Equatable {
        public let level: Int
        public let bytes: Int
        public let sharedBy: Int
    }

    /// CPU 0's data caches as Linux describes them, smallest level first; empty where the
    /// system does not say. Whether a benchmark's "cache-hot" weights fit in L2 or stream
    /// from L3 depends on these sizes.
    public static let dataCaches: [CacheLevel] = dataCaches(sysfs: "/sys/devices/system/cpu/cpu0/cache")

    /// Half of one core's share of L2 (256 KiB where the size is unknown, at least 64 KiB): how
    /// much data a kernel keeps at hand while it streams the rest (the LUT kernel's tables for
    /// N > 1, a BitStack product's rebuilt weights).
    public static let halfL2Bytes: Int = {
        guard let l2 = dataCaches.first(where: { $0.level == 2 }) else { return 256 << 10 }
        return max(64 << 10, l2.bytes / l2.sharedBy / 2)
    }()

    /// Reads `index0`, `index1`, … under `dir` (files level, type, size such as "2048K", and
    /// shared_cpu_list such as "0-1,4"), skipping instruction caches and unreadable entries.
    static func dataCaches(sysfs dir: String) -> [CacheLevel] {
        func text(_ path: String) -> String? {
            (try? FileIO.read(path)).map { String(decoding: $0, as: UTF8.self).filter { !$0.isWhitespace } }
        }
        var caches: [CacheLevel] = []
        for i in 0..<16 {
            let entry = "\(dir)/index\(i)"
            guard let levelText = text("\(entry)/level") else { break }
            guard text("\(entry)/type") != "Instruction", let level = Int(levelText),
                  let size = text("\(entry)/size"), let bytes = parseSize(size) else { continue }
            let shared = text("\(entry)/shared_cpu_list").map(cpuListCount) ?? 1
            caches.append(CacheLevel(level: level, bytes: bytes, sharedBy: max(1, shared)))
        }
        return caches.sorted { $0.level < $1.level }
    }

    /// "48K", "2048K", "1M" or a plain byte count.
    static func parseSize(_ s: String) -> Int? {
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        if let unit = s.last, let scale = units[unit] { return Int(s.dropLast()).map { $0 * scale } }
        return Int(s)
    }

    /// CPUs in a list such as "0-3,8,10-11" (0 where it does not parse).
    static func cpuListCount(_ list: String) -> Int {
        var count = 0
        for part in list.split(separator: ",") {
            let ends = part.split(separator: "-").compactMap { Int($0) }
            switch ends.count {
            case 1: count += 1
            case 2 where ends[1] >= ends[0]: count += ends[1] - ends[0] + 1
            default: return 0
            }
        }
        return count
    }

    /// "L1 48 KiB, L2 2 MiB, L3 260 MiB shared by 2 CPUs", or "unknown".
    public static var cacheSummary: String {
        guard !dataCaches.isEmpty else { return "unknown" }
        return dataCaches.map { c in
            let size = c.bytes >= 1 << 20 && c.bytes % (1 << 20) == 0 ? "\(c.bytes >> 20) MiB" : "\(c.bytes >> 10) KiB"
            return "L\(c.level) \(size)" + (c.sharedBy > 1 ? " shared by \(c.sharedBy) CPUs" : "")
        }.joined(separator: ", ")
    }
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
