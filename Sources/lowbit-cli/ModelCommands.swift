#if canImport(Glibc)
import Glibc
#endif
import LowBit
import LowBitModel

let modelOptions: Set<String> = ["model", "weights", "bits", "group-size", "kernel", "stack", "budget", "threads",
                                 "calibration-text", "act-bits"]

/// --weights reference|file [--budget SIZE], or --bits B [--group-size G] [--kernel K], or --stack PATH
/// --budget SIZE (a budget without a stack is an elastic model file's, which the loader checks).
/// Options of one way that make no sense with another are refused, not ignored.
func weightChoice(_ args: Arguments) throws -> WeightChoice {
    let given = Set(args.options.keys)
    func refuse(_ options: Set<String>, with what: String) throws {
        if let extra = options.intersection(given).sorted().first {
            throw CLIError("--\(extra) does not apply to \(what)")
        }
    }
    if given.contains("stack") {
        try refuse(["weights", "bits", "group-size", "kernel", "act-bits", "calibration-text"], with: "--stack")
    } else {
        if given.contains("budget") {
            try refuse(["bits"], with: "--budget (an elastic model file's, or a stack's)")
            if args.options["weights"] == "reference" {
                throw CLIError("--budget does not apply to --weights reference")
            }
        }
        if given.contains("bits") { try refuse(["weights"], with: "--bits (requantized weights)") }
        if !given.contains("bits") { try refuse(["group-size"], with: "--weights (give --bits to requantize)") }
        if args.options["weights"] == "reference" { try refuse(["kernel"], with: "--weights reference") }
    }
    let kernel = try KernelFamily(name: args.options["kernel"] ?? "auto")
    let activationBits = try args.options["act-bits"].map { _ in try args.int("act-bits", default: 8) }
    if activationBits != nil,
       args.options["bits"] != nil || args.options["stack"] != nil || args.options["weights"] == "reference" {
        throw CLIError("--act-bits applies to --weights file")
    }
    if args.options["calibration-text"] != nil, args.options["bits"] == nil || args.options["stack"] != nil {
        throw CLIError("--calibration-text applies to requantized weights: give --bits (and no --stack)")
    }
    if let path = args.options["stack"] {
        guard let budget = args.options["budget"] else { throw CLIError("--stack needs --budget SIZE") }
        return .stack(path: path, budget: try parseSize(budget))
    }
    if let bits = args.options["bits"] {
        let calibration = try args.options["calibration-text"].map {
            String(decoding: try FileIO.read($0), as: UTF8.self)
        }
        return .requantized(type: try parseWeightType(bits), groupSize: try args.int("group-size", default: 64),
                            kernel: kernel,
                            calibration: calibration)
    }
    switch args.options["weights"] ?? "file" {
    case "reference": return .reference
    case "file", "q4_1":  // q4_1: the name from before other types ran as their own blocks
        _ = try WeightChoice.q4_1Kernel(kernel, activationBits: activationBits)
        return .q4_1(kernel: kernel, activationBits: activationBits)
    case let w: throw CLIError("--weights must be file or reference (or use --bits / --stack), not '\(w)'")
    }
}

/// The model of --model as `choice` says (from `weightChoice`, checked before anything loads).
func loadModel(_ args: Arguments, _ choice: WeightChoice) throws -> LlamaModel {
    guard let path = args.options["model"] else {
        throw CLIError("give --model PATH.gguf (scripts/fetch-model.sh fetches SmolLM2-135M)")
    }
    let t0 = monotonicSeconds()
    if case .requantized(_, _, _, let calibration?) = choice, !calibration.isEmpty {
        status("calibrating on the first \(LlamaModel.calibrationTokens) tokens of the calibration text "
               + "(tens of seconds)")
    }
    var budget: Int? = nil
    if case .q4_1 = choice { budget = try args.options["budget"].map(parseSize) }
    let model = try LlamaModel.load(path: path, weights: choice, budget: budget)
    fputs("loaded \(path) as \(model.weightsDescription) in \(formatTime(monotonicSeconds() - t0)); weights "
          + "\(formatBytes(model.weightBytes))\n", stderr)
    return model
}

func runGenerate(_ args: Arguments) throws {
    try args.allow(modelOptions.union(["prompt", "chat", "n", "temp", "top-p", "seed"]))
    guard let prompt = args.options["prompt"] else { throw CLIError("give --prompt TEXT") }
    // Every value is checked before the model loads.
    let temp = try args.float("temp", default: 0, in: 0...100), topP = try args.float("top-p", default: 1, in: 0...1)
    guard topP > 0 else { throw CLIError("--top-p must be above 0") }
    let maxTokens = try args.int("n", default: 64), seed = try args.int("seed", default: 1)
    guard maxTokens >= 0 else { throw CLIError("-n must be >= 0, got \(maxTokens)") }
    guard seed >= 0 else { throw CLIError("--seed must be >= 0, got \(seed)") }
    let model = try loadModel(args, try weightChoice(args))
    let chat = args.flags.contains("chat")
    if !chat { print(prompt, terminator: "") }
    let (_, stats) = try model.generate(prompt, chat: chat, maxTokens: maxTokens, temperature: temp, topP: topP,
                                        seed: UInt64(seed)) { piece in
        print(piece, terminator: "")
        fflush(stdout)
    }
    print("")
    var decode = "no decode step to time"
    if stats.decodeSteps > 0 {
        decode = "\(fmt(stats.generationTokensPerSecond, 1)) tok/s"
        if let read = try model.weightReadSeconds() {
            decode += " (\(fmt(stats.generationTokensPerSecond * read, 2)) of the memory roofline)"
        }
    }
    print("prompt: \(stats.promptTokens) tokens at \(fmt(stats.promptTokensPerSecond, 1)) tok/s; generation: "
          + "\(stats.generatedTokens) tokens, \(decode); weights \(formatBytes(model.weightBytes)); "
          + "\(Runtime.threads) thread(s)")
}

func runPerplexity(_ args: Arguments) throws {
    try args.allow(modelOptions.union(["text", "ctx", "chunks"]))
    guard let textPath = args.options["text"] else { throw CLIError("give --text FILE") }
    let chunks = args.options["chunks"].map { Int($0) ?? -1 }, ctx = try args.int("ctx", default: 512)
    if let c = chunks, c < 1 { throw CLIError("--chunks must be a positive integer") }
    guard ctx >= 16 else { throw CLIError("--ctx must be at least 16, got \(ctx)") }
    let choice = try weightChoice(args)
    let text = String(decoding: try FileIO.read(textPath), as: UTF8.self)
    let model = try loadModel(args, choice)
    let t0 = monotonicSeconds()
    let (ppl, scored) = try model.perplexity(text, context: ctx, chunks: chunks) { done, total, running in
        progressBar(done, total, "perplexity \(fmt(running, 3))")
    }
    let seconds = fmt(monotonicSeconds() - t0, 1)
    print("perplexity \(fmt(ppl, 4)) over \(scored) scored tokens (ctx \(ctx)) in \(seconds) s; "
          + "weights \(formatBytes(model.weightBytes)); \(model.weightsDescription)")
}
