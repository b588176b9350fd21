#if canImport(Glibc)
import Glibc
#endif
import LowBit

/// The laddered layers of an elastic model file (`ModelFile.levels`), held at the level a
/// memory budget allows.
///
/// A budget runs the largest level whose weights fit it, counted as `LlamaModel.weightBytes`
/// counts them; each rung's bytes are known from its header before it is read. `setBudget`
/// reads only the rungs that change and swaps them tensor by tensor (see there): each product
/// runs on one rung from start to end, and a forward pass that overlaps a change may meet some
/// layers at the old level and some at the new.
public final class ElasticWeights: @unchecked Sendable {
    let file: GGUFFile
    /// Laddered tensors, in the file's order, and their numbers.
    let names: [String]
    let numbers: [String: Int]
    /// tables[t][l]: the rung tensor t holds at level l.
    let tables: [[Int]]
    /// rungBytes[t][k]: the bytes rung k of tensor t holds once loaded.
    let rungBytes: [[Int]]
    let kernel: KernelFamily
    let activationBits: Int
    /// Everything else the model holds (norms, the embedding table, layers without a ladder),
    /// set once the model is built; a level's size is this plus its rungs.
    var fixedBytes = 0
    /// Tensors a layer was made for: the model checks that every ladder is one of its layers.
    let made = Locked<Set<String>>([])

    private struct Held {
        var level: Int? = nil
        var linears: [QuantizedLinear?]
        /// The rung each held linear is.
        var rungs: [Int]
        var bytes = 0
        var changes = 0
    }
    private let held: Locked<Held>
    /// One budget change at a time; products are not held up by it.
    private let changeLock = Locked<Void>(())

    public var levelCount: Int { tables.first?.count ?? 0 }
    /// The level in effect (nil before the first budget is set).
    public var level: Int? { held.withLock { $0.level } }
    /// Counts the starts and ends of budget changes: odd while one runs.
    public var changeCount: Int { held.withLock { $0.changes } }
    /// Bytes of the rungs held now.
    public var heldBytes: Int { held.withLock { $0.bytes } }

    init(file: GGUFFile, levels: [String: [Int]], kernel: KernelFamily, activationBits: Int) throws {
        self.file = file
        names = file.tensors.compactMap { t in
            t.name.hasSuffix(".levels") ? String(t.name.dropLast(".levels".count)) + ".weight" : nil
        }.filter { levels[$0] != nil }
        numbers = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        tables = names.map { levels[$0]! }
        (self.kernel, self.activationBits) = (kernel, activationBits)
        // What a layer holds depends on the matrix's shape and type and on the family it runs
        // (`auto`'s choice is measured once per shape and type): a zero matrix of each stands in.
        var layerBytes: [String: Int] = [:]
        rungBytes = try names.map { name in
            try (0..<ModelFile.rungCount(file, name)).map { k in
                let h = try ModelFile.rungHeader(file, name, rung: k)
                let key = "\(h.rows)x\(h.cols) g\(h.groupSize) \(h.type.code) \(h.symmetric)"
                if layerBytes[key] == nil {
                    layerBytes[key] = try QuantizedLinear(QuantizedMatrix(zerosOf: h), kernel: kernel,
                                                          activationBits: activationBits).byteCount
                }
                return layerBytes[key]! + (file.contains(ModelFile.inputScalesName(name, rung: k)) ? 4 * h.cols : 0)
            }
        }
        held = Locked(Held(linears: Array(repeating: nil, count: names.count),
                           rungs: Array(repeating: 0, count: names.count)))
    }

    /// The layer of a laddered tensor, or nil when `name` has no ladder.
    func linear(_ name: String, rows: Int, cols: Int) throws -> ElasticLinear? {
        guard let t = numbers[name] else { return nil }
        made.withLock { _ = $0.insert(name) }
        let header = try ModelFile.rungHeader(file, name, rung: 0)
        for k in 1..<max(rungBytes[t].count, 1) {
            let other = try ModelFile.rungHeader(file, name, rung: k)
            guard other.rows == header.rows, other.cols == header.cols else {
                throw LowBitError(.badFormat, "lowbit model: the rungs of '\(name)' differ in shape")
            }
        }
        guard header.rows == rows, header.cols == cols else {
            throw LowBitError(.badFormat, "GGUF model: '\(name)' is \(header.rows) x \(header.cols), "
                                          + "expected \(rows) x \(cols)")
        }
        return ElasticLinear(self, t, rows: rows, cols: cols)
    }

    /// The weight bytes of the model at level l.
    public func bytes(level l: Int) -> Int {
        fixedBytes + tables.indices.reduce(0) { $0 + rungBytes[$1][tables[$1][l]] }
    }

    /// The largest level that fits `budget` bytes; a budget below the smallest level is an error.
    public func level(for budget: Int) throws -> Int {
        guard let l = (0..<levelCount).last(where: { bytes(level: $0) <= budget }) else {
            let smallest = (0..<levelCount).map { bytes(level: $0) }.min() ?? 0
            throw LowBitError(.invalidArgument, "a budget of \(budget) bytes is below the smallest level of this "
                                                + "elastic model (\(smallest) bytes)")
        }
        return l
    }

    /// Holds the largest level that fits `budget`, reading only the rungs that change, tensor by
    /// tensor, those that shrink first: the old rung is let go before the new one is made, so
    /// the weights held never exceed the larger of the two levels (a product running on an old
    /// rung keeps it until it ends; one that starts on a tensor in the middle of its swap waits
    /// for the new rung). On any error (a budget below the smallest level, a damaged rung) the
    /// tensors already moved go back to their old rungs, so nothing changes.
    public func setBudget(_ budget: Int) throws {
        try changeLock.withLock { _ in
            let target = try level(for: budget)
            let (current, holding) = held.withLock { ($0.level, $0.linears) }
            guard current != target else { return }
            let moving = names.indices.filter { t in current.map { tables[t][$0] } != tables[t][target] }
            let growth = Dictionary(uniqueKeysWithValues: moving.map { t in
                (t, rungBytes[t][tables[t][target]] - (holding[t]?.byteCount ?? 0))
            })
            held.withLock { $0.changes += 1 }  // odd while a change runs
            defer { held.withLock { $0.changes += 1 } }
            var moved: [Int] = []
            do {
                for t in moving.sorted(by: { growth[$0]! < growth[$1]! }) {
                    try swap(t, to: tables[t][target])
                    moved.append(t)
                }
            } catch {
                // Back to the level the model held, in the reverse order (the memory held stays
                // within the two levels); a rung that read well before reads well again.
                if let current {
                    for t in moved.reversed() { try? swap(t, to: tables[t][current]) }
                }
                throw error
            }
            held.withLock { $0.level = target }
            AlignedBuffer.releaseFreeMemory()
        }
    }

    /// Lets tensor t's rung go, then makes and installs `rung`. If making it fails, the old rung
    /// is made again, so the tensor is never left empty by a rung that does not read.
    private func swap(_ t: Int, to rung: Int) throws {
        func make(_ k: Int) throws -> QuantizedLinear {
            let (m, scales) = try ModelFile.matrix(file, names[t], rung: k)
            // Levels are sized from the headers, taking the parameters to be Float16 as the
            // quantizer makes them; a rung of wider ones would hold more than its level allows.
            guard m.parametersAreHalfExact else {
                throw LowBitError(.badFormat, "lowbit model: '\(ModelFile.matrixName(names[t], rung: k))' has group "
                                              + "parameters that are not exact Float16 values, as a rung's must be")
            }
            return try QuantizedLinear(m, kernel: kernel, inputScales: scales, activationBits: activationBits)
        }
        let oldRung: Int? = held.withLock { state in
            let old = state.linears[t].map { _ in state.rungs[t] }
            state.bytes -= state.linears[t]?.byteCount ?? 0
            state.linears[t] = nil
            return old
        }
        let linear: QuantizedLinear
        do {
            linear = try make(rung)
        } catch {
            if let oldRung, let old = try? make(oldRung) { install(t, old, rung: oldRung) }
            throw error
        }
        install(t, linear, rung: rung)
    }

    private func install(_ t: Int, _ linear: QuantizedLinear, rung: Int) {
        held.withLock { state in
            state.linears[t] = linear
            state.rungs[t] = rung
            state.bytes += linear.byteCount
        }
    }

    func current(_ t: Int) throws -> QuantizedLinear {
        // A tensor is empty only in the middle of its swap, for the time one rung takes to make.
        while true {
            let (linear, changing) = held.withLock { ($0.linears[t], $0.changes % 2 == 1) }
            if let linear { return linear }
            guard changing else {
                throw LowBitError(.invalidArgument, "elastic model: '\(names[t])' is not held (no budget set, or "
                                                    + "a failed budget change could not restore it)")
            }
            usleep(50)
        }
    }
}

/// One laddered tensor of an elastic model: whichever rung its level holds now.
final class ElasticLinear: Linear, RowLookup, @unchecked Sendable {
    let weights: ElasticWeights
    let tensor: Int
    let rows: Int, cols: Int
    /// Counted once for all tensors, as `ElasticWeights.heldBytes`.
    var byteCount: Int { 0 }

    init(_ weights: ElasticWeights, _ tensor: Int, rows: Int, cols: Int) {
        (self.weights, self.tensor, self.rows, self.cols) = (weights, tensor, rows, cols)
    }

    func forward(_ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) throws {
        try weights.current(tensor).forward(x, n: n, into: y)
    }

    func readWeights() throws -> UInt64? { try weights.current(tensor).readWeights() }

    func weights(row r: Int, into out: UnsafeMutablePointer<Float>) {
        (try? weights.current(tensor))?.weights(row: r, into: out)
    }
}
