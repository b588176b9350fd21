#if canImport(Glibc)
import Glibc
#endif
import LowBit
import LowBitModel

/// `lowbit report`: the README's table — perplexity, decode speed and weight memory of the model
/// for each way of holding its weights, measured in one run.
func runReport(_ args: Arguments) throws {
    try args.allow(["model", "text", "chunks", "ctx", "stack", "budgets", "threads", "decode", "calibration-text",
                    "models", "plot", "reference-points"])
    guard let path = args.options["model"], let textPath = args.options["text"] else {
        throw CLIError("usage: lowbit report --model FILE.gguf --text FILE [--chunks 2] [--calibration-text FILE] "
                       + "[--stack FILE.lbs --budgets 60MB,75MB,90MB]")
    }
    let text = String(decoding: try FileIO.read(textPath), as: UTF8.self)
    let chunks = try args.int("chunks", default: 2), ctx = try args.int("ctx", default: 512),
        decode = try args.int("decode", default: 32)
    // Checked before the first row runs: a bad points file or plot path fails in seconds.
    let peers = try args.options["reference-points"].map(readReferencePoints)
    if peers != nil, args.options["plot"] == nil { throw CLIError("--reference-points goes with --plot FILE.svg") }
    if let plot = args.options["plot"] {
        let folder = plot.contains("/") ? String(plot[..<plot.lastIndex(of: "/")!]) : "."
        guard access(folder.isEmpty ? "/" : folder, W_OK) == 0 else {
            throw CLIError("--plot \(plot): cannot write into '\(folder)'")
        }
    }
    var configs: [(String, WeightChoice)] = [
        ("reference (f32)", .reference),
        ("file's own blocks", .q4_1(kernel: .auto)),
        ("file's, int8 acts", .q4_1(kernel: .auto, activationBits: 8)),
        ("4-bit g64", .requantized(type: .integer(bits: 4), groupSize: 64, kernel: .auto)),
        ("3-bit g64", .requantized(type: .integer(bits: 3), groupSize: 64, kernel: .auto)),
        ("2-bit g64", .requantized(type: .integer(bits: 2), groupSize: 64, kernel: .auto)),
    ]
    if let calibrationPath = args.options["calibration-text"] {
        // Calibrated rows (activation-aware scales, error feedback), on a text other than the
        // evaluation text. 2-bit stays unusable on this small model even so (g32: ~430 on 8
        // chunks of GPL-3), so the rows spend their time on 4 and 3 bits at both group sizes.
        let calibration = String(decoding: try FileIO.read(calibrationPath), as: UTF8.self)
        for (bits, group) in [(4, 64), (4, 32), (3, 64), (3, 32)] {
            configs.append(("\(bits)-bit g\(group) calibrated",
                            .requantized(type: .integer(bits: bits), groupSize: group, kernel: .auto,
                                         calibration: calibration)))
        }
    }
    if let stack = args.options["stack"] {
        for b in args.strings("budgets", default: ["60MB", "75MB", "90MB"]) {
            configs.append(("bitstack @ \(b)", .stack(path: stack, budget: try parseSize(b))))
        }
    }
    // Model files (`lowbit quantize`), each with its own path, in their default weights mode;
    // FILE@SIZE: an elastic model file under that budget.
    var modelPaths: [Int: String] = [:], modelBudgets: [Int: Int] = [:]
    for entry in args.strings("models", default: []) {
        var file = entry
        if let at = entry.lastIndex(of: "@") {
            file = String(entry[..<at])
            modelBudgets[configs.count] = try parseSize(String(entry[entry.index(after: at)...]))
        }
        modelPaths[configs.count] = file
        configs.append((String(entry.split(separator: "/").last ?? ""), .q4_1(kernel: .auto)))
    }
    var points: [PlotPoint] = [], referencePerplexity: Double? = nil
    print("model \(path); perplexity on the first \(chunks * ctx) tokens of \(textPath) (ctx \(ctx), second halves "
          + "scored); decode: \(decode) greedy tokens; \(Runtime.threads) thread(s)")
    print("prefill: one forward pass over the text's first \(ctx) tokens, logits of the last one only")
    print("decode's roofline: its tok/s times the time a plain read of the weights it streams takes")
    print("weights              perplexity  decode tok/s  roofline  prefill tok/s  weight memory  load")
    var prefillTokens: [Int]? = nil  // every configuration shares the file's tokenizer
    for (index, (name, choice)) in configs.enumerated() {
        status("report: row \(index + 1) of \(configs.count), \(name): loading"
               + (name.hasSuffix("calibrated") ? " and calibrating (tens of seconds)" : ""))
        let t0 = monotonicSeconds()
        let model = try LlamaModel(gguf: try GGUFFile(path: modelPaths[index] ?? path), weights: choice,
                                   budget: modelBudgets[index])
        let load = monotonicSeconds() - t0
        let (ppl, _) = try model.perplexity(text, context: ctx, chunks: chunks) { done, total, _ in
            progressBar(done, total, "report: \(name): perplexity chunks")
        }
        let (_, stats) = try model.generate("The GNU General Public License is", maxTokens: decode)
        let tokens = prefillTokens ?? Array(model.tokenizer.encode(text, addSpecial: true).prefix(ctx))
        prefillTokens = tokens
        let prefill = try prefillTokensPerSecond(model, tokens)
        defer { fflush(stdout) }  // one row at a time, also into a pipe
        let roofline = try model.weightReadSeconds().map { fmt(stats.generationTokensPerSecond * $0, 2) } ?? "-"
        print("\(name.padded(20)) \(fmt(ppl, 3).padded(11)) \(fmt(stats.generationTokensPerSecond, 1).padded(13)) "
              + "\(roofline.padded(9)) \(fmt(prefill, 1).padded(14)) \(formatBytes(model.weightBytes).padded(14)) "
              + "\(fmt(load, 1)) s")
        let mib = Double(model.weightBytes) / 1_048_576
        switch choice {
        case .reference: referencePerplexity = ppl
        case .q4_1(_, 8?): break  // the file's weights again, other activations: the same memory
        case .stack: points.append(PlotPoint(label: name, mebibytes: mib, perplexity: ppl, series: .stack))
        default:
            let series: PlotPoint.Series = modelBudgets[index] != nil ? .elastic
                : modelPaths[index] != nil ? .modelFile : .uniform
            points.append(PlotPoint(label: name, mebibytes: mib, perplexity: ppl, series: series))
        }
    }
    if let plot = args.options["plot"] {
        let name = { (p: String) in String(p.split(separator: "/").last ?? "") }
        let title = "perplexity against weight memory: \(name(path)), \(chunks * ctx) tokens of \(name(textPath))"
        let caption = peers.map { "reference points: \($0.source.isEmpty ? "given" : $0.source)" } ?? ""
        try FileIO.writeAtomically(Array(perplexitySVG(points + (peers?.points ?? []), reference: referencePerplexity,
                                                       title: title, caption: caption).utf8), to: plot)
        print("plot written to \(plot)")
    }
}

/// Tokens per second of one forward pass over `tokens` (the products run with that many
/// activation rows), computing the logits of the last token only, as a prompt is processed
/// before generation. (A generation's own prompt here is a few tokens: too short to tell how
/// the batched kernels do.)
func prefillTokensPerSecond(_ model: LlamaModel, _ tokens: [Int]) throws -> Double {
    let cache = model.makeCache(capacity: tokens.count)
    let t0 = monotonicSeconds()
    _ = try model.forward(tokens, cache: cache)
    return Double(tokens.count) / max(monotonicSeconds() - t0, 1e-9)
}
