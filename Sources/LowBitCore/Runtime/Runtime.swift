#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Library-wide settings and facts about the machine.
public enum Runtime {
    private static let threadSetting = Atomic<Int>(0)

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

    /// The tier kernels run at: the best this CPU supports, or the one `LOWBIT_SIMD` names (a
    /// lower one; an unknown or unsupported name leaves the best and says so on stderr).
    public static var simdTier: SIMDTier { SIMDTier.allCases[tierSetting.load(ordering: .relaxed)] }
    private static let tierSetting = Atomic<Int>(SIMDTier.allCases.firstIndex(of: SIMDTier.initial)!)

    /// Runs the kernels of `tier` from now on (tests compare tiers; `lowbit bench --tier`).
    /// Throws `.unsupported` for a tier this CPU cannot run.
    public static func setSIMDTier(_ tier: SIMDTier) throws {
        guard SIMDTier.supported.contains(tier) else {
            throw LowBitError(.unsupported, "SIMD tier \(tier) is not supported by this CPU (it has: "
                              + SIMDTier.supported.map(\.description).joined(separator: ", ") + ")")
        }
        tierSetting.store(SIMDTier.allCases.firstIndex(of: tier)!, ordering: .relaxed)
    }

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
            (try? FileIO.readSystemText(path)).map { $0.filter { !$0.isWhitespace } }
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

/// body(i) for i in 0..<count, over `parallelChunks`: each index is a call of its own, so a
/// thread that is late or held up leaves the indices it has not reached to the others.
public func parallelFor(_ count: Int, threads: Int = Runtime.threads, _ body: (Int) -> Void) {
    parallelChunks(count, chunk: 1, threads: threads) { range in
        for i in range { body(i) }
    }
}

/// Runs body over 0..<count in one share per thread, as `parallelRanges` does, but in chunks (a
/// multiple of `chunk` indices, about `chunksPerShare` per share), and a thread that finishes
/// its share takes the chunks another has not started yet, from the back. A thread that the
/// system stalls, or that runs on a slower or busier core, then holds up only the chunk it is
/// in, not the rest of its share; without a stall, every thread runs its own share, so each
/// keeps the same rows (and their cache lines) from call to call. On a shared VM, whose other
/// vCPU is often held up, static halves leave a 2-thread product waiting for the slower thread
/// far more often than chunks do. Shares of fewer than `minimumChunksPerShare` times `chunk`
/// indices are run whole, as by `parallelRanges`: each chunk costs a call into the kernel, which
/// shows on small products (a model's 1536×576 matrices at N = 1).
/// For kernels whose result per index does not depend on which call it arrives in.
package func parallelChunks(_ count: Int, chunk smallest: Int, threads: Int = Runtime.threads,
                            _ body: (Range<Int>) -> Void) {
    let smallest = max(1, smallest)
    let parts = min(threads, (count + smallest - 1) / smallest)
    // (Chunk counts are kept in 32-bit halves of a word: a share of 2³² chunks runs whole.)
    if parts <= 1 || count / parts < minimumChunksPerShare * smallest || count / smallest >= 1 << 32 {
        parallelRanges(count, threads: threads, body)
        return
    }
    // About `chunksPerShare` chunks per share, each a multiple of the smallest.
    let chunk = max(smallest, count / parts / chunksPerShare / smallest * smallest)
    // Per share, the chunks not yet claimed: [front, back) as the low and high halves of a word,
    // each word on cache lines of its own (sharing one, every claim would move the line between
    // cores).
    let spacing = 128 / MemoryLayout<Atomic<UInt64>>.stride
    withUnsafeTemporaryAllocation(of: Atomic<UInt64>.self, capacity: parts * spacing) { words in
        let claims = { (share: Int) in words.baseAddress! + share * spacing }
        for p in 0..<parts {
            let size = count * (p + 1) / parts - count * p / parts
            claims(p).initialize(to: Atomic(UInt64((size + chunk - 1) / chunk) << 32))
        }
        ThreadPool.shared.run(parts: parts) { p in
            for offset in 0..<parts {
                let share = (p + offset) % parts
                let lo = count * share / parts, hi = count * (share + 1) / parts
                while let k = claimChunk(claims(share), fromFront: offset == 0) {
                    body((lo + k * chunk)..<min(hi, lo + (k + 1) * chunk))
                }
            }
        }
        for p in 0..<parts { claims(p).deinitialize(count: 1) }
    }
}

/// Claims the front chunk of a share (its own thread), or nil when none is left; or the back
/// one (another thread), or nil unless at least two are left: the last one is cheaper for the
/// share's own thread, about to reach it with the share's rows in its cache, than for a thread
/// that would read them from the other core's (without stalls, the thread that starts first
/// finishes first and would take it every time).
@inline(__always)
private func claimChunk(_ claims: UnsafeMutablePointer<Atomic<UInt64>>, fromFront: Bool) -> Int? {
    var current = claims.pointee.load(ordering: .relaxed)
    while true {
        let front = current & 0xFFFF_FFFF, back = current >> 32
        guard front + (fromFront ? 0 : 1) < back else { return nil }
        let desired = fromFront ? current + 1 : current - (1 << 32)
        let (exchanged, original) = claims.pointee.compareExchange(expected: current, desired: desired,
                                                                   ordering: .relaxed)
        if exchanged { return Int(fromFront ? front : back - 1) }
        current = original
    }
}

/// See `parallelChunks`.
let minimumChunksPerShare = 8
/// Chunks per share that `parallelChunks` aims at: enough to even out a stall, few enough that
/// the calls into the kernel cost nothing (the smallest chunks, hundreds per share on a model's
/// output matrix, made 2-thread products slower).
let chunksPerShare = 16

/// A `parallelChunks` chunk of row blocks for the N = 1 kernels, which take row blocks by
/// fours: at least 32 KiB of codes.
package func rowBlockChunk(blockBytes: Int) -> Int { max(4, (32768 / max(1, blockBytes) + 3) / 4 * 4) }
