#if canImport(Glibc)
import Glibc
#endif
import LowBit
import LowBitModel

let modelOptions: Set<String> = ["model", "weights", "bits", "group-size", "kernel", "stack", "budget", "threads", "calibration-text", "act-bits"]

/// --weights reference|q4_1, or --bits B [--group-size G] [--kernel K], or --stack PATH --budget SIZE.
func weightChoice(_ args: Arguments) throws -> WeightChoice {
    let kernel = try KernelFamily(name: args.options["kernel"] ?? "auto")
    let activationBits = try args.options["act-bits"].map { _ in try args.int("act-bits", default: 8) }
    if activationBits != nil, args.options["bits"] != nil || args.options["stack"] != nil || args.options["weights"] == "reference" {
        throw CLIError("--act-bits applies to --weights q4_1")
    }
    if args.options["calibration-text"] != nil, args.options["bits"] == nil || args.options["stack"] != nil {
        throw CLIError("--calibration-text applies to requantized weights: give --bits (and no --stack)")
    }
    if let path = args.options["stack"] {
        guard let budget = args.options["budget"] else { throw CLIError("--stack needs --budget SIZE") }
        return .stack(path: path, budget: try parseSize(budget))
    }
    if let bits = args.options["bits"] {
        let calibration = try args.options["calibration-text"].map { String(decoding: try FileIO.read($0), as: UTF8.self) }
        return .requantized(type: try parseWeightType(bits), groupSize: try args.int("group-size", default: 64), kernel: kernel,
                            calibration: calibration)
    }
    switch args.options["weights"] ?? "q4_1" {
    case "reference": return .reference
    case "q4_1":
        _ = try WeightChoice.q4_1Kernel(kernel, activationBits: activationBits)
        return .q4_1(kernel: kernel, activationBits: activationBits)
    case let w: throw CLIError("--weights must be reference or q4_1 (or use --bits / --stack), not '\(w)'")
    }
}

func loadModel(_ args: Arguments) throws -> LlamaModel {
    guard let path = args.options["model"] else { throw CLIError("give --model PATH.gguf (scripts/fetch-model.sh fetches SmolLM2-135M)") }
    let t0 = monotonicSeconds()
    let model = try LlamaModel.load(path: path, weights: try weightChoice(args))
    fputs("loaded \(path) as \(model.choice) in \(formatTime(monotonicSeconds() - t0)); weights \(formatBytes(model.weightBytes))\n", stderr)
    return model
}

func runGenerate(_ args: Arguments) throws {
    try args.allow(modelOptions.union(["prompt", "chat", "n", "temp", "top-p", "seed"]))
    guard let prompt = args.options["prompt"] else { throw CLIError("give --prompt TEXT") }
    let model = try loadModel(args)
    let temp = Float(args.options["temp"] ?? "0") ?? -1, topP = Float(args.options["top-p"] ?? "1") ?? -1
    let chat = args.flags.contains("chat")
    if !chat { print(prompt, terminator: "") }
    let (_, stats) = try model.generate(prompt, chat: chat, maxTokens: try args.int("n", default: 64), temperature: temp, topP: topP,
                                        seed: UInt64(try args.int("seed", default: 1))) { piece in
        print(piece, terminator: "")
        fflush(stdout)
    }
    print("")
    let decode = stats.decodeSteps == 0 ? "no decode step to time" : "\(fmt(stats.generationTokensPerSecond, 1)) tok/s"
    print("prompt: \(stats.promptTokens) tokens at \(fmt(stats.promptTokensPerSecond, 1)) tok/s; generation: \(stats.generatedTokens) tokens, \(decode); weights \(formatBytes(model.weightBytes)); \(Runtime.threads) thread(s)")
}

func runPerplexity(_ args: Arguments) throws {
    try args.allow(modelOptions.union(["text", "ctx", "chunks"]))
    guard let textPath = args.options["text"] else { throw CLIError("give --text FILE") }
    let text = String(decoding: try FileIO.read(textPath), as: UTF8.self)
    let model = try loadModel(args)
    let chunks = args.options["chunks"].map { Int($0) ?? -1 }
    if let c = chunks, c < 1 { throw CLIError("--chunks must be a positive integer") }
    let t0 = monotonicSeconds()
    let (ppl, scored) = try model.perplexity(text, context: try args.int("ctx", default: 512), chunks: chunks) { done, total, running in
        progressBar(done, total, "perplexity \(fmt(running, 3))")
    }
    print("perplexity \(fmt(ppl, 4)) over \(scored) scored tokens (ctx \(try args.int("ctx", default: 512))) in \(fmt(monotonicSeconds() - t0, 1)) s; weights \(formatBytes(model.weightBytes)); \(model.choice)")
}
