/// Decomposes named float matrices, orders all their blocks into one stack and writes the file.
public enum StackBuilder {
    public struct Input {
        public let name: String
        public let weights: UnsafePointer<Float>
        public let rows: Int, cols: Int
        /// Calibration activations (samples × cols) for activation-aware scaling, if any.
        public let calibration: (UnsafePointer<Float>, samples: Int)?
        public init(name: String, weights: UnsafePointer<Float>, rows: Int, cols: Int,
                    calibration: (UnsafePointer<Float>, samples: Int)? = nil) {
            (self.name, self.weights, self.rows, self.cols, self.calibration) = (name, weights, rows, cols, calibration)
        }
    }

    public struct Options {
        public var blocks = 16
        /// Largest rank; the factor-share cap may choose less per matrix.
        public var maxRank = 16
        /// Largest share of a block the Float16 factors may take (≥ 1: no cap).
        public var factorShare = 0.25
        /// Per-tensor sensitivity (e.g. the loss change when the tensor loses a block); nil: the
        /// naive order (every tensor gets block i before any gets block i + 1).
        public var sensitivity: [String: Double]? = nil
        /// With sensitivities: how many levels one tensor may run ahead of the least-advanced
        /// one. 1 keeps level rounds (every tensor gets block i before any gets block i + 1) and
        /// orders each round by score; larger values let sensitive tensors take deeper blocks
        /// first, which on SmolLM2 starved the others (see `order`).
        public var maxLead = 1
        public init() {}
    }

    /// Ranks chosen for each input (reported by the CLI and bindings).
    public static func rank(rows: Int, cols: Int, options: Options) -> Int {
        Decomposer.rank(rows: rows, cols: cols, factorShare: options.factorShare, maxRank: options.maxRank)
    }

    /// Stack order, as (tensor, level) pairs. Level 0 of every tensor first. Then, without
    /// sensitivities, level by level in tensor order; with them, greedily the available next
    /// block with the highest sensitivity × (scaled error energy it removes) / bytes, where a
    /// block is available if its tensor is fewer than `maxLead` levels ahead of the least
    /// advanced tensor. Unbounded lead (pure greedy) ordered SmolLM2 worse than the naive order:
    /// one measured level does not predict what a tensor's first blocks are worth.
    public static func order(_ matrices: [DecomposedMatrix], sensitivity: [String: Double]?,
                             maxLead: Int = 1) -> [(Int, Int)] {
        var order = matrices.indices.map { ($0, 0) }
        let maxLevels = matrices.map(\.blocks.count).max() ?? 0
        guard let sensitivity else {
            for level in 1..<max(maxLevels, 1) {
                for t in matrices.indices where level < matrices[t].blocks.count { order.append((t, level)) }
            }
            return order
        }
        var next = [Int](repeating: 1, count: matrices.count)
        while true {
            let unfinished = matrices.indices.filter { next[$0] < matrices[$0].blocks.count }
            guard let least = unfinished.map({ next[$0] }).min() else { break }
            var best: (score: Double, t: Int)? = nil
            for t in unfinished where next[t] < least + max(maxLead, 1) {
                let m = matrices[t]
                let score = (sensitivity[m.name] ?? 1) * m.gains[next[t]] / Double(m.blockBytes)
                if best == nil || score > best!.score { best = (score, t) }
            }
            let b = best!
            order.append((b.t, next[b.t]))
            next[b.t] += 1
        }
        return order
    }

    /// Decomposes every input (each in parallel over its rows), orders the blocks and writes
    /// `path` atomically. `progress(done, total)` is called after each block.
    @discardableResult
    public static func build(_ inputs: [Input], path: String, options: Options = Options(),
                             progress: ((Int, Int) -> Void)? = nil) throws -> [DecomposedMatrix] {
        guard !inputs.isEmpty else { throw LowBitError(.invalidArgument, "a stack needs at least one tensor") }
        guard (1...64).contains(options.blocks) else {
            throw LowBitError(.invalidArgument, "blocks \(options.blocks) must be 1...64")
        }
        guard options.maxRank >= 1, options.factorShare > 0 else {
            throw LowBitError(.invalidArgument, "rank and factor share must be positive")
        }
        var names = Set<String>()
        for input in inputs {
            guard !input.name.isEmpty, input.name.utf8.count <= StackFile.maxName,
                  names.insert(input.name).inserted else {
                throw LowBitError(.invalidArgument,
                                  "tensor names must be unique, non-empty and at most \(StackFile.maxName) bytes "
                                  + "('\(input.name)')")
            }
            guard input.rows > 0, input.cols > 0, input.cols % 32 == 0 else {
                throw LowBitError(.invalidArgument,
                                  "tensor '\(input.name)' is \(input.rows) x \(input.cols): cols must be a positive "
                                  + "multiple of 32")
            }
            if let (_, samples) = input.calibration, samples < 1 {
                throw LowBitError(.invalidArgument, "tensor '\(input.name)' has \(samples) calibration samples")
            }
        }
        let total = inputs.count * options.blocks
        var done = 0
        var matrices: [DecomposedMatrix] = []
        for input in inputs {
            let scaling = input.calibration.map {
                Decomposer.activationScaling($0.0, samples: $0.samples, cols: input.cols)
            }
            let k = rank(rows: input.rows, cols: input.cols, options: options)
            matrices.append(try Decomposer.decompose(input.weights, rows: input.rows, cols: input.cols,
                                                     blocks: options.blocks,
                                                     rank: k, scaling: scaling, name: input.name) { _ in
                done += 1
                progress?(done, total)
            })
        }
        try write(matrices, path: path, options: options)
        return matrices
    }

    /// Orders decomposed matrices (by `options.sensitivity`, or naively) and writes the stack file
    /// atomically: how a stack is re-ordered once sensitivities have been measured on it.
    public static func write(_ matrices: [DecomposedMatrix], path: String, options: Options) throws {
        let order = order(matrices, sensitivity: options.sensitivity, maxLead: options.maxLead)
        let metadata: [(String, StackFile.MetaValue)] = [
            ("lowbit.stack.order",
             .string(options.sensitivity == nil ? "naive" : "sensitivity, max lead \(options.maxLead)")),
            ("lowbit.stack.blocks", .u64(UInt64(options.blocks))),
            ("lowbit.version", .string(LowBitVersion.string)),
        ]
        try FileIO.writeAtomically(try StackFile.encode(matrices, order: order, metadata: metadata), to: path)
    }

    /// Per-tensor sensitivities for `order` from measured loss increases when each tensor went from
    /// `level` to `level − 1` blocks: the increase per unit of the error energy that block removed.
    /// Increases at or below zero (noise) are floored at a small share of the mean, and tensors
    /// without a measurement get the median, so no block is starved or favoured by accident.
    public static func sensitivities(_ matrices: [DecomposedMatrix], lossIncrease: [String: Double],
                                     level: Int) -> [String: Double] {
        let positive = lossIncrease.values.filter { $0 > 0 }
        let floor = positive.isEmpty ? 1e-9 : 0.01 * positive.reduce(0, +) / Double(positive.count)
        var result: [String: Double] = [:]
        for m in matrices {
            guard let increase = lossIncrease[m.name], level - 1 < m.gains.count, m.gains[level - 1] > 0 else {
                continue
            }
            result[m.name] = max(increase, floor) / m.gains[level - 1]
        }
        let sorted = result.values.sorted()
        let median = sorted.isEmpty ? 1 : sorted[sorted.count / 2]
        for m in matrices where result[m.name] == nil { result[m.name] = median }
        return result
    }
}
