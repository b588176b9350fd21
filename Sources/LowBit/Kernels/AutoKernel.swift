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
        /// The tier the winner was measured at: a family's standing changes with the tier (the
        /// AVX-512 dequant kernel is twice the AVX2 one's speed for batched products).
        public let tier: SIMDTier

        public init(rows: Int, cols: Int, groupSize: Int, typeCode: Int32, nBucket: Int, threads: Int,
                    tier: SIMDTier = Runtime.simdTier) {
            (self.rows, self.cols, self.groupSize, self.typeCode) = (rows, cols, groupSize, typeCode)
            (self.nBucket, self.threads, self.tier) = (nBucket, threads, tier)
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
    /// Per key measured here, each candidate's standing: its worse ratio to the fastest, over
    /// streamed and cache-hot weights (`pick`). Entries loaded from a file have none.
    static let standing = Locked<[Key: [KernelFamily: Double]]>([:])
    /// The families marked `autoCandidate` (LUT and dequant; bit-serial, the other family that runs
    /// every code width, was 4–10× slower than the faster of them in every bench case).
    public static var candidates: [KernelFamily] { KernelFamilies.autoCandidates }

    /// A mixed matrix's key is that of its value codes, which its products run on.
    public static func key(_ m: QuantizedMatrix, n: Int) -> Key {
        if m.type.isMixed, let codes = try? m.valueCodes() { return key(codes, n: n) }
        return Key(rows: m.rows, cols: m.cols, groupSize: m.groupSize, typeCode: m.type.code, nBucket: bucket(n),
                   threads: Runtime.threads)
    }

    /// `keepLayouts` false: layouts that measuring packed and the winner does not use are
    /// released again (a caller that will only ever run the winner keeps just its layout).
    public static func choice(_ m: QuantizedMatrix, n: Int, keepLayouts: Bool = true) throws -> KernelFamily {
        var sample = Sample(m)
        return try choice(m, n: n, keepLayouts: keepLayouts, sample: &sample)
    }

    /// `choice(_:n:keepLayouts:)` timing `sample`, which a caller making several choices for one
    /// matrix shares between them.
    static func choice(_ m: QuantizedMatrix, n: Int, keepLayouts: Bool, sample: inout Sample) throws -> KernelFamily {
        if m.type.isMixed { return try choice(m.valueCodes(), n: n, keepLayouts: keepLayouts, sample: &sample) }
        let k = key(m, n: n)
        if let known = table.withLock({ $0[k] }) { return known }
        let before = m.packedLayouts
        let ratios = try measure(sample.matrix(), n: k.nBucket)
        let winner = candidates[ratios.indices.min { ratios[$0] < ratios[$1] }!]
        table.withLock { $0[k] = winner }
        standing.withLock { $0[k] = Dictionary(uniqueKeysWithValues: zip(candidates, ratios)) }
        if !keepLayouts {
            for family in m.packedLayouts.subtracting(before) where family != winner { m.releaseLayout(family) }
        }
        return winner
    }

    /// For a matrix whose products come both one activation row at a time and in batches of
    /// about `batch` rows, from one layout (a model's layer holds one copy of its weights). The
    /// layer holds the smallest layout the candidates offer (dequant stores 3-bit codes in 4 bits,
    /// and memory is what a low-bit model is for); among layouts of that size, the one-row winner,
    /// unless the batch winner runs one row within `oneRowTolerance` of it. Both run one row near
    /// the memory's speed, and the batch winner can be several times faster for many rows
    /// (dequant at the AVX-512 tier against LUT at 4 bits).
    public static func choice(_ m: QuantizedMatrix, oneRowAndBatch batch: Int,
                              keepLayouts: Bool = true) throws -> KernelFamily {
        let before = m.packedLayouts
        var sample = Sample(m)
        let sizes = try layoutSizes(m, sample: &sample)
        let smallest = candidates.indices.filter { sizes[$0] == sizes.min()! }.map { candidates[$0] }
        var chosen = smallest[0]
        // Where one layout is the smallest, the size alone decides and nothing is timed.
        if smallest.count > 1 {
            let single = try choice(m, n: 1, keepLayouts: true, sample: &sample)
            let batched = try choice(m, n: batch, keepLayouts: true, sample: &sample)
            // Entries loaded from a calibration file have no standing: their winner, where it is small.
            let oneRow = standing.withLock { $0[key(m, n: 1)] } ?? [single: 1]
            let best = smallest.min { oneRow[$0] ?? .infinity < oneRow[$1] ?? .infinity }!
            chosen = best
            if batched != best, smallest.contains(batched), let b = oneRow[batched], let s = oneRow[best],
               b <= s * oneRowTolerance {
                chosen = batched
            }
        }
        if !keepLayouts {
            for family in m.packedLayouts.subtracting(before) where family != chosen { m.releaseLayout(family) }
        }
        return chosen
    }

    /// Each candidate's layout bytes for the matrix, packed once per key: a model's layers share
    /// a few shapes, and packing every layout of every layer to size it doubled a model's load.
    public static func layoutSizes(_ m: QuantizedMatrix) throws -> [Int] {
        var sample = Sample(m)
        return try layoutSizes(m, sample: &sample)
    }

    static func layoutSizes(_ m: QuantizedMatrix, sample: inout Sample) throws -> [Int] {
        let k = key(m, n: 1)
        if let known = sizes.withLock({ $0[k] }) { return known }
        let sampled = try sample.matrix()
        let measured = try candidates.map { try sampled.kernelByteCount($0) }
        sizes.withLock { $0[k] = measured }
        return measured
    }

    static let sizes = Locked<[Key: [Int]]>([:])

    /// How much slower than the fastest a family may run one row and still be chosen for its batches.
    public static let oneRowTolerance = 1.10

    /// Records a measured winner (used by `lowbit bench --calibrate`).
    public static func record(_ key: Key, _ family: KernelFamily) { table.withLock { $0[key] = family } }

    /// Matrices of more rows than this are timed and sized on their first `measuredRows` rows:
    /// the rows of a product are independent, so its time per row is the same once the sample
    /// outgrows the L2 cache, and a model's output projection (49152 rows) is not packed twice
    /// and timed whole at every load.
    static let measuredRows = 8192

    /// `m`, or its first `measuredRows` rows where it has more: what `measure` times.
    static func measuredSample(_ m: QuantizedMatrix) throws -> QuantizedMatrix {
        m.rows > measuredRows ? try m.leadingRows(measuredRows) : m
    }

    /// A matrix's `measuredSample` (of its value codes, for a mixed matrix), made on first use
    /// and then kept, so that sizing its layouts and timing them for one row and for a batch
    /// copy and pack it once.
    struct Sample {
        let source: QuantizedMatrix
        private var made: QuantizedMatrix? = nil

        init(_ m: QuantizedMatrix) { source = m }

        mutating func matrix() throws -> QuantizedMatrix {
            if let made { return made }
            let sample = try measuredSample(source.valueCodes())
            made = sample
            return sample
        }
    }

    /// Each candidate's standing for n activation rows (`pick`'s ratios; the winner's is 1);
    /// `m` is what is timed (a `measuredSample`).
    static func measure(_ m: QuantizedMatrix, n: Int) throws -> [Double] {
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
        return ratios(cold: AlignedBuffer.canEvictFromCache ? cold : hot, hot: hot)
    }

    /// The family whose worse ratio to the fastest, over streamed and cache-hot weights, is the
    /// smallest: the choice then holds whether or not the matrix stays in cache between products
    /// (a family can lead cache-hot by a little and trail by a lot when streamed). Ties go to
    /// the earlier family.
    public static func pick(cold: [Double], hot: [Double]) -> Int {
        let worst = ratios(cold: cold, hot: hot)
        return worst.indices.min { worst[$0] < worst[$1] }!
    }

    /// Each family's worse ratio to the fastest, over streamed and cache-hot weights.
    static func ratios(cold: [Double], hot: [Double]) -> [Double] {
        let bestCold = cold.min()!, bestHot = hot.min()!
        return cold.indices.map { max(cold[$0] / bestCold, hot[$0] / bestHot) }
    }

    /// One line per key: rows cols group_size type n_bucket threads family tier.
    public static func save(to path: String) throws {
        let lines = table.withLock { t in
            t.map { k, family in
                "\(k.rows) \(k.cols) \(k.groupSize) \(k.typeCode) \(k.nBucket) \(k.threads) \(family) \(k.tier)"
            }.sorted()
        }
        let head = "# lowbit auto-kernel calibration: rows cols group_size type n_bucket threads family tier\n"
        try FileIO.writeAtomically(Array((head + lines.joined(separator: "\n") + "\n").utf8), to: path)
    }

    /// Adds the entries of a file written by `save`; a malformed file changes nothing.
    public static func load(from path: String) throws {
        try add(calibrationText: try FileIO.read(path, maxBytes: maxCalibrationBytes), source: "'\(path)'")
    }

    /// A calibration file holds a line per measured key: a few thousand lines at most.
    static let maxCalibrationBytes = 16 << 20

    /// Adds the entries of a calibration file's text; a malformed text changes nothing. Every
    /// number must be positive and within the range its field can take (`Key` values that
    /// products can meet), so no conversion can trap. A line without a tier (as files written
    /// before keys had one) stands for the tier in use.
    public static func add(calibrationText bytes: [UInt8], source: String = "calibration text") throws {
        var entries: [(Key, KernelFamily)] = []
        let limits = [1 << 40, 1 << 40, 1 << 20, Int(Int32.max), 1 << 20, 1 << 20]
        for (i, line) in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).enumerated()
        where line.first != UInt8(ascii: "#") {
            let f = line.split(separator: UInt8(ascii: " "))
            let numbers = f.prefix(6).compactMap { Int(String(decoding: $0, as: UTF8.self)) }
            let tier = f.count == 8 ? SIMDTier(rawValue: String(decoding: f[7], as: UTF8.self)) : Runtime.simdTier
            guard f.count == 7 || f.count == 8, let tier, numbers.count == 6,
                  zip(numbers, limits).allSatisfy({ $0 > 0 && $0 <= $1 }),
                  let family = try? KernelFamily(name: String(decoding: f[6], as: UTF8.self)), family != .auto else {
                let shown = String(decoding: line.prefix(80), as: UTF8.self)
                throw LowBitError(.badFormat, "calibration file \(source) line \(i + 1) is malformed: '\(shown)'")
            }
            entries.append((Key(rows: numbers[0], cols: numbers[1], groupSize: numbers[2], typeCode: Int32(numbers[3]),
                                nBucket: numbers[4], threads: numbers[5], tier: tier), family))
        }
        table.withLock { t in for (k, f) in entries { t[k] = f } }
    }

    /// Forgets every measurement (tests; a machine that changed).
    public static func reset() {
        table.withLock { $0.removeAll() }
        standing.withLock { $0.removeAll() }
    }
}
