/// What `auto` runs: the family measured fastest on this machine for the matrix's shape, type,
/// batch-size bucket and thread count. The first auto product (or query) of a new key times LUT
/// and dequant on synthetic activations of the bucket's size (a few products, once, with the
/// weights streamed from memory and cache-hot; see `pick`) and keeps the winner in memory;
/// `save`/`load` keep the table in a file, and `lowbit bench --calibrate` writes one from its
/// measurements. Bit-serial is not a candidate: on every shape we measured it was the slowest
/// family; it is there for its arbitrary W×A precision, not for speed.
/// A mixed matrix is keyed by its value codes.
public enum AutoKernel {
    public struct Key: Hashable, Sendable {
        public let rows: Int, cols: Int, groupSize: Int, typeCode: Int32, nBucket: Int, threads: Int

        public init(rows: Int, cols: Int, groupSize: Int, typeCode: Int32, nBucket: Int, threads: Int) {
            (self.rows, self.cols, self.groupSize, self.typeCode, self.nBucket, self.threads) = (rows, cols, groupSize, typeCode, nBucket, threads)
        }
    }

    /// Batch sizes are grouped by powers of two (1, 2, 3–4, 5–8, …, 129 and up), each calibrated
    /// at its largest size (256 for the last). Coarser buckets (up to 4× wide) let a product
    /// run on the family that wins at four times its size, which was not always its own winner.
    public static func bucket(_ n: Int) -> Int {
        var b = 1
        while b < n && b < 256 { b *= 2 }
        return b
    }

    static let table = Locked<[Key: KernelFamily]>([:])
    /// The families marked `autoCandidate` (LUT and dequant; bit-serial, the other family that runs
    /// every code width, was 4–10× slower than the faster of them in every bench case).
    public static var candidates: [KernelFamily] { KernelFamilies.autoCandidates }

    /// A mixed matrix's key is that of its value codes, which its products run on.
    public static func key(_ m: QuantizedMatrix, n: Int) -> Key {
        if m.type.isMixed, let codes = try? m.valueCodes() { return key(codes, n: n) }
        return Key(rows: m.rows, cols: m.cols, groupSize: m.groupSize, typeCode: m.type.code, nBucket: bucket(n), threads: Runtime.threads)
    }

    /// `keepLayouts` false: layouts that measuring packed and the winner does not use are
    /// released again (a caller that will only ever run the winner keeps just its layout).
    public static func choice(_ m: QuantizedMatrix, n: Int, keepLayouts: Bool = true) throws -> KernelFamily {
        if m.type.isMixed { return try choice(m.valueCodes(), n: n, keepLayouts: keepLayouts) }
        let k = key(m, n: n)
        if let known = table.withLock({ $0[k] }) { return known }
        let before = m.packedLayouts
        let winner = try measure(m, n: k.nBucket)
        table.withLock { $0[k] = winner }
        if !keepLayouts {
            for family in m.packedLayouts.subtracting(before) where family != winner { m.releaseLayout(family) }
        }
        return winner
    }

    /// Records a measured winner (used by `lowbit bench --calibrate`).
    public static func record(_ key: Key, _ family: KernelFamily) { table.withLock { $0[key] = family } }

    static func measure(_ m: QuantizedMatrix, n: Int) throws -> KernelFamily {
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        let x = (0..<(n * m.cols)).map { _ -> Float in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000
        }
        var y = [Float](repeating: 0, count: n * m.rows)
        // Rounds alternate the families, and each keeps its fastest call, so a burst of load on
        // this shared machine slows one call, not one family. Each family is timed twice per
        // round: with its layout just flushed from the cache (as when a model streams its layers
        // from DRAM) and right after, cache-hot.
        var cold = [Double](repeating: .infinity, count: candidates.count), hot = cold
        try x.withUnsafeBufferPointer { xp in
            try y.withUnsafeMutableBufferPointer { yp in
                for family in candidates {
                    try m.prepare(family)
                    try m.multiply(xp.baseAddress!, n: n, into: yp.baseAddress!, kernel: family)  // warm-up
                }
                for _ in 0..<5 {
                    for (i, family) in candidates.enumerated() {
                        if AlignedBuffer.canEvictFromCache {
                            m.evictLayoutFromCache(family)
                            let t0 = monotonicSeconds()
                            try m.multiply(xp.baseAddress!, n: n, into: yp.baseAddress!, kernel: family)
                            cold[i] = min(cold[i], monotonicSeconds() - t0)
                        }
                        let t0 = monotonicSeconds()
                        try m.multiply(xp.baseAddress!, n: n, into: yp.baseAddress!, kernel: family)
                        hot[i] = min(hot[i], monotonicSeconds() - t0)
                    }
                }
            }
        }
        // Without cache flushes there is no streamed timing: the cache-hot one stands for both.
        return candidates[pick(cold: AlignedBuffer.canEvictFromCache ? cold : hot, hot: hot)]
    }

    /// The family whose worse ratio to the fastest, over streamed and cache-hot weights, is the
    /// smallest: the choice then holds whether or not the matrix stays in cache between products
    /// (a family can lead cache-hot by a little and trail by a lot when streamed). Ties go to
    /// the earlier family.
    public static func pick(cold: [Double], hot: [Double]) -> Int {
        let bestCold = cold.min()!, bestHot = hot.min()!
        let worst = cold.indices.map { max(cold[$0] / bestCold, hot[$0] / bestHot) }
        return worst.indices.min { worst[$0] < worst[$1] }!
    }

    /// One line per key: rows cols group_size type n_bucket threads family.
    public static func save(to path: String) throws {
        let lines = table.withLock { t in
            t.map { "\($0.rows) \($0.cols) \($0.groupSize) \($0.typeCode) \($0.nBucket) \($0.threads) \($1)" }.sorted()
        }
        try FileIO.writeAtomically(Array(("# lowbit auto-kernel calibration: rows cols group_size type n_bucket threads family\n"
                                          + lines.joined(separator: "\n") + "\n").utf8), to: path)
    }

    /// Adds the entries of a file written by `save`; a malformed file changes nothing.
    public static func load(from path: String) throws {
        try add(calibrationText: try FileIO.read(path, maxBytes: maxCalibrationBytes), source: "'\(path)'")
    }

    /// A calibration file holds a line per measured key: a few thousand lines at most.
    static let maxCalibrationBytes = 16 << 20

    /// Adds the entries of a calibration file's text; a malformed text changes nothing. Every
    /// number must be positive and within the range its field can take (`Key` values that
    /// products can meet), so no conversion can trap.
    public static func add(calibrationText bytes: [UInt8], source: String = "calibration text") throws {
        var entries: [(Key, KernelFamily)] = []
        let limits = [1 << 40, 1 << 40, 1 << 20, Int(Int32.max), 1 << 20, 1 << 20]
        for (i, line) in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).enumerated()
        where line.first != UInt8(ascii: "#") {
            let f = line.split(separator: UInt8(ascii: " "))
            let numbers = f.prefix(6).compactMap { Int(String(decoding: $0, as: UTF8.self)) }
            guard f.count == 7, numbers.count == 6, zip(numbers, limits).allSatisfy({ $0 > 0 && $0 <= $1 }),
                  let family = try? KernelFamily(name: String(decoding: f[6], as: UTF8.self)), family != .auto else {
                let shown = String(decoding: line.prefix(80), as: UTF8.self)
                throw LowBitError(.badFormat, "calibration file \(source) line \(i + 1) is malformed: '\(shown)'")
            }
            entries.append((Key(rows: numbers[0], cols: numbers[1], groupSize: numbers[2], typeCode: Int32(numbers[3]),
                                nBucket: numbers[4], threads: numbers[5]), family))
        }
        table.withLock { t in for (k, f) in entries { t[k] = f } }
    }

    /// Forgets every measurement (tests; a machine that changed).
    public static func reset() { table.withLock { $0.removeAll() } }
}
