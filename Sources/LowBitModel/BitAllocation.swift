import LowBit

/// One way to hold a tensor: its width and group size.
public struct TensorPrecision: Hashable, Sendable, CustomStringConvertible {
    public let bits: Int, groupSize: Int
    public init(bits: Int, groupSize: Int) { (self.bits, self.groupSize) = (bits, groupSize) }
    public var description: String { "\(bits)-bit g\(groupSize)" }

    /// What `lowbit quantize --target-size` weighs for every tensor.
    public static let candidates = [2, 3, 4].flatMap { b in
        [32, 64, 128].map { TensorPrecision(bits: b, groupSize: $0) }
    }
}

/// Per-tensor precision under a byte budget: each tensor's precision is the one that keeps the
/// model's predicted loss lowest for the bytes it costs.
///
/// The prediction is additive over tensors: a tensor's loss increase is its sensitivity (nats
/// per unit of output error, measured on the model) times its output error at that precision
/// (the squared error of W·x over calibration inputs, which precision changes cheaply). With
/// each tensor's options reduced to their lower convex hull of (bytes, loss), greedy upgrades
/// in order of loss saved per byte solve the relaxed problem exactly, and a last pass spends
/// what the hull's steps could not.
public enum BitAllocation {
    public struct Option: Sendable {
        public let precision: TensorPrecision
        public let bytes: Int
        public let predictedLoss: Double
        public init(precision: TensorPrecision, bytes: Int, predictedLoss: Double) {
            (self.precision, self.bytes, self.predictedLoss) = (precision, bytes, predictedLoss)
        }
    }

    /// The index of the chosen option per tensor, with total bytes ≤ `budget`; nil when even the
    /// smallest option of every tensor does not fit.
    public static func choose(_ options: [[Option]], budget: Int) -> [Int]? {
        // Per tensor: options by bytes, dominated ones dropped, then the lower convex hull.
        let hulls: [[Int]] = options.map { opts in
            let order = opts.indices.sorted { (opts[$0].bytes, opts[$0].predictedLoss)
                < (opts[$1].bytes, opts[$1].predictedLoss) }
            var frontier: [Int] = []
            for i in order where frontier.isEmpty || opts[i].predictedLoss < opts[frontier.last!].predictedLoss {
                if let last = frontier.last, opts[last].bytes == opts[i].bytes { frontier.removeLast() }
                frontier.append(i)
            }
            var hull: [Int] = []
            for i in frontier {
                while hull.count >= 2 {
                    let a = opts[hull[hull.count - 2]], b = opts[hull[hull.count - 1]], c = opts[i]
                    // b lies on or above the segment a–c: it is never the best use of bytes.
                    let cross = (b.predictedLoss - a.predictedLoss) * Double(c.bytes - a.bytes)
                        - (c.predictedLoss - a.predictedLoss) * Double(b.bytes - a.bytes)
                    if cross >= 0 { hull.removeLast() } else { break }
                }
                hull.append(i)
            }
            return hull
        }
        guard hulls.allSatisfy({ !$0.isEmpty }) else { return nil }
        var step = [Int](repeating: 0, count: options.count)
        var total = zip(options, hulls).reduce(0) { $0 + $1.0[$1.1[0]].bytes }
        guard total <= budget else { return nil }
        // Greedy along the hulls: the step saving the most loss per byte that still fits.
        while true {
            var best: (tensor: Int, rate: Double)? = nil
            for t in options.indices where step[t] + 1 < hulls[t].count {
                let from = options[t][hulls[t][step[t]]], to = options[t][hulls[t][step[t] + 1]]
                guard total - from.bytes + to.bytes <= budget else { continue }
                let rate = (from.predictedLoss - to.predictedLoss) / Double(to.bytes - from.bytes)
                if best == nil || rate > best!.rate { best = (t, rate) }
            }
            guard let best else { break }
            let t = best.tensor
            total += options[t][hulls[t][step[t] + 1]].bytes - options[t][hulls[t][step[t]]].bytes
            step[t] += 1
        }
        var chosen = options.indices.map { hulls[$0][step[$0]] }
        // Bytes left over: any option (off the hull too) that lowers a tensor's loss and fits.
        var improved = true
        while improved {
            improved = false
            var best: (tensor: Int, option: Int, gain: Double)? = nil
            for t in options.indices {
                let current = options[t][chosen[t]]
                for (i, o) in options[t].enumerated() where o.predictedLoss < current.predictedLoss
                    && total - current.bytes + o.bytes <= budget {
                    let gain = current.predictedLoss - o.predictedLoss
                    if best == nil || gain > best!.gain { best = (t, i, gain) }
                }
            }
            if let best {
                total += options[best.tensor][best.option].bytes - options[best.tensor][chosen[best.tensor]].bytes
                chosen[best.tensor] = best.option
                improved = true
            }
        }
        return chosen
    }

    /// Sensitivities s[layer][kind] of a product model s = a[layer] · b[kind], fitted to loss
    /// increases measured with every tensor of one layer (`byLayer`) or of one kind (`byKind`)
    /// at a probe precision, where each tensor's output error there is `error[layer][kind]`:
    /// byLayer[l] ≈ Σₖ a[l]·b[k]·error[l][k] and byKind[k] ≈ Σₗ a[l]·b[k]·error[l][k], by
    /// alternately solving each set of equations for its factors. 7 + layers measurements stand
    /// for 7 · layers tensors; increases ≤ 0 (noise) are floored at 1% of the mean.
    public static func fitSensitivities(byLayer: [Double], byKind: [Double], error: [[Double]]) -> [[Double]] {
        let layers = byLayer.count, kinds = byKind.count
        let mean = (byLayer + byKind).reduce(0, +) / Double(max(layers + kinds, 1))
        let floor = max(mean * 0.01, 1e-12)
        let layerLoss = byLayer.map { max($0, floor) }, kindLoss = byKind.map { max($0, floor) }
        var a = [Double](repeating: 1, count: layers), b = [Double](repeating: 1, count: kinds)
        for _ in 0..<50 {
            for l in 0..<layers {
                let denominator = (0..<kinds).reduce(0.0) { $0 + b[$1] * error[l][$1] }
                a[l] = denominator > 0 ? layerLoss[l] / denominator : 0
            }
            for k in 0..<kinds {
                let denominator = (0..<layers).reduce(0.0) { $0 + a[$1] * error[$1][k] }
                b[k] = denominator > 0 ? kindLoss[k] / denominator : 0
            }
        }
        return (0..<layers).map { l in (0..<kinds).map { a[l] * b[$0] } }
    }
}

extension ModelQuantizer {
    /// The precision of every linear layer and the output projection (GGUF names) for a model
    /// of at most `targetBytes` weight bytes as `LlamaModel.weightBytes` counts them (norms and
    /// an untied embedding table included), from `candidates`. Needs calibration text longer
    /// than the part the matrices are fitted to: output errors and the loss that sensitivities
    /// come from are taken on the tokens after it, up to `lossTokens`.
    ///
    /// Only two adjacent widths mix: the widest whose every-tensor-at-it model fits the target,
    /// and the next one up. A sensitivity is measured at one precision (the lower width, groups
    /// of 64) and the loss is taken as proportional to output error from there; that holds
    /// between neighbours, but on SmolLM2 it put 2-bit layers into 70 MiB models that then scored
    /// worse than a uniform one, as errors at 2 bits hurt far more than in proportion.
    public func allocate(targetBytes: Int, text: String, candidates: [TensorPrecision] = TensorPrecision.candidates,
                         lossTokens: Int = 256,
                         progress: (String, Int, Int) -> Void = { _, _, _ in }) throws -> [String: TensorPrecision] {
        try allocations(targets: [targetBytes], text: text, candidates: candidates, lossTokens: lossTokens,
                        progress: progress)[0]
    }

    /// `allocate` at each of `targets`, measuring output errors once and each probe width's
    /// sensitivities once: the levels of an elastic model file.
    public func allocations(targets: [Int], text: String, candidates: [TensorPrecision] = TensorPrecision.candidates,
                            lossTokens: Int = 256,
                            progress: (String, Int, Int) -> Void = { _, _, _ in })
        throws -> [[String: TensorPrecision]] {
        guard isCalibrated else {
            throw LowBitError(.invalidArgument, "allocating bits by sensitivity needs calibration text")
        }
        guard let held = heldOut.values.first, held.samples >= 16 else {
            throw LowBitError(.invalidArgument,
                              "allocating bits needs a calibration text of at least "
                              + "\(LlamaModel.calibrationTokens + 16) tokens: the matrices are fitted to the first "
                              + "\(LlamaModel.calibrationTokens), and compared on the rest")
        }
        guard !targets.isEmpty else { return [] }
        let model = try LlamaModel(gguf: file, weights: .reference)
        let kinds = LlamaModel.linearNames, layers = model.layers.count
        let names = (0..<layers).flatMap { l in kinds.map { "blk.\(l).\($0).weight" } } + [model.outputName]
        let widths = Set(candidates.map(\.bits)).sorted()
        var errors: [String: [Double]] = [:], bytes: [String: [Int]] = [:]
        // Each width's probe (groups of 64, or the candidate nearest them) of every tensor.
        var probes: [Int: [String: Linear]] = [:]
        let probePrecisions = widths.map { b in
            candidates.filter { $0.bits == b }.min { abs($0.groupSize - 64) < abs($1.groupSize - 64) }!
        }
        // What the quantized model holds besides these tensors: norms, biases, an untied table.
        let tied = model.outputName == "token_embd.weight"
        let fixed = model.weightBytes - (try names.reduce(0) { $0 + (try model.linear($1).byteCount) })
            - (tied ? model.embeddingBytes.count : 0)
        // The lower width of each target: the widest whose smallest model fits it.
        func smallest(_ width: Int) -> Int {
            fixed + names.reduce(0) { total, name in
                total + candidates.indices.filter { candidates[$0].bits == width }.map { bytes[name]![$0] }.min()!
            }
        }
        var lowerWidths: [Int] = []
        for (i, name) in names.enumerated() {
            progress("output errors", i + 1, names.count)
            let reference = try ModelFile.referenceWeights(file, name)
            for precision in candidates {
                let (m, scales) = try quantize(name, type: .integer(bits: precision.bits),
                                               groupSize: precision.groupSize)
                errors[name, default: []].append(try outputError(name, reference, m, scales))
                // What a layer holds: the smallest layout `auto` may choose (`AutoKernel.choice`).
                let held = try AutoKernel.layoutSizes(m).min()!
                bytes[name, default: []].append(held + 4 * (scales?.count ?? 0))
                if probePrecisions.contains(precision) {
                    probes[precision.bits, default: [:]][name] =
                        try QuantizedLinear(m, kernel: .dequant, inputScales: scales, activationBits: 32)
                }
            }
        }
        for target in targets {
            guard let lower = widths.last(where: { smallest($0) <= target }) else {
                throw LowBitError(.invalidArgument, "a target of \(target) bytes is below the smallest model these "
                                                    + "precisions make (\(smallest(widths[0])) bytes)")
            }
            lowerWidths.append(lower)
        }
        // Only the probes of widths some target measures at are kept.
        for width in widths where !lowerWidths.contains(width) { probes[width] = nil }

        // Loss increases with one layer's, one kind's, or the output's tensors at the probe.
        let all = model.tokenizer.encode(text, addSpecial: true)
        let tokens = Array(all.dropFirst(LlamaModel.calibrationTokens)
            .prefix(min(lossTokens, model.config.contextLength)))
        let base = try StackSensitivity.meanLoss(model, tokens)
        var sensitivities: [Int: [String: Double]] = [:]
        let passes = Set(lowerWidths).count * (layers + kinds.count + 1)
        var done = 0
        for lower in Set(lowerWidths).sorted() {
            func increase(_ group: [String]) throws -> Double {
                done += 1
                progress("sensitivities", done, passes)
                let originals = try group.map { try model.linear($0) }
                for name in group { try model.replaceLinear(name, with: probes[lower]![name]!) }
                defer {
                    for (name, original) in zip(group, originals) { try? model.replaceLinear(name, with: original) }
                }
                return try StackSensitivity.meanLoss(model, tokens) - base
            }
            let byLayer = try (0..<layers).map { l in try increase(kinds.map { "blk.\(l).\($0).weight" }) }
            let byKind = try kinds.map { k in try increase((0..<layers).map { "blk.\($0).\(k).weight" }) }
            let outputIncrease = try increase([model.outputName])
            let p = candidates.firstIndex(of: probePrecisions.first { $0.bits == lower }!)!
            let fitted = BitAllocation.fitSensitivities(
                byLayer: byLayer, byKind: byKind,
                error: (0..<layers).map { l in kinds.map { errors["blk.\(l).\($0).weight"]![p] } })
            var sensitivity: [String: Double] = [:]
            for l in 0..<layers {
                for (k, kind) in kinds.enumerated() { sensitivity["blk.\(l).\(kind).weight"] = fitted[l][k] }
            }
            let outputError = errors[model.outputName]![p]
            sensitivity[model.outputName] = outputError > 0 ? max(outputIncrease, 0) / outputError : 0
            sensitivities[lower] = sensitivity
        }
        return zip(targets, lowerWidths).map { target, lower in
            let allowed = Set(widths.filter { $0 >= lower }.prefix(2))
            let usable = candidates.indices.filter { allowed.contains(candidates[$0].bits) }
            let options = names.map { name in
                usable.map {
                    BitAllocation.Option(precision: candidates[$0], bytes: bytes[name]![$0],
                                         predictedLoss: sensitivities[lower]![name]! * errors[name]![$0])
                }
            }
            // The lower width's smallest model fits, so a choice exists.
            let chosen = BitAllocation.choose(options, budget: target - fixed)!
            var result: [String: TensorPrecision] = [:]
            for (i, name) in names.enumerated() { result[name] = options[i][chosen[i]].precision }
            return result
        }
    }

    /// The mean loss, on up to `lossTokens` of the tokens after the fitted ones, of the model with
    /// each entry's matrices in place of those tensors (one loss per entry). Models a MiB apart
    /// differ by tenths of a percent in loss, so this takes every token the text has after the
    /// fitted ones, up to 2048 within the context, rather than the 256 the allocation uses.
    func heldOutLosses(_ models: [[String: ModelFile.Matrix]], text: String, lossTokens: Int = 2048,
                       progress: (String, Int, Int) -> Void = { _, _, _ in }) throws -> [Double] {
        let model = try LlamaModel(gguf: file, weights: .reference)
        let tokens = Array(model.tokenizer.encode(text, addSpecial: true).dropFirst(LlamaModel.calibrationTokens)
            .prefix(min(lossTokens, model.config.contextLength)))
        guard tokens.count >= 16 else {
            throw LowBitError(.invalidArgument, "the calibration text has too few tokens after the first "
                                                + "\(LlamaModel.calibrationTokens) to compare models on")
        }
        // One layer per matrix, shared by the entries that hold it.
        var layers: [ObjectIdentifier: Linear] = [:]
        return try models.enumerated().map { i, matrices in
            progress("levels", i + 1, models.count)
            for (name, (m, scales)) in matrices {
                if layers[ObjectIdentifier(m)] == nil {
                    layers[ObjectIdentifier(m)] = try QuantizedLinear(m, kernel: .dequant, inputScales: scales,
                                                                      activationBits: 32)
                }
                try model.replaceLinear(name, with: layers[ObjectIdentifier(m)]!)
            }
            return try StackSensitivity.meanLoss(model, tokens)
        }
    }

    /// Mean squared error of the tensor's outputs, Σ‖(W − Ŵ)·x‖² / samples, over the held-out
    /// rows it sees; Ŵ is the matrix with its input scaling undone.
    func outputError(_ name: String, _ reference: [Float], _ m: QuantizedMatrix, _ scales: [Float]?) throws -> Double {
        guard let recorded = heldOut[name], recorded.samples > 0 else {
            throw LowBitError(.invalidArgument, "no calibration inputs for '\(name)'")
        }
        let rows = m.rows, cols = m.cols
        var delta = m.dequantized()
        for i in delta.indices { delta[i] = reference[i] - delta[i] / (scales?[i % cols] ?? 1) }
        let samples = recorded.samples
        var y = [Float](repeating: 0, count: samples * rows)
        try FloatLinear(delta, rows: rows, cols: cols).forward(recorded.rows, n: samples, into: &y)
        return y.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(samples)
    }
}
