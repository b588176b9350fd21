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

    let t0 = monotonicSeconds()
    let file = try GGUFFile(path: modelPath)
    let config = try LlamaConfig(file)
    if text != nil {
        status("calibrating on the first \(LlamaModel.calibrationTokens) tokens of the calibration text")
    }
    let quantizer = try ModelQuantizer(file: file, calibrationText: text)
    let outputName = file.tensorNames.contains("output.weight") ? "output.weight" : "token_embd.weight"
    let names = (0..<config.layers).flatMap { l in LlamaModel.linearNames.map { "blk.\(l).\($0).weight" } }
        + [outputName]
    var precisions: [String: (WeightType, Int)] = [:]
    if let target, let text {
        let chosen = try quantizer.allocate(targetBytes: target, text: text) { status($0) }
        for (name, p) in chosen { precisions[name] = (.integer(bits: p.bits), p.groupSize) }
        status("")
        printAllocation(chosen, layers: config.layers, outputName: outputName)
    } else if let bits {
        for name in names {
            // As the loader does: fewer than 4 bits in the output cost far more than they save.
            let isOutput = name == outputName
            precisions[name] = (isOutput && bits.storageBits < 4 ? .integer(bits: 4) : bits, groupSize)
        }
    }
    var matrices: [String: (matrix: QuantizedMatrix, inputScales: [Float]?)] = [:]
    for (i, name) in names.enumerated() {
        progressBar(i + 1, names.count, "quantizing")
        let (type, group) = precisions[name]!
        matrices[name] = try quantizer.quantize(name, type: type, groupSize: group)
    }
    try ModelFile.write(source: file, matrices: matrices, to: out)
    let made = monotonicSeconds() - t0
    let t1 = monotonicSeconds()
    let model = try LlamaModel.load(path: out, weights: .q4_1(kernel: .auto))
    print("wrote \(out) in \(fmt(made, 1)) s; it loads in \(formatTime(monotonicSeconds() - t1)) holding "
          + "\(formatBytes(model.weightBytes)) of weights")
}

/// How many tensors of each kind took each precision.
func printAllocation(_ chosen: [String: TensorPrecision], layers: Int, outputName: String) {
    let precisions = TensorPrecision.candidates.filter { p in chosen.values.contains(p) }
    print("precision per kind of tensor (count of layers):")
    print("kind".padded(14) + precisions.map { $0.description.padded(11) }.joined())
    for kind in LlamaModel.linearNames {
        let counts = precisions.map { p in (0..<layers).filter { chosen["blk.\($0).\(kind).weight"] == p }.count }
        print(kind.padded(14) + counts.map { String($0).padded(11) }.joined())
    }
    print("output".padded(14) + precisions.map { (chosen[outputName] == $0 ? "1" : "0").padded(11) }.joined())
}
