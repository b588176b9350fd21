#if canImport(Glibc)
import Glibc
#endif
import LowBit

/// How much a model's loss depends on each stacked matrix, for ordering a BitStack (issue: the
/// obvious local score, weight error per byte, orders worse than the naive order on SmolLM2).
///
/// One evaluation per matrix, not per block: every stacked matrix is set to its first `level`
/// blocks (rebuilt densely here, at build time only), the loss on calibration tokens is taken
/// once, then once per matrix with that matrix at `level − 1` blocks. The loss increase,
/// divided by the scaled error energy the removed block carried, is the matrix's sensitivity:
/// the builder scores every further block by sensitivity × its own error energy / its bytes.
public enum StackSensitivity {
    /// Mean next-token loss (nats) over every position of `tokens` from an empty cache.
    static func meanLoss(_ model: LlamaModel, _ tokens: [Int]) throws -> Double {
        let cache = model.makeCache(capacity: tokens.count)
        let logits = try model.forward(tokens, cache: cache, logitRows: 0..<(tokens.count - 1))
        let v = model.config.vocabulary
        var nll = 0.0
        for i in 0..<(tokens.count - 1) {
            let l = logits[(i * v)..<((i + 1) * v)]
            let m = l.max()!
            var sum = 0.0
            for x in l { sum += Double(exp(x - m)) }
            let target = Double(l[l.startIndex + tokens[i + 1]] - m)
            nll += log(sum) - target
        }
        return nll / Double(tokens.count - 1)
    }

    /// Loss increase per tensor of `stack` (transformer linear layers only; any other stacked
    /// tensor, such as the output, gets none, and `StackBuilder.sensitivities` gives it the median). `text` is
    /// calibration
    /// text, of which the first `tokens` tokens are used.
    public static func lossIncrease(modelPath: String, stack: Stack, level: Int, text: String, tokens count: Int = 128,
                                    progress: (Int, Int) -> Void = { _, _ in }) throws -> [String: Double] {
        let model = try LlamaModel.load(path: modelPath, weights: .reference)
        var tokens = model.tokenizer.encode(text, addSpecial: true)
        guard tokens.count >= 16 else {
            throw LowBitError(.invalidArgument, "calibration text has \(tokens.count) tokens; 16 or more needed")
        }
        tokens = Array(tokens.prefix(min(count, model.config.contextLength)))
        guard level >= 2 else { throw LowBitError(.invalidArgument, "sensitivity level \(level) must be at least 2") }
        let names = stack.index.tensors.map(\.name).filter { $0.hasPrefix("blk.") }
        var atLevel: [String: FloatLinear] = [:]
        for name in names {
            let info = stack.index.tensors[try stack.tensorNumber(name)]
            guard try stack.blocks(name).resident >= level else {
                throw LowBitError(.invalidArgument, "'\(name)' has fewer than \(level) resident blocks")
            }
            let linear = try FloatLinear(try stack.denseWeights(name, blocks: level), rows: info.rows, cols: info.cols)
            try model.replaceLinear(name, with: linear)
            atLevel[name] = linear
        }
        let base = try meanLoss(model, tokens)
        var result: [String: Double] = [:]
        for (i, name) in names.enumerated() {
            let info = stack.index.tensors[try stack.tensorNumber(name)]
            try model.replaceLinear(name,
                                    with: try FloatLinear(try stack.denseWeights(name, blocks: level - 1),
                                                          rows: info.rows, cols: info.cols))
            result[name] = try meanLoss(model, tokens) - base
            try model.replaceLinear(name, with: atLevel[name]!)
            progress(i + 1, names.count)
        }
        return result
    }
}

extension StackSensitivity {
    /// One matrix's loss increase is small beside the noise of a short calibration text (on
    /// SmolLM2 with 128 tokens, a quarter of them came out ≤ 0), while the pattern across layers
    /// and kinds of matrix is clear (ffn_down most, attn_q least; the first and last layers most).
    /// So each value is replaced by the product model layer × kind fitted to all of them:
    /// mean of its layer × mean of its kind / mean of all (floored at 1% of the mean). Names
    /// that are not "blk.L.KIND.weight" keep their own value.
    public static func smoothed(_ increase: [String: Double]) -> [String: Double] {
        var byLayer: [Int: [Double]] = [:], byKind: [String: [Double]] = [:]
        func parse(_ name: String) -> (Int, String)? {
            let p = name.split(separator: ".")
            guard p.count == 4, p[0] == "blk", let layer = Int(p[1]) else { return nil }
            return (layer, String(p[2]))
        }
        for (name, v) in increase {
            guard let (layer, kind) = parse(name) else { continue }
            byLayer[layer, default: []].append(v)
            byKind[kind, default: []].append(v)
        }
        func mean(_ v: [Double]) -> Double { v.reduce(0, +) / Double(max(v.count, 1)) }
        let all = mean(byKind.values.flatMap { $0 })
        guard all > 0 else { return increase }
        let floor = 0.01 * all
        var out: [String: Double] = [:]
        for (name, v) in increase {
            guard let (layer, kind) = parse(name) else { out[name] = v; continue }
            out[name] = max(max(mean(byLayer[layer]!), floor) * max(mean(byKind[kind]!), floor) / all, floor)
        }
        return out
    }
}

/// The inputs every linear layer sees on calibration text, for BitStack's activation-aware
/// scaling (per input channel, the mean L2 norm over these rows) and activation-aware
/// requantization.
public enum CalibrationActivations {
    /// A float layer that keeps a copy of every input row it is given, unless it shares the
    /// inputs of another recorder (`LlamaModel.inputSource`). Its outputs are zeros
    /// where nothing reads them (`computes` false: the output projection's logits).
    final class Recorder: Linear, @unchecked Sendable {
        let inner: Linear
        let computes: Bool
        let sharesInputsOf: Recorder?
        var rowsSeen: [Float] = []
        var rows: Int { inner.rows }
        var cols: Int { inner.cols }
        var byteCount: Int { inner.byteCount }
        func readWeights() throws -> UInt64? { try inner.readWeights() }
        var inputs: [Float] { sharesInputsOf?.rowsSeen ?? rowsSeen }
        init(_ inner: Linear, computes: Bool = true, sharesInputsOf: Recorder? = nil, expectedRows: Int = 0) {
            (self.inner, self.computes, self.sharesInputsOf) = (inner, computes, sharesInputsOf)
            if sharesInputsOf == nil { rowsSeen.reserveCapacity(expectedRows * inner.cols) }
        }
        func forward(_ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>) throws {
            if sharesInputsOf == nil { rowsSeen.append(contentsOf: UnsafeBufferPointer(start: x, count: n * cols)) }
            if computes { try inner.forward(x, n: n, into: y) } else { y.update(repeating: 0, count: n * rows) }
        }
    }

    /// Input rows (tokens × cols) per linear layer name (and the output projection's), from the
    /// reference model run over the first `tokens` tokens of `text`.
    public static func record(modelPath: String, text: String,
                              tokens count: Int = 256) throws -> [String: (rows: [Float], samples: Int)] {
        try record(gguf: try GGUFFile(path: modelPath), text: text, tokens: count)
    }

    public static func record(gguf: GGUFFile, text: String,
                              tokens count: Int = 256) throws -> [String: (rows: [Float], samples: Int)] {
        let model = try LlamaModel(gguf: gguf, weights: .reference)
        let tokens = Array(model.tokenizer.encode(text,
                                                  addSpecial: true).prefix(min(count, model.config.contextLength)))
        guard tokens.count >= 16 else {
            throw LowBitError(.invalidArgument, "calibration text has \(tokens.count) tokens; 16 or more needed")
        }
        var recorders: [String: Recorder] = [:]
        for layer in 0..<model.layers.count {
            for name in LlamaModel.linearNames {
                let full = "blk.\(layer).\(name).weight"
                let source = LlamaModel.inputSource(full)
                let recorder = Recorder(try model.linear(full),
                                        sharesInputsOf: source == full ? nil : recorders[source],
                                        expectedRows: tokens.count)
                try model.replaceLinear(full, with: recorder)
                recorders[full] = recorder
            }
        }
        let output = Recorder(try model.linear(model.outputName), computes: false, expectedRows: tokens.count)
        try model.replaceLinear(model.outputName, with: output)
        recorders[model.outputName] = output
        _ = try model.forward(tokens, cache: model.makeCache(capacity: tokens.count), logitRows: 0..<tokens.count)
        return recorders.mapValues { ($0.inputs, tokens.count) }
    }
}
