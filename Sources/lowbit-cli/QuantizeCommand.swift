#if canImport(Glibc)
import Glibc
#endif
import LowBit
import LowBitModel

let quantizeUsage = """
usage: lowbit quantize --model FILE.gguf -o|--output OUT.gguf [--calibration-text FILE]
                       (--bits 1|2|3|4|ternary|mixed3|mixed4 [--group-size 64] | --target-size SIZE
                        | --elastic --min-size A --max-size B [--levels N])
writes a lowbit model file: the model with its linear layers as lowbit matrices, which `lowbit run`,
`lowbit perplexity` and lowbit.Model.open load as they are, without quantizing again.
  --bits B             every layer at B bits (the output projection at 4 or more)
  --target-size SIZE   each layer and the output at its own width (2, 3 or 4 bits) and group size
                       (32, 64, 128), chosen by measured sensitivity so that the model's weights
                       take at most SIZE (e.g. 70MB, 64MiB); needs --calibration-text; minutes
  --elastic --min-size A --max-size B
                       an elastic model: the --target-size model of N sizes from A to B (default
                       one per MiB, 2 to 64) in one file, each layer stored at every precision a
                       size gives it; `lowbit run --budget SIZE` holds the largest that fits, and
                       a budget change reads only the layers that change; needs --calibration-text
  --calibration-text FILE
                       calibrated: activation-aware scales and rounding with error feedback,
                       fitted to the inputs each layer sees on this text
"""

func runQuantize(_ args: Arguments) throws {
    try args.allow(["model", "output", "calibration-text", "bits", "group-size", "target-size", "threads", "elastic",
                    "min-size", "max-size", "levels"])
    guard let modelPath = args.options["model"] else { throw CLIError("give --model FILE.gguf\n\(quantizeUsage)") }
    guard let out = args.options["output"] else { throw CLIError("give -o OUT.gguf\n\(quantizeUsage)") }
    if args.flags.contains("elastic") { return try runQuantizeElastic(args, modelPath: modelPath, out: out) }
    if let extra = ["min-size", "max-size", "levels"].first(where: { args.options[$0] != nil }) {
        throw CLIError("--\(extra) applies to --elastic")
    }
    let bits = try args.options["bits"].map(parseWeightType)
    let target = try args.options["target-size"].map(parseSize)
    guard (bits == nil) != (target == nil) else { throw CLIError("give one of --bits B or --target-size SIZE") }
    if target != nil, args.options["group-size"] != nil {
        throw CLIError("--group-size applies to --bits: --target-size chooses each tensor's")
    }
    if target != nil, args.options["calibration-text"] == nil {
        throw CLIError("--target-size needs --calibration-text FILE (sensitivities are measured on it)")
    }
    let groupSize = try args.int("group-size", default: 64)
    guard [32, 64, 128].contains(groupSize) else { throw CLIError("--group-size must be 32, 64 or 128") }
    let text = try args.options["calibration-text"].map { String(decoding: try FileIO.read($0), as: UTF8.self) }
    if text != nil {
        status("calibrating on the first \(LlamaModel.calibrationTokens) tokens of the calibration text (tens of "
               + "seconds; a target size takes minutes)")
    }

    let t0 = monotonicSeconds()
    let precisions = try ModelFile.quantize(modelPath: modelPath, output: out, type: bits, groupSize: groupSize,
                                            targetBytes: target, calibrationText: text) { progressBar($1, $2, $0) }
    if target != nil { printAllocation(precisions) }
    let made = monotonicSeconds() - t0
    let t1 = monotonicSeconds()
    let model = try LlamaModel.load(path: out, weights: .q4_1(kernel: .auto))
    print("wrote \(out) in \(fmt(made, 1)) s; it loads in \(formatTime(monotonicSeconds() - t1)) holding "
          + "\(formatBytes(model.weightBytes)) of weights")
}

func runQuantizeElastic(_ args: Arguments, modelPath: String, out: String) throws {
    if let extra = ["bits", "group-size", "target-size"].first(where: { args.options[$0] != nil }) {
        throw CLIError("--\(extra) does not apply to --elastic: give --min-size A --max-size B")
    }
    guard let minText = args.options["min-size"], let maxText = args.options["max-size"] else {
        throw CLIError("--elastic needs --min-size A and --max-size B (e.g. 55MB and 85MB)")
    }
    let (minBytes, maxBytes) = (try parseSize(minText), try parseSize(maxText))
    guard minBytes <= maxBytes else { throw CLIError("--min-size must not be above --max-size") }
    let levels = try args.options["levels"].map { _ in try args.int("levels", default: 2) }
    if let levels, !(1...ModelFile.maxLevels).contains(levels) {
        throw CLIError("--levels must be 1 to \(ModelFile.maxLevels)")
    }
    guard let textPath = args.options["calibration-text"] else {
        throw CLIError("--elastic needs --calibration-text FILE (sensitivities are measured on it)")
    }
    let text = String(decoding: try FileIO.read(textPath), as: UTF8.self)
    status("calibrating on the first \(LlamaModel.calibrationTokens) tokens of the calibration text, then measuring "
           + "sensitivities (minutes)")
    let t0 = monotonicSeconds()
    let count = levels ?? ModelFile.defaultLevelCount(minBytes: minBytes, maxBytes: maxBytes)
    let (ladders, targets, _) = try ModelFile.quantizeElastic(modelPath: modelPath, output: out, minBytes: minBytes,
                                                              maxBytes: maxBytes, calibrationText: text,
                                                              levelCount: count) { progressBar($1, $2, $0) }
    let made = monotonicSeconds() - t0
    let t1 = monotonicSeconds()
    let model = try LlamaModel.load(path: out, weights: .q4_1(kernel: .auto), budget: maxBytes)
    let rungs = ladders.values.reduce(0) { $0 + $1.count }
    let dropped = count - targets.count
    print("wrote \(out) in \(fmt(made, 1)) s: \(targets.count) levels from \(formatBytes(targets.first!)) to "
          + "\(formatBytes(targets.last!))"
          + (dropped > 0 ? " (\(dropped) left out: no better on the held-out text than a smaller one)" : "")
          + ", \(rungs) rungs over \(ladders.count) tensors; at --budget "
          + "\(formatBytes(maxBytes)) it loads in \(formatTime(monotonicSeconds() - t1)) holding "
          + "\(formatBytes(model.weightBytes)) of weights")
}

/// How many tensors of each kind took each precision (the output is one tensor of its own).
func printAllocation(_ chosen: [String: (WeightType, Int)]) {
    func label(_ p: (WeightType, Int)) -> String { "\(p.0.storageBits)-bit g\(p.1)" }
    let labels = chosen.values.sorted { ($0.0.storageBits, $0.1) < ($1.0.storageBits, $1.1) }
        .map(label).reduce(into: [String]()) { if $0.last != $1 { $0.append($1) } }
    func kind(_ name: String) -> String {
        let parts = name.split(separator: ".")
        return parts.count == 4 && parts[0] == "blk" ? String(parts[2]) : "output"
    }
    print("precision per kind of tensor (count of tensors):")
    print("kind".padded(14) + labels.map { $0.padded(11) }.joined())
    for k in LlamaModel.linearNames + ["output"] {
        let counts = labels.map { l in chosen.filter { kind($0.key) == k && label($0.value) == l }.count }
        print(k.padded(14) + counts.map { String($0).padded(11) }.joined())
    }
}
