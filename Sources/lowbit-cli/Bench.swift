#if canImport(Glibc)
import Glibc
#endif
import LowBit
import Synchronization

let benchUsage = """
usage: lowbit bench [options]

Times Y = X·Wᵀ per kernel family and weight type, beside a memory-read baseline of the same
bytes measured in the same run (ratio = read time / kernel time: 1.0 means the kernel runs at
memory speed), and checks each case's error against the Float64 product of the dequantized weights.
The families of one shape, type and N are timed side by side at every thread count, in rounds
that call each in turn (medians), so a verdict compares calls made under the same load, and so
does each "threads" line: a family's speed-up on more threads over its time on 1, beside the
memory-read baseline's speed-up on the same bytes.

  --cases LIST      shape:memory pairs (default 4096x4096:hot,11008x4096:dram); memory is
                    hot (one copy, cache-resident where it fits) or dram (flushed from every cache
                    level before each call, so it streams from memory; on CPUs without CLFLUSHOPT,
                    rotating over > 96 MB of copies instead)
  --shapes LIST     instead of --cases: shapes such as 4096x4096,11008x4096 ...
  --memory LIST     ... crossed with hot, dram or both (default hot)
  --families LIST   lut,bitserial,dequant,auto (default all four; auto's first call calibrates)
  --bits LIST       1,2,3,4,ternary,mixed3,mixed4 (default 1,2,3,4,ternary; mixedB: BitMoD
                    per-group data types, on the bench's Gaussian weights)
  --n LIST          activation rows per product (default 1,32)
  --threads LIST    thread counts (default 1,2)
  --tiers LIST      SIMD tiers to run every case at, side by side in the same rounds (default
                    the tier in use; `lowbit info` lists this CPU's), e.g. avx2,avx512
  --act-bits LIST   activation precision, each a case of its own (default 8): bit-serial A = 2,
                    4, 8; dequant 8, 16 (two int8 passes) or 32 (float); a family runs at 8
                    where the list has none of its own. Error is against float activations, so
                    it shows what the rounding costs
  --group-size G    32, 64 or 128 (default 128); a shape whose columns it does not divide
                    (3200x8640 at 128) uses the largest one that does, and says so
  --max-call S      skip cases whose single call takes longer than S seconds (default 0.25)
  --full            the full grid: 5 shapes x hot and dram x N 1,8,32,256
  --json            print JSON instead of the table
  --contention      run every case beside a thread that keeps one core busy (another program's
                    load), to see what more threads gain or lose when a core is not free
  --model FILE      time a model instead (prompt and generation, as llama-bench): see below
  --calibrate PATH  also write an auto-kernel calibration file (load it with
                    lowbit_calibration_load): per shape, type, N bucket and thread count the
                    fastest of lut and dequant, or, for a shape run both hot and from DRAM,
                    the one auto's own rule picks from both
"""

enum MemoryMode: String { case hot, dram }

struct BenchCase {
    let rows: Int, cols: Int
    let memory: MemoryMode
    let type: WeightType
    let family: KernelFamily
    /// The SIMD tier the case runs at.
    var tier = Runtime.simdTier
    /// Activation bits (bit-serial's A, dequant's 8, 16 or 32; 8 for the other families).
    var actBits = 8
    var groupSize = 128
    let n: Int, threads: Int
    var seconds = Double.nan, readSeconds = Double.nan, error = Double.nan
    var bytes = 0, runs = 0
    var note = ""
    /// The `auto` calibration entry this case's time informs (`--calibrate`).
    var autoKey: AutoKernel.Key? = nil

    var gflops: Double { 2 * Double(rows) * Double(cols) * Double(n) / seconds / 1e9 }
    var weightGBs: Double { Double(bytes) / seconds / 1e9 }
    var readRatio: Double { readSeconds / seconds }
    var measured: Bool { !seconds.isNaN }
    var groupKey: String { "\(rows)x\(cols) \(memory.rawValue) \(type) n=\(n) t=\(threads) \(tier)" }
    var label: String { family.description + (actBits == 8 ? "" : "/a\(actBits)") }
    var threadLabel: String { "\(label) t\(threads) \(tier)" }
    /// Time on 1 thread / time on `threads`, both from the same rounds (nil for 1 thread, or
    /// when 1 thread was not measured).
    var speedUp: Double? = nil
    /// The same for the memory-read baseline of this case's bytes: how far a plain read scaled
    /// in those rounds (on a shared host, a busy second core slows both).
    var readSpeedUp: Double? = nil
}

/// Each multi-thread case's speed-up over the same family on 1 thread, within one group.
func setSpeedUps(_ group: inout [BenchCase]) {
    for i in group.indices where group[i].threads > 1 && group[i].measured {
        if let one = group.first(where: {
            $0.threads == 1 && $0.label == group[i].label && $0.tier == group[i].tier && $0.measured
        }) {
            group[i].speedUp = one.seconds / group[i].seconds
            group[i].readSpeedUp = one.readSeconds / group[i].readSeconds
        }
    }
}

/// One line per shape, memory, type and N: each family's speed-up at each thread count above 1.
func printSpeedUps(_ cases: [BenchCase]) {
    var order: [String] = []
    var lines: [String: [String]] = [:]
    for c in cases {
        guard let s = c.speedUp else { continue }
        let key = "\(c.rows)x\(c.cols) \(c.memory.rawValue) \(c.type) n=\(c.n) \(c.tier)"
        if lines[key] == nil { order.append(key) }
        let read = fmt(c.readSpeedUp ?? .nan, 2)
        lines[key, default: []].append("\(c.label) \(fmt(s, 2))x on \(c.threads) (read \(read)x)")
    }
    for key in order {
        print("  threads \(key): over 1 thread, side by side (memory read of the same bytes): "
              + lines[key]!.joined(separator: ", "))
    }
}

func parseShapes(_ list: [String]) throws -> [(Int, Int)] {
    try list.map { s in
        let parts = s.split(separator: "x", omittingEmptySubsequences: false).compactMap { Int($0) }
        guard parts.count == 2, parts[0] > 0, parts[1] > 0 else { throw CLIError("bad shape '\(s)': use ROWSxCOLS") }
        // Test matrices are made in memory as Float32: 2^30 elements (4 GiB) at most.
        guard parts[0] <= 1 << 30, parts[1] <= 1 << 30, parts[0] * parts[1] <= 1 << 30 else {
            throw CLIError("shape '\(s)' is too large: at most 2^30 elements")
        }
        return (parts[0], parts[1])
    }
}

func runBench(_ args: Arguments) throws {
    if args.options["model"] != nil { return try runModelBench(args) }
    try args.allow(["cases", "shapes", "memory", "families", "bits", "n", "threads", "group-size", "max-call", "full",
                    "json", "calibrate", "act-bits", "contention", "tiers"])
    // A thread that keeps one core busy for the whole run, as another program would.
    let competitor = args.flags.contains("contention") ? BusyLoop() : nil
    defer { competitor?.stop() }
    let full = args.flags.contains("full")
    var cases: [((Int, Int), MemoryMode)] = []
    if let list = args.options["cases"] {
        for item in list.split(separator: ",") {
            let p = item.split(separator: ":")
            guard p.count == 2, let mem = MemoryMode(rawValue: String(p[1])) else {
                throw CLIError("bad case '\(item)': use ROWSxCOLS:hot|dram")
            }
            cases.append((try parseShapes([String(p[0])])[0], mem))
        }
    } else if args.options["shapes"] != nil || full {
        let defaults = ["4096x4096", "11008x4096", "4096x11008", "3200x8640", "8640x3200"]
        let shapes = try parseShapes(args.strings("shapes", default: defaults))
        let mems = try args.strings("memory", default: full ? ["hot", "dram"] : ["hot"]).map {
            guard let m = MemoryMode(rawValue: $0) else { throw CLIError("bad memory '\($0)': use hot or dram") }
            return m
        }
        for s in shapes { for m in mems { cases.append((s, m)) } }
    } else {
        cases = [((4096, 4096), .hot), ((11008, 4096), .dram)]
    }
    // Every family but the reference (the spec, slow by design), then auto.
    let benchFamilies = KernelFamily.families.filter { $0 != .reference } + [.auto]
    let families = try args.strings("families",
                                    default: benchFamilies.map(\.description)).map { try KernelFamily(name: $0) }
    guard families.allSatisfy(benchFamilies.contains) else {
        throw CLIError("bench families are " + benchFamilies.map(\.description).joined(separator: ", "))
    }
    let types = try args.strings("bits", default: ["1", "2", "3", "4", "ternary"]).map(parseWeightType)
    let ns = try args.ints("n", default: full ? [1, 8, 32, 256] : [1, 32])
    let threadCounts = try args.ints("threads", default: [1, 2])
    let startTier = Runtime.simdTier
    defer { try? Runtime.setSIMDTier(startTier) }
    let tiers = try parseTiers(args)
    let actBitsList = try args.ints("act-bits", default: [8])
    let knownActBits = Set(KernelFamily.families.flatMap { $0.activationBits ?? [] } + [8])
    guard actBitsList.allSatisfy(knownActBits.contains) else {
        throw CLIError("--act-bits takes " + KernelFamily.families.compactMap { f in
            f.activationBits.map { "\($0.sorted().map(String.init).joined(separator: ", ")) (\(f))" }
        }.joined(separator: ", "))
    }
    func precisions(_ family: KernelFamily) -> [Int] {
        let own = family.activationBits ?? [8]
        let chosen = actBitsList.filter(own.contains)
        return chosen.isEmpty ? [8] : chosen
    }
    let requestedGroupSize = try args.int("group-size", default: 128)
    guard supportedGroupSizes.contains(requestedGroupSize) else { throw CLIError("--group-size takes 32, 64 or 128") }
    // Per shape, the group size it runs with; every shape is checked before anything runs.
    func groupSizeFor(cols: Int) -> Int {
        supportedGroupSizes.filter { $0 <= requestedGroupSize && cols % $0 == 0 }.max() ?? requestedGroupSize
    }
    for ((rows, cols), _) in cases { try validateShape(rows: rows, cols: cols, groupSize: groupSizeFor(cols: cols)) }
    let maxCall = Double(args.options["max-call"] ?? "0.25") ?? 0.25
    guard ns.allSatisfy({ $0 > 0 }), threadCounts.allSatisfy({ $0 > 0 }) else {
        throw CLIError("--n and --threads must be positive")
    }
    let json = args.flags.contains("json")

    var results: [BenchCase] = []
    if !json {
        print("lowbit \(LowBitVersion.string) bench, tier\(tiers.count > 1 ? "s" : "") "
              + "\(tiers.map(\.description).joined(separator: ", ")), group size \(requestedGroupSize); "
              + "ratio = memory-read time of the same bytes / kernel time")
        print("caches: \(Runtime.cacheSummary) (hot weights larger than a core's L2 are read from L3)")
        print("shape        mem   type     family       tier      n    thr  time         GFLOP/s  GB/s    "
              + "read-ratio  error")
        if let most = threadCounts.max(), most > 1 {
            // What splitting a product over the pool costs per call: publish, run, join.
            let t = timeAdaptive { for _ in 0..<1000 { parallelRanges(most, threads: most) { _ in } } } / 1000
            // Dispatch alone: from just before the call to the moment its last part starts.
            let started = UnsafeMutablePointer<Double>.allocate(capacity: most)
            defer { started.deallocate() }
            var delays: [Double] = []
            for _ in 0..<2001 {
                let start = monotonicSeconds()
                parallelRanges(most, threads: most) { r in started[r.lowerBound] = monotonicSeconds() }
                delays.append((0..<most).map { started[$0] }.max()! - start)
            }
            delays.sort()
            print("thread pool: an empty job in \(most) parts takes \(formatTime(t)) per call; the last part starts "
                  + "\(formatTime(delays[delays.count / 2])) after the call (median)")
        }
    }
    for ((rows, cols), memory) in cases {
        let groupSize = groupSizeFor(cols: cols)
        if !json, groupSize != requestedGroupSize {
            print("\(rows)x\(cols): group size \(groupSize) "
                  + "(\(cols) columns are not a multiple of \(requestedGroupSize))")
        }
        var rng = SplitMix64(seed: UInt64(rows * 31 + cols))
        let w = (0..<(rows * cols)).map { _ in rng.normal() * 0.02 }
        let maxN = ns.max()!
        let x = (0..<(maxN * cols)).map { _ in rng.normal() }
        try Runtime.setThreads(0)
        for type in types {
            let m = try w.withUnsafeBufferPointer {
                try Quantizer.quantize($0.baseAddress!, rows: rows, cols: cols, type: type, groupSize: groupSize,
                                       symmetric: false)
            }
            // Error is checked on the first two activation rows of each case.
            let sampleRows = min(2, maxN)
            let reference = float64Product(m.dequantized(), rows: rows, cols: cols, Array(x[0..<(sampleRows * cols)]),
                                           n: sampleRows)
            if families.contains(.lut), type == types.first {
                let tables = LUTTables(cols: cols, groupSize: groupSize)
                let buffer = try AlignedBuffer(byteCount: LUTTables.byteCount(cols: cols, groupSize: groupSize))
                let t = x.withUnsafeBufferPointer { xp in
                    timeAdaptive { tables.build(xp.baseAddress!, into: buffer.pointer) }
                }
                if !json { print("lut tables for one activation row of \(cols): \(formatTime(t)) (1 thread)") }
            }
            // Every family of this type is timed side by side (`measureSideBySide`), on one
            // matrix (or one set of copies, for DRAM without cache flushes) holding all their layouts.
            var runnable: [KernelFamily] = []
            for family in families {
                try m.prepare(family)
                runnable.append(family)
            }
            let bytesOf = try Dictionary(uniqueKeysWithValues: runnable.map { ($0, try m.kernelByteCount($0)) })
            let smallest = max(1, bytesOf.values.min() ?? 1)
            let copies = memory == .hot || AlignedBuffer.canEvictFromCache ? 1 : max(2, (96 << 20) / smallest + 1)
            var mats = [m]
            while mats.count < copies { mats.append(try m.clone()) }
            // Per N, every family at every thread count in one set of rounds, so that both the
            // families' ratios and each family's speed-up over 1 thread are measured side by side.
            var skipped: [String: String] = [:]  // label and threads → why (a call took over --max-call)
            for n in ns.sorted() {
                var group: [BenchCase] = []
                for tier in tiers {
                    try Runtime.setSIMDTier(tier)  // auto's choice is keyed by the tier and thread count
                    for threads in threadCounts {
                        try Runtime.setThreads(threads)
                        for family in runnable {
                            for actBits in precisions(family) {
                                var c = BenchCase(rows: rows, cols: cols, memory: memory, type: type, family: family,
                                                  n: n, threads: threads)
                                c.tier = tier
                                c.groupSize = groupSize
                                c.actBits = actBits
                                c.autoKey = AutoKernel.key(m, n: n)
                                c.bytes = family == .auto ? bytesOf[try AutoKernel.choice(m, n: n)] ?? bytesOf[family]!
                                    : bytesOf[family]!
                                if let why = skipped[c.threadLabel] { c.note = why }
                                group.append(c)
                            }
                        }
                    }
                }
                try measureSideBySide(&group, mats: mats, x: x, reference: reference, sampleRows: sampleRows,
                                      maxCall: maxCall, copies: copies, memory: memory)
                for c in group where !c.measured && skipped[c.threadLabel] == nil {
                    skipped[c.threadLabel] = "skipped: a call would take over \(maxCall) s"
                }
                setSpeedUps(&group)
                if !json { group.forEach(printCase) }
                if !json, tiers.count > 1 { printTierRatios(group, tiers: tiers) }
                results.append(contentsOf: group)
            }
            mats.removeAll()
            if !json {
                let these = results.filter {
                    $0.rows == rows && $0.cols == cols && $0.memory == memory && $0.type == type
                }
                printVerdicts(these)
                printSpeedUps(these)
            }
        }
    }
    try Runtime.setThreads(0)
    if json { printJSON(results) }
    if let path = args.options["calibrate"] {
        // Per auto key, each candidate's time at the largest N measured in the key's bucket;
        // where both cache-hot and streamed times exist, the winner is chosen as `auto` itself
        // chooses (`AutoKernel.pick`), else it is the fastest.
        var byKey: [AutoKernel.Key: [BenchCase]] = [:]
        for c in results where c.measured && c.actBits == 8 && AutoKernel.candidates.contains(c.family) {
            if let key = c.autoKey { byKey[key, default: []].append(c) }
        }
        for (key, cases) in byKey {
            let n = cases.map(\.n).max()!
            let families = AutoKernel.candidates.filter { f in cases.contains { $0.family == f } }
            func times(_ memory: MemoryMode) -> [Double]? {
                let t = families.compactMap { f in
                    cases.first { $0.family == f && $0.n == n && $0.memory == memory }?.seconds
                }
                return t.count == families.count ? t : nil
            }
            let hot = times(.hot), cold = times(.dram)
            let winner: Int
            if let hot, let cold {
                winner = AutoKernel.pick(cold: cold, hot: hot)
            } else if let t = hot ?? cold {
                winner = t.indices.min { t[$0] < t[$1] }!
            } else {
                continue
            }
            AutoKernel.record(key, families[winner])
        }
        try AutoKernel.save(to: path)
        if !json { print("calibration written to \(path)") }
    }
}

/// Where the read baseline's xor folds go, so the compiler cannot drop the reads.
nonisolated(unsafe) var readSink: UInt64 = 0

/// Times `body` for ~0.1 s (3 to 200 runs after one warm-up); returns the median.
func timeAdaptive(_ body: () throws -> Void) rethrows -> Double {
    let t0 = monotonicSeconds()
    try body()
    let warm = monotonicSeconds() - t0
    var times: [Double] = []
    for _ in 0..<min(200, max(3, Int(0.1 / max(warm, 1e-7)))) {
        let t0 = monotonicSeconds()
        try body()
        times.append(monotonicSeconds() - t0)
    }
    times.sort()
    return times[times.count / 2]
}

/// Times the cases of one (shape, memory, type, n, threads) side by side, with the memory-read
/// baseline of each case's bytes: after a warm-up call each (auto's first call calibrates, so it
/// gets two), rounds call every case once in turn, each case taking part until it has had ~0.1 s
/// of calls (7 to 200: a slow case leaves the rounds early, fast ones keep going), and each case
/// keeps its median. A burst of load on a shared machine then slows one round of the cases
/// rather than all of one case's calls, so the ratios between cases (the verdicts, auto against
/// the fastest, read ratios) are fair. Before each timed call, untimed: with
/// cache-hot weights a call of the same case (the cases' layouts together may not fit the cache,
/// and must not evict each other between calls); with DRAM weights a flush of the case's layout
/// (or read buffer) from the caches, where the CPU can, else nothing (`mats` then rotate).
func measureSideBySide(_ cases: inout [BenchCase], mats: [QuantizedMatrix], x: [Float], reference: [Double],
                       sampleRows: Int, maxCall: Double, copies: Int, memory: MemoryMode) throws {
    let rows = cases.first?.rows ?? 0, n = cases.first?.n ?? 0
    var y = [Float](repeating: 0, count: n * rows)
    var calls: [() throws -> Void] = []
    var befores: [() throws -> Void] = []  // the untimed step before each timed call
    var owners: [Int] = []  // calls[k] times cases[owners[k]], or its read baseline when the index is negative
    let flush = memory == .dram && AlignedBuffer.canEvictFromCache
    for (index, c) in cases.enumerated() where c.note.isEmpty {
        var next = 0
        let family = c.family, actBits = c.actBits, threads = c.threads, tier = c.tier
        let call = {
            try Runtime.setSIMDTier(tier)
            try Runtime.setThreads(threads)
            try x.withUnsafeBufferPointer { xp in
                try y.withUnsafeMutableBufferPointer { yp in
                    try mats[next % mats.count].multiply(xp.baseAddress!, n: n, into: yp.baseAddress!, kernel: family,
                                                         activationBits: actBits)
                }
            }
            next += 1
        }
        if family == .auto { try call() }
        let t0 = monotonicSeconds()
        try call()
        let first = monotonicSeconds() - t0
        let k = min(sampleRows, n)
        cases[index].error = normalizedError(y[0..<(k * rows)], reference[0..<(k * rows)])
        if first > maxCall {
            cases[index].note = "skipped: one call took \(fmt(first, 2)) s (> --max-call \(maxCall))"
            continue
        }
        calls.append(call)
        befores.append(memory == .hot ? call : flush ? { mats[0].evictLayoutFromCache(family) } : {})
        owners.append(index)
    }
    // One read baseline per distinct byte count and thread count, over as many buffers as the
    // kernels rotate over.
    struct Reader: Hashable { let bytes: Int, threads: Int, tier: SIMDTier }
    var readers: [Reader: Int] = [:]  // → index in calls
    for index in owners {
        let reader = Reader(bytes: cases[index].bytes, threads: cases[index].threads, tier: cases[index].tier)
        if readers[reader] != nil { continue }
        let bytes = reader.bytes, threads = reader.threads, tier = reader.tier
        let set = try (0..<copies).map { _ in try AlignedBuffer(byteCount: bytes) }
        var next = 0
        let read = {
            try Runtime.setSIMDTier(tier)
            try Runtime.setThreads(threads)
            readSink ^= MemoryBaseline.read(set[next % copies].pointer, bytes: bytes / 32 * 32)
            next += 1
        }
        calls.append(read)
        befores.append(memory == .hot ? read : flush ? { set[0].evictFromCache() } : {})
        try read()
        readers[reader] = calls.count - 1
        owners.append(-1)
    }
    guard !calls.isEmpty else { return }
    // Each call's number of timed runs: ~0.1 s of its own time, 7 to 200.
    let runs = try calls.map { call -> Int in
        let t0 = monotonicSeconds()
        try call()
        return min(200, max(7, Int(0.1 / max(monotonicSeconds() - t0, 1e-7))))
    }
    var times = [[Double]](repeating: [], count: calls.count)
    for round in 0..<runs.max()! {
        for (k, call) in calls.enumerated() where round < runs[k] {
            try befores[k]()
            let t0 = monotonicSeconds()
            try call()
            times[k].append(monotonicSeconds() - t0)
        }
    }
    func median(_ t: [Double]) -> Double { let s = t.sorted(); return s[s.count / 2] }
    for (k, index) in owners.enumerated() where index >= 0 {
        cases[index].seconds = median(times[k])
        let reader = Reader(bytes: cases[index].bytes, threads: cases[index].threads, tier: cases[index].tier)
        cases[index].readSeconds = median(times[readers[reader]!])
        cases[index].runs = runs[k]
    }
}

func printCase(_ c: BenchCase) {
    let head = "\("\(c.rows)x\(c.cols)".padded(12)) \(c.memory.rawValue.padded(5)) \(c.type.description.padded(8)) "
        + "\(c.label.padded(12)) \(c.tier.description.padded(9)) \(String(c.n).padded(4)) "
        + String(c.threads).padded(4)
    if !c.measured {
        print("\(head) \(c.note)\(c.error.isNaN ? "" : " (error \(sci(c.error)))")")
        return
    }
    let remark = c.actBits < 8 ? " (\(c.actBits)-bit activations)" : c.error > 5e-4 ? "  ERROR ABOVE 5e-4"
        : c.actBits == 32 ? " (float activations)" : ""
    print("\(head) \(formatTime(c.seconds).padded(12)) \(fmt(c.gflops, 1).padded(8)) \(fmt(c.weightGBs, 1).padded(7)) "
          + "\(fmt(c.readRatio, 2).padded(11)) \(sci(c.error))\(remark)")
}

/// One line per family, N and thread count: each tier's time against the first tier's, from the same rounds.
func printTierRatios(_ group: [BenchCase], tiers: [SIMDTier]) {
    for c in group where c.tier == tiers[0] && c.measured {
        let others = group.filter { $0.label == c.label && $0.threads == c.threads && $0.tier != c.tier && $0.measured }
        guard !others.isEmpty else { continue }
        let ratios = others.map { "\($0.tier) \(fmt(c.seconds / $0.seconds, 2))x" }.joined(separator: ", ")
        print("  tiers \(c.rows)x\(c.cols) \(c.memory.rawValue) \(c.type) n=\(c.n) t=\(c.threads) \(c.label): "
              + "speed over \(c.tier): \(ratios)")
    }
}

func printVerdicts(_ cases: [BenchCase]) {
    var order: [String] = []
    var groups: [String: [BenchCase]] = [:]
    for c in cases where c.measured && c.family != .auto {
        if groups[c.groupKey] == nil { order.append(c.groupKey) }
        groups[c.groupKey, default: []].append(c)
    }
    for key in order {
        let g = groups[key]!.sorted { $0.seconds < $1.seconds }
        let others = g.dropFirst().map { "\($0.label) \(fmt($0.seconds / g[0].seconds, 1))x slower" }
        let auto = cases.first { $0.groupKey == key && $0.family == .auto && $0.measured }
        let autoNote = auto.map { "; auto \(fmt($0.seconds / g[0].seconds, 2))x the fastest" } ?? ""
        let rest = others.isEmpty ? "" : "; " + others.joined(separator: ", ")
        print("  verdict \(key): fastest \(g[0].label) (\(formatTime(g[0].seconds)), "
              + "\(fmt(g[0].readRatio, 2)) of read speed)\(rest)\(autoNote)")
    }
}

func jsonNumber(_ v: Double) -> String { v.isFinite ? "\(v)" : "null" }
func jsonString(_ s: String) -> String {
    "\"" + s.replacingAll("\\", "\\\\").replacingAll("\"", "\\\"") + "\""
}

extension String {
    func replacingAll(_ a: Character, _ b: String) -> String { map { $0 == a ? b : String($0) }.joined() }
}

func printJSON(_ results: [BenchCase]) {
    var lines: [String] = []
    for c in results {
        let fields: [(String, String)] = [
            ("rows", "\(c.rows)"), ("cols", "\(c.cols)"), ("memory", jsonString(c.memory.rawValue)),
            ("type", jsonString(c.type.description)), ("family", jsonString(c.family.description)),
            ("tier", jsonString(c.tier.description)), ("group_size", "\(c.groupSize)"), ("act_bits", "\(c.actBits)"),
            ("n", "\(c.n)"), ("threads", "\(c.threads)"), ("seconds", jsonNumber(c.seconds)), ("runs", "\(c.runs)"),
            ("gflops", jsonNumber(c.gflops)), ("weight_bytes", "\(c.bytes)"), ("weight_gbs", jsonNumber(c.weightGBs)),
            ("read_seconds", jsonNumber(c.readSeconds)), ("read_ratio", jsonNumber(c.readRatio)),
            ("speed_up_over_1_thread", c.speedUp.map(jsonNumber) ?? "null"),
            ("read_speed_up_over_1_thread", c.readSpeedUp.map(jsonNumber) ?? "null"),
            ("error", jsonNumber(c.error)), ("note", jsonString(c.note)),
        ]
        lines.append("    {" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}")
    }
    let tier = jsonString(Runtime.simdTier.description)
    print("{\n  \"version\": \(jsonString(LowBitVersion.string)),\n  \"tier\": \(tier),\n  \"cases\": [\n"
          + "\(lines.joined(separator: ",\n"))\n  ]\n}")
}

/// A thread spinning until stopped: the competing load of `--contention`.
final class BusyLoop: @unchecked Sendable {
    private let running = Atomic<Bool>(true)
    private var thread = pthread_t()

    init() {
        let context = Unmanaged.passRetained(self).toOpaque()
        _ = pthread_create(&thread, nil, { raw in
            let loop = Unmanaged<BusyLoop>.fromOpaque(raw!).takeRetainedValue()
            while loop.running.load(ordering: .relaxed) {}
            return nil
        }, context)
    }

    func stop() {
        running.store(false, ordering: .relaxed)
        pthread_join(thread, nil)
    }
}
