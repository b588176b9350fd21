#if canImport(Glibc)
import Glibc
#endif
import LowBit
import LowBitModel

let quantizeUsage = """
usage: lowbit quantize --model FILE.gguf -o|--output OUT.gguf [--calibration-text FILE]
                       (--bits 1|2|3|4|ternary|mixed3|mixed4 [--group-size 64] | --target-size SIZE)
writes a lowbit model file: the model with its linear layers as lowbit matrices, which `lowbit run`,
`lowbit perplexity` and lowbit.Model.open load as they are, without quantizing again.
  --bits B             every layer at B bits (the output projection at 4 or more)
  --target-size SIZE   each layer and the output at its own width (2, 3 or 4 bits) and group size
                       (32, 64, 128), chosen by measured sensitivity so that the model's weights
                       take at most SIZE (e.g. 70MB, 64MiB); needs --calibration-text; minutes
  --calibration-text FILE
                       calibrated: activation-aware scales and rounding with error feedback,
                       fitted to the inputs each layer sees on this text
"""

func runQuantize(_ args: Arguments) throws {
    try args.allow(["model", "output", "calibration-text", "bits", "group-size", "target-size", "threads"])
    guard let modelPath = args.options["model"] else { throw CLIError("give --model FILE.gguf\n\(quantizeUsage)") }
    guard let out = args.options["output"] else { throw CLIError("give -o OUT.gguf\n\(quantizeUsage)") }
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
