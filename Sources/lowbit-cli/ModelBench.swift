import LowBit
import LowBitModel

let modelBenchUsage = """
usage: lowbit bench --model FILE.gguf [weights options] [options]

Times a model as llama-bench does: prompt processing (ppP: one forward pass over P tokens, the
logits of the last only) and generation (tgG: G tokens one at a time from an empty context),
each after a warm-up run, as the mean and standard deviation of several runs; --depth D runs
both after D tokens already in the context (llama-bench's -d), where attention reads D more
keys and values per token. Generation's
roofline is the fraction of the memory's speed it reaches: its tok/s times the time a plain
read of the weights a token streams takes (the model's own bytes, read after each generation
run on the same threads and tier); "-" for a stack, whose resident blocks change with its budget.

  --prompt-tokens P  tokens of the prompt test (default 128; 0 skips it)
  --gen-tokens G     tokens of the generation test (default 64; 0 skips it)
  --depth D          tokens in the context before each test (default 0), run untimed
  --repetitions R    timed runs per test (default 5)
  --threads LIST     thread counts (default: one per CPU)
  --tiers LIST       SIMD tiers (default: the tier in use)
  weights options as for `lowbit run`: --weights file|reference, --bits B [--group-size G]
  [--kernel K] [--calibration-text FILE], --stack FILE --budget SIZE, --act-bits A
"""

/// `lowbit bench --model`: the prompt and generation speed of a model, per thread count and tier.
func runModelBench(_ args: Arguments) throws {
    try args.allow(modelOptions.union(["prompt-tokens", "gen-tokens", "depth", "repetitions", "tiers"]))
    let promptTokens = try args.int("prompt-tokens", default: 128), genTokens = try args.int("gen-tokens", default: 64)
    let repetitions = try args.int("repetitions", default: 5), depth = try args.int("depth", default: 0)
    guard (0...65536).contains(promptTokens), (0...65536).contains(genTokens), promptTokens + genTokens > 0 else {
        throw CLIError("--prompt-tokens and --gen-tokens must be 0...65536, and one of them above 0")
    }
    guard (0...65536).contains(depth) else { throw CLIError("--depth must be 0...65536, got \(depth)") }
    guard (1...1000).contains(repetitions) else { throw CLIError("--repetitions must be 1...1000, got \(repetitions)") }
    let threadCounts = try args.ints("threads", default: [Runtime.threads])
    guard threadCounts.allSatisfy({ $0 >= 1 }) else { throw CLIError("--threads must be positive") }
    let tiers = try parseTiers(args)
    let choice = try weightChoice(args)
    let model = try loadModel(args, choice)
    let context = model.config.contextLength
    guard depth + promptTokens <= context, depth + genTokens <= context else {
        throw CLIError("--depth plus --prompt-tokens or --gen-tokens must be at most the model's context length, "
                       + "\(context)")
    }
    let startTier = Runtime.simdTier, startThreads = Runtime.threads
    defer {
        try? Runtime.setSIMDTier(startTier)
        try? Runtime.setThreads(startThreads)
    }
    // Prompt tokens drawn from the vocabulary with a fixed seed, as llama-bench draws its own.
    var rng = SplitMix64(seed: 1)
    let prompt = (0..<promptTokens).map { _ in Int(rng.next() % UInt64(model.config.vocabulary)) }
    let history = (0..<depth).map { _ in Int(rng.next() % UInt64(model.config.vocabulary)) }
    let token = model.tokenizer.bosID ?? 0, at = depth > 0 ? " @ d\(depth)" : ""
    print("model \(model.weightsDescription), weights \(formatBytes(model.weightBytes)); "
          + "mean ± sd of \(repetitions) runs")
    let testWidth = depth > 0 ? 16 : 8
    print("threads  tier      \("test".padded(testWidth)) tok/s              roofline")
    for tier in tiers {
        try Runtime.setSIMDTier(tier)
        for threads in threadCounts {
            try Runtime.setThreads(threads)
            let head = "\(String(threads).padded(8)) \(tier.description.padded(9))"
            if promptTokens > 0 {
                var rates: [Double] = []
                for run in 0...repetitions {
                    let cache = model.makeCache(capacity: depth + promptTokens)
                    if depth > 0 { _ = try model.forward(history, cache: cache) }
                    let t0 = monotonicSeconds()
                    _ = try model.forward(prompt, cache: cache)
                    if run > 0 { rates.append(Double(promptTokens) / max(monotonicSeconds() - t0, 1e-9)) }
                }
                print("\(head) \("pp\(promptTokens)\(at)".padded(testWidth)) \(meanAndDeviation(rates).padded(18)) -")
            }
            if genTokens > 0 {
                var rates: [Double] = [], fractions: [Double] = []
                for run in 0...repetitions {
                    let session = try Session(model: model, capacity: depth + genTokens)
                    if depth > 0 { _ = try session.eval(history) }
                    let t0 = monotonicSeconds()
                    for _ in 0..<genTokens { _ = try session.eval([token]) }
                    let rate = Double(genTokens) / max(monotonicSeconds() - t0, 1e-9)
                    let read = try model.weightReadSeconds(runs: 3)
                    guard run > 0 else { continue }
                    rates.append(rate)
                    if let read { fractions.append(rate * read) }  // (bytes · tok/s) / (bytes / read seconds)
                }
                let roofline = fractions.isEmpty ? "-" : fmt(fractions.reduce(0, +) / Double(fractions.count), 2)
                let test = "tg\(genTokens)\(at)".padded(testWidth)
                print("\(head) \(test) \(meanAndDeviation(rates).padded(18)) \(roofline)")
            }
        }
    }
}

/// "mean ± sd" of tok/s values, as llama-bench prints them.
func meanAndDeviation(_ values: [Double]) -> String {
    let mean = values.reduce(0, +) / Double(values.count)
    let squares = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +)
    let variance = values.count > 1 ? squares / Double(values.count - 1) : 0
    return "\(fmt(mean, 1)) ± \(fmt(variance.squareRoot(), 1))"
}

/// --tiers: tiers this CPU runs (default: the one in use).
func parseTiers(_ args: Arguments) throws -> [SIMDTier] {
    try args.strings("tiers", default: [Runtime.simdTier.description]).map { name in
        guard let tier = SIMDTier(rawValue: name), SIMDTier.supported.contains(tier) else {
            throw CLIError("--tiers takes tiers this CPU runs: "
                           + SIMDTier.supported.map(\.description).joined(separator: ", "))
        }
        return tier
    }
}
