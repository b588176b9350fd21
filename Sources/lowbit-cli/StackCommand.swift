#if canImport(Glibc)
import Glibc
#endif
import LowBit
import LowBitModel

let stackUsage = """
usage:
  lowbit stack build OUT.lbs NAME=FILE.npy ... [--calibration NAME=FILE.npy,...]
                     [--blocks 16] [--rank 16] [--factor-share 0.25]
  lowbit stack build OUT.lbs --random ROWSxCOLS,...     (deterministic Gaussian test matrices)
  lowbit stack build OUT.lbs --model FILE.gguf [--with-output]
                                                        every linear layer of a Llama model (and the
                                                        tied output, which is very sensitive to blocks)
      [--calibration-text FILE]                         activation-aware scaling from the inputs each
                                                        layer sees on 256 tokens of FILE
      [--sensitivity-text FILE [--sensitivity-level 3] [--sensitivity-tokens 128] [--max-lead 1]
       [--sensitivity-cache FILE]]                      (the cache keeps the measurements for re-ordering)
                                                        order the stack by each matrix's measured
                                                        loss increase when it loses its level-th
                                                        block (one evaluation per matrix)
  lowbit stack inspect FILE.lbs [--verify]               tensors and the stack's size curve
  lowbit stack run FILE.lbs --budget SIZE [--n 1]        products under a budget, then the budget
                                                         changed up and down; time per resident block
                                                         against 1-bit and 4-bit LUT products
Sizes: bytes, or 64MB, 1.5GiB, 512k (KB/MB/GB decimal, KiB/MiB/GiB binary).
.npy files: 2-D float32, as numpy.save writes them.
"""

func parseSize(_ s: String) throws -> Int {
    let lower = s.lowercased()
    let units: [(String, Double)] = [("gib", 1_073_741_824), ("mib", 1_048_576), ("kib", 1024), ("gb", 1e9),
                                     ("mb", 1e6),
                                     ("kb", 1e3), ("g", 1e9), ("m", 1e6), ("k", 1e3), ("b", 1)]
    for (suffix, scale) in units where lower.hasSuffix(suffix) {
        guard let v = Double(lower.dropLast(suffix.count).trimmingCharacters()), v >= 0, v * scale < 9e18 else { break }
        return Int(v * scale)
    }
    guard let v = Int(lower), v >= 0 else { throw CLIError("not a size: '\(s)' (use bytes, or e.g. 64MB, 1.5GiB)") }
    return v
}

extension Substring {
    func trimmingCharacters() -> String { String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()) }
}

func runStack(_ args: Arguments) throws {
    guard args.words.count >= 2 else { print(stackUsage); throw CLIError("stack: missing subcommand") }
    switch args.words[1] {
    case "build": try stackBuild(args)
    case "inspect": try stackInspect(args)
    case "run": try stackRun(args)
    default: print(stackUsage); throw CLIError("unknown stack subcommand '\(args.words[1])'")
    }
}

/// Progress on stderr: a bar redrawn in place on a terminal; into a file or pipe, a plain line at
/// the start, at each tenth of the work and at the end, so logs stay readable.
func progressBar(_ done: Int, _ total: Int, _ label: String) {
    if isatty(2) != 0 {
        let width = 30, filled = total > 0 ? min(done, total) * width / total : width
        fputs("\r\(label) [\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] "
              + "\(done)/\(total)", stderr)
        if done == total { fputs("\n", stderr) }
    } else if done <= 1 || done == total || (total >= 10 && done * 10 / total != (done - 1) * 10 / total) {
        fputs("\(label): \(done)/\(total)\n", stderr)
    }
}

/// A line saying what a long step is doing, on stderr.
func status(_ message: String) {
    fputs("\(message)\n", stderr)
}

func stackBuild(_ args: Arguments) throws {
    try args.allow(["blocks", "rank", "factor-share", "calibration", "random", "threads", "model", "with-output",
                    "sensitivity-text", "sensitivity-level", "sensitivity-tokens", "calibration-text",
                    "sensitivity-cache", "max-lead", "raw-sensitivity"])
    guard args.words.count >= 3 else { throw CLIError("stack build: give the output path\n\(stackUsage)") }
    let out = args.words[2]
    // Sensitivity options are checked before the decomposition runs.
    let maxLead = try args.int("max-lead", default: 1)
    guard maxLead >= 1 else { throw CLIError("--max-lead must be 1 or more") }
    let level = try args.int("sensitivity-level", default: 3)
    var cachedSensitivity = try args.options["sensitivity-cache"].map(readSensitivityCache) ?? []
    var tensors: [(String, [Float], Int, Int)] = []
    if let random = args.options["random"] {
        var rng = SplitMix64(seed: 7)
        for (i, (r, c)) in try parseShapes(random.split(separator: ",").map(String.init)).enumerated() {
            tensors.append(("random\(i).\(r)x\(c)", (0..<(r * c)).map { _ in rng.normal() * 0.02 }, r, c))
        }
    }
    if let model = args.options["model"] {
        let g = try GGUFFile(path: model)
        for t in g.tensors where t.dims.count == 2 && (t.name.hasSuffix("_q.weight") || t.name.hasSuffix("_k.weight")
                || t.name.hasSuffix("_v.weight") || t.name.hasSuffix("_output.weight") || t.name.hasPrefix("blk.")
                    && t.name.contains(".ffn_")
                || args.flags.contains("with-output") && (t.name == "token_embd.weight" || t.name == "output.weight")) {
            tensors.append((t.name, try g.dequantized(t), t.rows, t.cols))
        }
    }
    for spec in args.words.dropFirst(3) {
        guard let eq = spec.firstIndex(of: "=") else { throw CLIError("expected NAME=FILE.npy, got '\(spec)'") }
        let (values, r, c) = try NPYFile.load(String(spec[spec.index(after: eq)...]))
        tensors.append((String(spec[..<eq]), values, r, c))
    }
    guard !tensors.isEmpty else { throw CLIError("stack build: no tensors (NAME=FILE.npy or --random)") }
    var calibration: [String: ([Float], Int)] = [:]
    if let textPath = args.options["calibration-text"] {
        guard let model = args.options["model"] else { throw CLIError("--calibration-text needs --model") }
        let text = String(decoding: try FileIO.read(textPath), as: UTF8.self)
        for (name, recorded) in try CalibrationActivations.record(modelPath: model, text: text) {
            calibration[name] = recorded
        }
    }
    for spec in args.strings("calibration", default: []) {
        guard let eq = spec.firstIndex(of: "=") else {
            throw CLIError("expected NAME=FILE.npy in --calibration, got '\(spec)'")
        }
        let name = String(spec[..<eq]), path = String(spec[spec.index(after: eq)...])
        let (values, samples, cols) = try NPYFile.load(path)
        // Calibration rows are inputs of the tensor: as many columns as its weights.
        guard let tensor = tensors.first(where: { $0.0 == name }) else {
            throw CLIError("--calibration names '\(name)', which is not among the tensors being stacked")
        }
        guard cols == tensor.3 else {
            throw CLIError("\(path): calibration for '\(name)' has \(cols) columns, its weights have \(tensor.3)")
        }
        calibration[name] = (values, samples)
    }
    var options = StackBuilder.Options()
    options.blocks = try args.int("blocks", default: 16)
    options.maxRank = try args.int("rank", default: 16)
    if let share = args.options["factor-share"] {
        guard let v = Double(share), v > 0 else { throw CLIError("--factor-share expects a positive number") }
        options.factorShare = v
    }
    let t0 = monotonicSeconds()
    let matrices = try withPointers(tensors.map(\.1)) { weights in
        try withPointers(tensors.map { calibration[$0.0]?.0 ?? [] }) { calib in
            let inputs = tensors.indices.map { i in
                StackBuilder.Input(name: tensors[i].0, weights: weights[i], rows: tensors[i].2, cols: tensors[i].3,
                                   calibration: calibration[tensors[i].0].map { (calib[i], $0.1) })
            }
            return try StackBuilder.build(inputs, path: out, options: options) { done, total in
                progressBar(done, total, "decomposing")
            }
        }
    }
    var seconds = monotonicSeconds() - t0
    var orderNote = "naive order"
    if let textPath = args.options["sensitivity-text"] {
        guard let model = args.options["model"] else { throw CLIError("--sensitivity-text needs --model") }
        guard (2...options.blocks).contains(level) else {
            throw CLIError("--sensitivity-level must be 2...\(options.blocks)")
        }
        let text = String(decoding: try FileIO.read(textPath), as: UTF8.self)
        let t1 = monotonicSeconds()
        let measured = cachedSensitivity.filter { $0.level == level }
        let increase: [String: Double]
        if !measured.isEmpty {
            increase = Dictionary(measured.map { ($0.name, $0.increase) }, uniquingKeysWith: { _, last in last })
        } else {
            increase = try StackSensitivity.lossIncrease(modelPath: model, stack: try Stack(path: out, budget: Int.max),
                                                         level: level,
                                                         text: text,
                                                         tokens: try args.int("sensitivity-tokens",
                                                                              default: 128)) { done, total in
                progressBar(done, total, "sensitivity")
            }
            if let cache = args.options["sensitivity-cache"] {
                // Other levels' measurements stay in the file.
                cachedSensitivity += increase.sorted { $0.key < $1.key }.map {
                    (name: $0.key, level: level, increase: $0.value)
                }
                let lines = cachedSensitivity.map { "\($0.name) \($0.level) \($0.increase)" }
                try FileIO.writeAtomically(Array((lines.joined(separator: "\n") + "\n").utf8), to: cache)
            }
        }
        let smoothed = args.flags.contains("raw-sensitivity") ? increase : StackSensitivity.smoothed(increase)
        options.sensitivity = StackBuilder.sensitivities(matrices, lossIncrease: smoothed, level: level)
        options.maxLead = maxLead
        try StackBuilder.write(matrices, path: out, options: options)
        orderNote = "sensitivity order (\(increase.count) tensors measured at level \(level) in "
                    + "\(fmt(monotonicSeconds() - t1, 1)) s)"
        seconds = monotonicSeconds() - t0
    }
    print("wrote \(out): \(matrices.count) tensors, \(options.blocks) blocks each, \(orderNote), in "
          + "\(fmt(seconds, 1)) s")
    print("tensor                          shape          rank  block bytes  bits/w per block  error after 1 / 2 / 4 / "
          + "all blocks")
    for m in matrices {
        let e = m.errors
        let picks = [0, 1, 3, e.count - 1].filter { $0 < e.count }.map { sci(e[$0]) }.joined(separator: " / ")
        print("\(m.name.padded(31)) \("\(m.rows)x\(m.cols)".padded(14)) \(String(m.rank).padded(5)) "
              + "\(String(m.blockBytes).padded(12)) "
              + "\(fmt(Double(m.blockBytes) * 8 / Double(m.rows * m.cols), 3).padded(17)) \(picks)")
    }
}

/// Runs body with stable base pointers of several arrays.
func withPointers<R>(_ arrays: [[Float]], _ body: ([UnsafePointer<Float>]) throws -> R) rethrows -> R {
    var pointers: [UnsafePointer<Float>] = []
    func step(_ i: Int) throws -> R {
        if i == arrays.count { return try body(pointers) }
        return try arrays[i].withUnsafeBufferPointer { p in
            pointers.append(p.baseAddress ?? UnsafePointer(bitPattern: 64)!)
            defer { pointers.removeLast() }
            return try step(i + 1)
        }
    }
    return try step(0)
}

/// Loss increases measured earlier (lines "name level increase"); none if the file does not
/// exist yet. A malformed file is an error, not something to overwrite.
func readSensitivityCache(_ path: String) throws -> [(name: String, level: Int, increase: Double)] {
    guard access(path, F_OK) == 0 else { return [] }
    return try String(decoding: try FileIO.read(path), as: UTF8.self).split(separator: "\n").map { line in
        let f = line.split(separator: " ")
        guard f.count == 3, let level = Int(f[1]), (1...64).contains(level), let v = Double(f[2]), v.isFinite else {
            throw CLIError("bad sensitivity cache line '\(line.prefix(80))' in \(path)")
        }
        return (String(f[0]), level, v)
    }
}

func stackInspect(_ args: Arguments) throws {
    try args.allow(["verify"])
    guard args.words.count >= 3 else { throw CLIError("stack inspect: give the stack file") }
    let path = args.words[2]
    let index = try Stack.readIndex(path)
    let weights = index.tensors.reduce(0) { $0 + $1.rows * $1.cols }
    print("\(path): \(index.tensors.count) tensors, \(index.blocks.count) blocks, "
          + "\(formatBytes(index.dataOffset + index.dataBytes)) (\(weights) weights)")
    for (key, value) in index.metadata {
        switch value {
        case .u64(let v): print("  \(key) = \(v)")
        case .string(let v): print("  \(key) = \(v)")
        }
    }
    print("tensor                          shape          rank  blocks  bytes/block  bits/w per block")
    for t in index.tensors {
        print("\(t.name.padded(31)) \("\(t.rows)x\(t.cols)".padded(14)) \(String(t.rank).padded(5)) "
              + "\(String(t.blocks).padded(7)) \(String(Stack.memoryBytes(t)).padded(12)) "
              + "\(fmt(Double(Stack.memoryBytes(t)) * 8 / Double(t.rows * t.cols), 3))")
    }
    // The size curve: resident bytes for growing prefixes of the stack.
    print("size curve (resident bytes for the first B blocks of the stack):")
    print("  blocks  resident     bits/weight  blocks per tensor (min-max)")
    var bytes = index.dataOffset
    var perTensor = [Int](repeating: 0, count: index.tensors.count)
    let marks = Set(stride(from: index.tensors.count, through: index.blocks.count,
                           by: max(1, (index.blocks.count - index.tensors.count) / 16)) + [index.blocks.count])
    for (i, e) in index.blocks.enumerated() {
        bytes += Stack.memoryBytes(index.tensors[e.tensor])
        perTensor[e.tensor] += 1
        if marks.contains(i + 1) {
            print("  \(String(i + 1).padded(7)) \(formatBytes(bytes).padded(12)) "
                  + "\(fmt(Double(bytes) * 8 / Double(weights), 3).padded(12)) \(perTensor.min()!)-\(perTensor.max()!)")
        }
    }
    if args.flags.contains("verify") {
        let s = try Stack(path: path, budget: Stack.minimumBudget(index))
        try s.verifyAllBlocks()
        print("verified: every block's checksum matches (\(formatBytes(s.bytesRead)) read)")
    }
}

func stackRun(_ args: Arguments) throws {
    try args.allow(["budget", "n", "threads"])
    guard args.words.count >= 3, let budgetText = args.options["budget"] else {
        throw CLIError("stack run: give FILE.lbs --budget SIZE")
    }
    let path = args.words[2]
    let n = try args.int("n", default: 1)
    guard n > 0 else { throw CLIError("--n must be positive") }
    var t0 = monotonicSeconds()
    let s = try Stack(path: path, budget: try parseSize(budgetText))
    print("opened \(path) under \(formatBytes(try parseSize(budgetText))) in \(formatTime(monotonicSeconds() - t0)): "
          + "resident \(formatBytes(s.residentBytes)) (minimum \(formatBytes(s.minimumBytes)), all "
          + "\(formatBytes(s.totalBytes))), \(s.residentBlockCount)/\(s.index.blocks.count) blocks, "
          + "\(formatBytes(s.bytesRead)) read")
    print("tensor                          shape          blocks  product      per block    per block / 1-bit LUT  "
          + "/ 4-bit LUT")
    var rng = SplitMix64(seed: 3)
    for t in s.index.tensors {
        let x = (0..<(n * t.cols)).map { _ in rng.normal() }
        var y = [Float](repeating: 0, count: n * t.rows)
        let time = try x.withUnsafeBufferPointer { xp in
            try y.withUnsafeMutableBufferPointer { yp in
                try medianSeconds(repeats: 5) { try s.multiply(t.name, xp.baseAddress!, n: n, into: yp.baseAddress!) }
            }
        }
        let blocks = try s.blocks(t.name).resident
        // The same shape through the LUT family, 1-bit and 4-bit, for scale.
        var lut: [Double] = []
        for bits in [1, 4] {
            let w = (0..<(t.rows * t.cols)).map { _ in rng.normal() }
            let m = try w.withUnsafeBufferPointer {
                try Quantizer.quantize($0.baseAddress!, rows: t.rows, cols: t.cols, type: .integer(bits: bits),
                                       groupSize: [128, 64, 32].first { t.cols % $0 == 0 }!, symmetric: false)
            }
            try m.prepare(.lut)
            lut.append(try x.withUnsafeBufferPointer { xp in
                try y.withUnsafeMutableBufferPointer { yp in
                    try medianSeconds(repeats: 5) {
                        try m.multiply(xp.baseAddress!, n: n, into: yp.baseAddress!, kernel: .lut)
                    }
                }
            })
        }
        let perBlock = time / Double(blocks)
        print("\(t.name.padded(31)) \("\(t.rows)x\(t.cols)".padded(14)) \(String(blocks).padded(7)) "
              + "\(formatTime(time).padded(12)) \(formatTime(perBlock).padded(12)) "
              + "\(fmt(perBlock / lut[0], 2).padded(22)) \(fmt(perBlock / lut[1], 2))")
    }
    // Budget changes: up to everything, back down, and up again: only the difference moves.
    for target in [s.totalBytes, s.minimumBytes, s.totalBytes] {
        let before = s.bytesRead, blocksBefore = s.residentBlockCount
        t0 = monotonicSeconds()
        try s.setBudget(target)
        print("budget -> \(formatBytes(target)): \(blocksBefore) -> \(s.residentBlockCount) blocks in "
              + "\(formatTime(monotonicSeconds() - t0)), \(formatBytes(s.bytesRead - before)) read, resident "
              + "\(formatBytes(s.residentBytes))")
    }
}
