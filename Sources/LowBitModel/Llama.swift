#if canImport(Glibc)
import Glibc
#endif
import LowBit
import Synchronization

/// How the runner holds the linear layers (every q, k, v, o, gate, up, down and the output).
public enum WeightChoice: Sendable, CustomStringConvertible {
    /// The file's own weights dequantized to Float32: the reference model.
    case reference
    /// The file's own blocks, imported without requantization (`FileTensorHolding`): Q4_0, Q4_1,
    /// Q4_K, Q5_0, Q5_1, Q5_K, TQ1_0 and TQ2_0 as lowbit matrices of their codes, Q8_0 on its own
    /// blocks, Q2_K, Q3_K, Q6_K and IQ4 as int8 values with their scales, float types as Float32
    /// (the exact values, in every case). `auto` is the dequant family
    /// here, at every activation precision (LUT tables would round otherwise than the precision
    /// asked for). `activationBits` nil: 16 where the kernel takes it (dequant, with two int8
    /// passes, so the model agrees with the reference token by token), else the kernel's int8;
    /// 8 rounds activations to int8 as llama.cpp does (about 0.07 mean |Δ log p| per token on
    /// SmolLM2).
    case q4_1(kernel: KernelFamily, activationBits: Int? = nil)
    /// Requantized from the reference weights; with `calibration` text, calibrated on the
    /// inputs each layer sees on that text: activation-aware scales (`ActivationAwareScaling`),
    /// then rounding with error feedback (`ErrorFeedback`).
    case requantized(type: WeightType, groupSize: Int, kernel: KernelFamily, calibration: String? = nil)
    /// A BitStack of the model under a memory budget.
    case stack(path: String, budget: Int)

    /// The kernel and activation precision `.q4_1` runs with (see there).
    public static func q4_1Kernel(_ kernel: KernelFamily, activationBits: Int?) throws -> (KernelFamily, Int) {
        let family = kernel == .auto ? KernelFamily.dequant : kernel
        switch activationBits {
        case nil: return (family, family == .dequant ? 16 : 8)
        case 8?: return (family, 8)
        case let a? where (a == 16 || a == 32) && family == .dequant: return (.dequant, a)
        case let a?:
            throw LowBitError(.unsupported,
                              "activation bits \(a) with the \(kernel) kernel: use 8, or 16 / 32 with the dequant (or "
                              + "auto) kernel")
        }
    }

    public var description: String {
        switch self {
        case .reference: return "reference"
        case .q4_1(let k, let a):
            let (kernel, bits) = (try? WeightChoice.q4_1Kernel(k, activationBits: a)) ?? (k, a ?? 8)
            return "the file's own blocks (\(kernel), \(bits)-bit activations)"
        case .requantized(let t, let g, let k, let c): return "\(t) g\(g)\(c == nil ? "" : " calibrated") (\(k))"
        case .stack(let p, let b): return "stack \(p) @ \(b) B"
        }
    }
}

/// How `--weights file` (`WeightChoice.q4_1`) holds a linear layer's tensor of each ggml type:
/// the loader's rule, which `lowbit gguf` reports per type.
public enum FileTensorHolding: Sendable, Equatable {
    /// Types whose groups of 32 are scale·q + offset (`GGMLBlocks.integerGroupBits`: Q4_0, Q4_1,
    /// Q4_K at 4 bits, Q5_0, Q5_1, Q5_K at 5, TQ1_0 and TQ2_0 at 2): lowbit codes of that width,
    /// group size 32, with the blocks' own scales and minimums.
    case lowbitCodes(bits: Int)
    /// Q2_K, Q3_K, Q6_K (groups of 16) and IQ4_NL, IQ4_XS, Q8_0 (groups of 32): the file's
    /// blocks, decoded as products reach them (`GroupedBlockLinear`).
    case groupedBlocks(groupSize: Int)
    /// Every other type (F32, F16, BF16): its exact Float32 values (no requantization).
    case float32

    public init(_ type: GGUFFile.TensorType) {
        if let bits = GGMLBlocks.integerGroupBits(type) {
            self = .lowbitCodes(bits: bits)
        } else if let grouped = GGMLBlocks.groupedBlockType(type) {
            self = .groupedBlocks(groupSize: grouped.groupSize)
        } else {
            self = .float32
        }
    }

    /// What the holding is and which kernels run it, said plainly.
    public var description: String {
        switch self {
        case .lowbitCodes(let bits):
            return "lowbit \(bits)-bit codes, group size 32, as stored (kernel families lut, bitserial, dequant; "
                + "auto: dequant with 16-bit activations)"
        case .groupedBlocks(let groupSize):
            return "its own blocks, a scale per \(groupSize), decoded as products read them "
                + "(int8 x int8 kernel; 16-bit activations in two passes, Q8_0's as floats; prompts: float panels)"
        case .float32: return "exact Float32 values (float kernel)"
        }
    }
}

/// A Llama-family model (`Architecture`: SmolLM2, Llama 3, Qwen2, Qwen3; Llama 2 and Mistral files
/// too, once their SentencePiece tokenizer is supported) whose linear layers are lowbit matrices.
public final class LlamaModel: @unchecked Sendable {
    public let config: LlamaConfig
    public let tokenizer: Tokenizer
    public let choice: WeightChoice
    public let chatTemplate: String?
    /// The file is a lowbit model (`ModelFile`): its linear layers are lowbit matrices.
    public let isLowbitModelFile: Bool
    struct Layer {
        let attnNorm: [Float], ffnNorm: [Float]
        var q: Linear, k: Linear, v: Linear, o: Linear, gate: Linear, up: Linear, down: Linear
        /// Biases added to q, k and v (empty where the file has none).
        let qBias: [Float], kBias: [Float], vBias: [Float]
        /// Per-head RMSNorm weights of queries and keys (qwen3; empty elsewhere).
        let qNorm: [Float], kNorm: [Float]
    }
    /// Mutable only through `replaceLinear`, which stack sensitivity uses before any forward runs.
    private(set) var layers: [Layer]
    let outputNorm: [Float]
    private(set) var output: Linear
    /// The output projection's tensor: token_embd.weight when tied, else output.weight.
    let outputName: String
    /// token_embd as stored (its ggml type) for row lookups, unless `embeddingFromOutput`.
    let embeddingBytes: [UInt8]
    let embeddingType: GGUFFile.TensorType
    /// A tied output that gives back its rows (requantized, or the file's blocks): the embedding
    /// table is this layer's weights (`embeddingBytes` empty).
    let embeddingFromOutput: (any RowLookup)?
    public let stack: Stack?
    /// An elastic model file's laddered layers (`ModelFile.levels`), in file mode.
    public let elastic: ElasticWeights?
    /// Rotary embedding's angle per position for each pair i < headDim / 2: base^(-2i/d), divided
    /// by Llama 3's per-pair factors (`rope_freqs`) and by the linear scaling factor.
    let ropeFrequencies: [Float]

    /// How the weights are held, said plainly (`WeightChoice`, or a lowbit model file's matrices).
    public var weightsDescription: String {
        guard isLowbitModelFile, case .q4_1(let kernel, let bits) = choice else { return choice.description }
        let level = elastic.map { e in ", elastic: level \(e.level.map { $0 + 1 } ?? 0) of \(e.levelCount)" } ?? ""
        return "the file's lowbit matrices (\(kernel), \(bits ?? 8)-bit activations\(level))"
    }

    /// Linear-layer names of a layer, as in the GGUF file.
    public static let linearNames = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]

    /// The tensor whose input rows `name` sees: this runner gives k and v the rows of q, and up
    /// those of gate (one normed input each); any other tensor sees its own.
    static func inputSource(_ name: String) -> String {
        let parts = name.split(separator: ".")
        guard parts.count == 4,
              let source = ["attn_k": "attn_q", "attn_v": "attn_q", "ffn_up": "ffn_gate"][String(parts[2])] else {
            return name
        }
        return "blk.\(parts[1]).\(source).weight"
    }

    /// Calibrated requantization records this many tokens of the calibration text: 1024 gave
    /// clearly lower perplexity than 256 on SmolLM2, and costs seconds.
    public static let calibrationTokens = 1024

    public static func load(path: String, weights: WeightChoice, budget: Int? = nil) throws -> LlamaModel {
        try LlamaModel(gguf: try GGUFFile(path: path), weights: weights, budget: budget)
    }

    /// `budget`: bytes of weights an elastic model file holds in file mode (nil: its largest
    /// level); any other model takes none (a stack's is in its `WeightChoice`).
    public init(gguf g: GGUFFile, weights: WeightChoice, budget: Int? = nil) throws {
        config = try LlamaConfig(g)
        tokenizer = try Tokenizer(gguf: g)
        choice = weights
        chatTemplate = g.metadata["tokenizer.chat_template"]?.stringValue
        isLowbitModelFile = g.metadata[ModelFile.versionKey] != nil
        let c = config
        func f32(_ name: String, count: Int) throws -> [Float] {
            let t = try g.tensor(name)
            guard t.elementCount == count else {
                throw LowBitError(.badFormat, "GGUF model: '\(name)' has \(t.elementCount) elements, expected \(count)")
            }
            return try g.dequantized(t)
        }
        // Metadata must describe the tensors: a layer beyond block_count would be dropped silently.
        for t in g.tensors where t.name.hasPrefix("blk.") {
            let layer = t.name.split(separator: ".", maxSplits: 2).dropFirst().first.flatMap { Int($0) }
            guard let layer, layer < c.layers else {
                throw LowBitError(.badFormat, "GGUF model: tensor '\(t.name)' is outside "
                                              + "\(c.architecture).block_count = \(c.layers)")
            }
        }
        // The embedding's shape bounds the vocabulary x width scratch below by the file's size.
        let embd = try ModelFile.shape(g, "token_embd.weight")
        guard embd.rows == c.vocabulary, embd.cols == c.embedding else {
            throw LowBitError(.badFormat, "GGUF model: token_embd.weight is \(embd.rows) x \(embd.cols), "
                                          + "the metadata says \(c.vocabulary) tokens of width \(c.embedding)")
        }
        // Tied embeddings: the output projection is token_embd unless the file has output.weight.
        let outputName = g.contains("output.weight") || ModelFile.holds(g, "output.weight")
            ? "output.weight" : "token_embd.weight"
        self.outputName = outputName
        var stack: Stack? = nil
        if case .stack(let path, let budget) = weights {
            let opened = try Stack(path: path, budget: budget)
            try LlamaModel.checkStackTensors(opened, layers: c.layers, outputName: outputName)
            stack = opened
        }
        var quantizer: ModelQuantizer? = nil
        if case .requantized(_, _, _, let text) = weights {
            quantizer = try ModelQuantizer(file: g, calibrationText: text)
        }
        self.stack = stack
        var elastic: ElasticWeights? = nil
        // An elastic file's tables are checked whatever the mode; file mode holds its levels.
        if let levels = try isLowbitModelFile ? ModelFile.levels(g) : nil, case .q4_1(let kernel, let bits) = weights {
            // Rungs run as a static model file's matrices do: `auto` measured, int8 activations.
            let (family, activationBits) = bits == nil
                ? (kernel, 8) : try WeightChoice.q4_1Kernel(kernel, activationBits: bits)
            elastic = try ElasticWeights(file: g, levels: levels, kernel: family, activationBits: activationBits)
        }
        guard budget == nil || elastic != nil else {
            throw LowBitError(.invalidArgument, "a budget applies to an elastic model file (lowbit quantize --elastic) "
                                                + "in file mode, or to a stack")
        }
        self.elastic = elastic
        func linear(_ name: String, rows: Int, cols: Int) throws -> Linear {
            if let laddered = try elastic?.linear(name, rows: rows, cols: cols) { return laddered }
            let shape = try ModelFile.shape(g, name)
            guard shape.rows == rows, shape.cols == cols else {
                throw LowBitError(.badFormat,
                                  "GGUF model: '\(name)' is \(shape.rows) x \(shape.cols), expected \(rows) x \(cols)")
            }
            if ModelFile.holds(g, name) {
                switch weights {
                case .reference:
                    return try FloatLinear(ModelFile.referenceWeights(g, name), rows: rows, cols: cols)
                case .q4_1(let kernel, let activationBits):
                    // The file's own matrices run as requantized ones do: `auto` measured, int8
                    // activations unless asked otherwise.
                    let (family, bits) = activationBits == nil
                        ? (kernel, 8) : try WeightChoice.q4_1Kernel(kernel, activationBits: activationBits)
                    let (m, scales) = try ModelFile.matrix(g, name)
                    return try QuantizedLinear(m, kernel: family, inputScales: scales, activationBits: bits)
                case .requantized, .stack: break
                }
            }
            switch weights {
            case .reference:
                return try FloatLinear(g.dequantized(try g.tensor(name)), rows: rows, cols: cols)
            case .q4_1(let kernel, let activationBits):
                // Types not yet imported into lowbit's formats keep their blocks or their exact
                // values: this mode promises not to requantize.
                let t = try g.tensor(name)
                switch FileTensorHolding(t.type) {
                case .lowbitCodes:
                    let (family, bits) = try WeightChoice.q4_1Kernel(kernel, activationBits: activationBits)
                    let m = try g.withTensorBytes(t) {
                        try Importer.ggmlBlocks($0, type: t.type, rows: rows, cols: cols)
                    }
                    return try QuantizedLinear(m, kernel: family, activationBits: bits)
                case .groupedBlocks:
                    let (_, bits) = try WeightChoice.q4_1Kernel(kernel, activationBits: activationBits)
                    return try g.withTensorBytes(t) {
                        try GroupedBlockLinear(type: t.type, blocks: $0, rows: rows, cols: cols, activationBits: bits)
                    }
                case .float32:
                    return try FloatLinear(g.dequantized(t), rows: rows, cols: cols)
                }
            case .requantized(let type, let groupSize, let kernel, _):
                let t = ModelQuantizer.uniformType(type, isOutput: name == outputName)
                let (m, scales) = try quantizer!.quantize(name, type: t, groupSize: groupSize)
                return try QuantizedLinear(m, kernel: kernel, inputScales: scales)
            case .stack:
                return try StackLinear(stack!, name: name, rows: rows, cols: cols)
            }
        }
        // Vectors an architecture needs, or that a file may hold (biases): empty when absent.
        func vector(_ name: String, count: Int, required: Bool) throws -> [Float] {
            required || g.contains(name) ? try f32(name, count: count) : []
        }
        let e = c.embedding, qw = c.queryWidth, kw = c.keyWidth, arch = c.architecture
        // The output first: it is the largest matrix, and the layouts `auto` packs to time it
        // then come and go before the layers are resident, not on top of them (the load's peak).
        // The embedding table as stored is read once the output is made (a tied output that
        // gives back its rows then holds the table itself).
        let tableTensor = try? g.tensor("token_embd.weight")
        if case .stack = weights, (try? stack!.tensorNumber(outputName)) == nil {
            // A stack without the output: the output runs as a 4-bit lowbit matrix, on the LUT
            // kernel rather than `auto`: the LUT and dequant kernels take within a few percent of
            // each other on it, and timing at each load picked one or the other, so a budget's
            // perplexity moved in its last digits from run to run (32.19 or 32.30 on a chunk).
            let (m, _) = try ModelQuantizer(file: g, calibrationText: nil)
                .quantize(outputName, type: .integer(bits: 4), groupSize: 32)
            output = try QuantizedLinear(m, kernel: .lut)
        } else {
            output = try linear(outputName, rows: c.vocabulary, cols: e)
        }
        var layers: [Layer] = []
        for i in 0..<c.layers {
            let p = "blk.\(i)."
            layers.append(Layer(attnNorm: try f32(p + "attn_norm.weight", count: e),
                                ffnNorm: try f32(p + "ffn_norm.weight", count: e),
                                q: try linear(p + "attn_q.weight", rows: qw, cols: e),
                                k: try linear(p + "attn_k.weight", rows: kw, cols: e),
                                v: try linear(p + "attn_v.weight", rows: kw, cols: e),
                                o: try linear(p + "attn_output.weight", rows: e, cols: qw),
                                gate: try linear(p + "ffn_gate.weight", rows: c.feedForward, cols: e),
                                up: try linear(p + "ffn_up.weight", rows: c.feedForward, cols: e),
                                down: try linear(p + "ffn_down.weight", rows: e, cols: c.feedForward),
                                qBias: try vector(p + "attn_q.bias", count: qw, required: arch.requiresQKVBiases),
                                kBias: try vector(p + "attn_k.bias", count: kw, required: arch.requiresQKVBiases),
                                vBias: try vector(p + "attn_v.bias", count: kw, required: arch.requiresQKVBiases),
                                qNorm: try vector(p + "attn_q_norm.weight", count: c.headDim,
                                                  required: arch.normsQueryAndKeyHeads),
                                kNorm: try vector(p + "attn_k_norm.weight", count: c.headDim,
                                                  required: arch.normsQueryAndKeyHeads)))
        }
        // Llama 3 stores a factor per rotated pair; each must be a positive finite number.
        let factors = try vector("rope_freqs.weight", count: c.headDim / 2, required: false)
        guard factors.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw LowBitError(.badFormat, "GGUF model: rope_freqs.weight holds a factor that is not a positive number")
        }
        ropeFrequencies = (0..<(c.headDim / 2)).map { i in
            let angle = pow(Double(c.ropeBase), -Double(2 * i) / Double(c.headDim)) / Double(c.ropeLinearScale)
            return Float(angle / Double(factors.isEmpty ? 1 : factors[i]))
        }
        self.layers = layers
        outputNorm = try f32("output_norm.weight", count: e)
        // Tied: token rows are read back from the output (its codes, or the file's blocks), as a
        // GGUF holds one token_embd for both uses.
        embeddingFromOutput = outputName == "token_embd.weight" ? output as? RowLookup : nil
        if embeddingFromOutput != nil {
            (embeddingBytes, embeddingType) = ([], .f32)
        } else if let tableTensor {
            (embeddingBytes, embeddingType) = (try g.withTensorBytes(tableTensor) { Array($0) },
                                               tableTensor.type)
        } else {
            // A lowbit model's tied table run on float weights (the reference): rows as Float32.
            let w = try ModelFile.referenceWeights(g, "token_embd.weight")
            (embeddingBytes, embeddingType) = (w.withUnsafeBytes { Array($0) }, .f32)
        }
        if let elastic {
            if let unused = elastic.names.first(where: { !elastic.made.withLock { $0 }.contains($0) }) {
                throw LowBitError(.badFormat, "lowbit model: '\(unused)' has a ladder but is no layer of this model")
            }
            elastic.fixedBytes = weightBytes
            try elastic.setBudget(budget ?? Int.max)
        }
        // The file's bytes and the layouts `auto` measured came and went through the allocator.
        AlignedBuffer.releaseFreeMemory()
    }

    /// A stack serves this model only if it holds every transformer linear layer and nothing
    /// but those and the output projection; shapes are checked as each layer is made.
    static func checkStackTensors(_ stack: Stack, layers: Int, outputName: String) throws {
        let needed = (0..<layers).flatMap { i in linearNames.map { "blk.\(i).\($0).weight" } }
        let held = Set(stack.index.tensors.map(\.name))
        if let missing = needed.first(where: { !held.contains($0) }) {
            throw LowBitError(.badFormat, "stack '\(stack.path)' has no tensor '\(missing)', which this model needs")
        }
        let allowed = Set(needed + [outputName])
        if let extra = stack.index.tensors.first(where: { !allowed.contains($0.name) }) {
            throw LowBitError(.badFormat, "stack '\(stack.path)' holds '\(extra.name)', which this model does not have")
        }
    }

    /// The linear layer of that GGUF name (a transformer layer's, or the output projection).
    func linear(_ name: String) throws -> Linear {
        var found: Linear? = nil
        try withLayerSlot(name) { found = $0 }
        return found!
    }

    /// Swaps one transformer linear layer (GGUF name such as "blk.3.ffn_up.weight") for another of
    /// the same shape. Not thread-safe: for tools that probe the model (stack sensitivity), not
    /// for a model that is serving.
    func replaceLinear(_ name: String, with linear: Linear) throws {
        try withLayerSlot(name) { old in
            guard old.rows == linear.rows, old.cols == linear.cols else {
                throw LowBitError(.invalidArgument,
                                  "'\(name)' is \(old.rows) x \(old.cols), not \(linear.rows) x \(linear.cols)")
            }
            old = linear
        }
    }

    private func withLayerSlot(_ name: String, _ body: (inout Linear) throws -> Void) throws {
        if name == outputName { return try body(&output) }
        let parts = name.split(separator: ".")
        guard parts.count == 4, parts[0] == "blk", parts[3] == "weight", let i = Int(parts[1]),
              layers.indices.contains(i) else {
            throw LowBitError(.invalidArgument, "no transformer linear layer named '\(name)'")
        }
        switch parts[2] {
        case "attn_q": try body(&layers[i].q)
        case "attn_k": try body(&layers[i].k)
        case "attn_v": try body(&layers[i].v)
        case "attn_output": try body(&layers[i].o)
        case "ffn_gate": try body(&layers[i].gate)
        case "ffn_up": try body(&layers[i].up)
        case "ffn_down": try body(&layers[i].down)
        default: throw LowBitError(.invalidArgument, "no transformer linear layer named '\(name)'")
        }
    }

    /// Bytes of weights held: every linear layer, the output, the embedding table and norms
    /// (a stack counts its resident bytes once).
    public var weightBytes: Int {
        var n = embeddingBytes.count + 4 * (outputNorm.count + layers.count * 2 * config.embedding)
            + output.byteCount
        for l in layers {
            n += [l.q, l.k, l.v, l.o, l.gate, l.up, l.down].reduce(0) { $0 + $1.byteCount }
            n += 4 * [l.qBias, l.kBias, l.vBias, l.qNorm, l.kNorm].reduce(0) { $0 + $1.count }
        }
        return n + (stack?.residentBytes ?? 0) + (elastic?.heldBytes ?? 0)
    }

    /// Seconds to read once every byte of weights a token's products stream (each linear layer's
    /// and the output's, `Linear.readWeights`), the median of `runs` reads after a warm-up one,
    /// on the current threads and tier; nil for a stack, whose resident blocks change with its
    /// budget. Generation's tok/s times this is its fraction of the memory roofline: 1 when a
    /// token costs no more than reading its weights.
    public func weightReadSeconds(runs: Int = 5) throws -> Double? {
        let linears = [output] + layers.flatMap { [$0.q, $0.k, $0.v, $0.o, $0.gate, $0.up, $0.down] }
        let fold = Atomic<UInt64>(0)
        for linear in linears {  // the warm-up, on this thread: finds a stack's nil and any error
            guard let v = try linear.readWeights() else { return nil }
            fold.bitwiseXor(v, ordering: .relaxed)
        }
        var times: [Double] = []
        for _ in 0..<max(1, runs) {
            // One job over all layers, each read whole by the thread that claims it (a job started
            // inside a job runs on its caller): the pool is dispatched once, as a plain read of
            // the bytes would be, not once per buffer. The warm-up threw whatever could throw.
            let t0 = monotonicSeconds()
            parallelChunks(linears.count, chunk: 1) { range in
                for i in range { fold.bitwiseXor((try? linears[i].readWeights()) ?? 0, ordering: .relaxed) }
            }
            times.append(monotonicSeconds() - t0)
        }
        LlamaModel.readFold.store(fold.load(ordering: .relaxed), ordering: .relaxed)  // the reads' result is used
        return times.sorted()[times.count / 2]
    }

    private static let readFold = Atomic<UInt64>(0)

    /// Moves an elastic model file's level or a stack's resident blocks to fit `bytes` of weights.
    public func setBudget(_ bytes: Int) throws {
        if let elastic { return try elastic.setBudget(bytes) }
        guard let stack else {
            throw LowBitError(.invalidArgument,
                              "this model is neither an elastic model file nor a BitStack: there is no budget to set")
        }
        try stack.setBudget(bytes)
    }

    func embed(_ token: Int, into out: UnsafeMutablePointer<Float>) {
        if let table = embeddingFromOutput { return table.weights(row: token, into: out) }
        let e = config.embedding
        let (elements, bytes) = embeddingType.block
        let rowBytes = e / elements * bytes
        embeddingBytes.withUnsafeBytes { raw in
            GGMLBlocks.decode(embeddingType, raw.baseAddress! + token * rowBytes, blocks: e / elements, into: out)
        }
    }

    public func makeCache(capacity: Int) -> KVCache { KVCache(config: config, capacity: capacity) }

    /// Runs `tokens` at positions cache.count ..< cache.count + n, appending to the cache, and
    /// returns the logits (vocabulary floats per row) of the rows in `logitRows`. `trace`, if
    /// given, sees the hidden states (n × embedding) after the embedding (0) and after each
    /// layer (1 ... layers): how independent implementations check this one layer by layer.
    public func forward(_ tokens: [Int], cache: KVCache, logitRows: Range<Int>? = nil,
                        trace: ((Int, [Float]) -> Void)? = nil) throws -> [Float] {
        let c = config, n = tokens.count, e = c.embedding, qw = c.queryWidth, kw = c.keyWidth
        guard n > 0 else { return [] }
        guard cache.count + n <= cache.capacity else {
            throw LowBitError(.invalidArgument,
                              "context full: \(cache.count) + \(n) tokens exceed the cache of \(cache.capacity)")
        }
        for t in tokens where t < 0 || t >= c.vocabulary {
            throw LowBitError(.invalidArgument, "token id \(t) is outside the vocabulary")
        }
        let start = cache.count
        var x = [Float](repeating: 0, count: n * e)
        x.withUnsafeMutableBufferPointer { xp in
            for (i, t) in tokens.enumerated() { embed(t, into: xp.baseAddress! + i * e) }
        }
        trace?(0, x)
        var h = [Float](repeating: 0, count: n * e), q = [Float](repeating: 0, count: n * qw)
        var k = [Float](repeating: 0, count: n * kw), v = [Float](repeating: 0, count: n * kw)
        var attn = [Float](repeating: 0, count: n * qw), o = [Float](repeating: 0, count: n * e)
        var gate = [Float](repeating: 0, count: n * c.feedForward), up = [Float](repeating: 0, count: n * c.feedForward)
        for (li, layer) in layers.enumerated() {
            rmsNorm(x, layer.attnNorm, into: &h, rows: n)
            try layer.q.forward(h, n: n, into: &q)
            try layer.k.forward(h, n: n, into: &k)
            try layer.v.forward(h, n: n, into: &v)
            addBias(layer.qBias, to: &q)
            addBias(layer.kBias, to: &k)
            addBias(layer.vBias, to: &v)
            normHeads(&q, layer.qNorm)
            normHeads(&k, layer.kNorm)
            rope(&q, heads: c.heads, rows: n, start: start)
            rope(&k, heads: c.kvHeads, rows: n, start: start)
            cache.store(layer: li, start: start, keys: k, values: v, rows: n)
            attention(q, cache: cache, layer: li, start: start, rows: n, into: &attn)
            try layer.o.forward(attn, n: n, into: &o)
            for i in 0..<(n * e) { x[i] += o[i] }
            rmsNorm(x, layer.ffnNorm, into: &h, rows: n)
            try layer.gate.forward(h, n: n, into: &gate)
            try layer.up.forward(h, n: n, into: &up)
            swiGLU(&gate, up)
            try layer.down.forward(gate, n: n, into: &o)
            for i in 0..<(n * e) { x[i] += o[i] }
            trace?(li + 1, x)
        }
        cache.count += n
        let rows = logitRows ?? (n - 1)..<n
        guard !rows.isEmpty else { return [] }
        var last = [Float](repeating: 0, count: rows.count * e)
        rmsNorm(Array(x[(rows.lowerBound * e)..<(rows.upperBound * e)]), outputNorm, into: &last, rows: rows.count)
        var logits = [Float](repeating: 0, count: rows.count * c.vocabulary)
        try output.forward(last, n: rows.count, into: &logits)
        return logits
    }

    /// gate ← silu(gate) · up, over the thread pool (n × feedForward exponentials per layer:
    /// serial, they held back 2-thread prompt processing), through the SIMD tier's `swiGLU`; in
    /// chunks, so that a worker woken late leaves its share to the caller instead of a wait.
    func swiGLU(_ gate: inout [Float], _ up: [Float]) {
        gate.withUnsafeMutableBufferPointer { gp in
            up.withUnsafeBufferPointer { upp in
                let g = gp.baseAddress!, u = upp.baseAddress!
                parallelChunks(gp.count, chunk: 64) { range in
                    Tiers.active.swiGLU(g + range.lowerBound, u + range.lowerBound, count: range.count)
                }
            }
        }
    }

    func rmsNorm(_ x: [Float], _ w: [Float], into out: inout [Float], rows: Int) {
        let e = config.embedding
        for r in 0..<rows {
            var ss: Float = 0
            for i in 0..<e { ss += x[r * e + i] * x[r * e + i] }
            let scale = 1 / (ss / Float(e) + config.normEpsilon).squareRoot()
            for i in 0..<e { out[r * e + i] = x[r * e + i] * scale * w[i] }
        }
    }

    /// x[r, j] += bias[j] for every row r; nothing for an empty bias.
    func addBias(_ bias: [Float], to x: inout [Float]) {
        guard !bias.isEmpty else { return }
        for i in x.indices { x[i] += bias[i % bias.count] }
    }

    /// RMSNorm of every head (headDim values) of x with the weights w; nothing for empty w.
    func normHeads(_ x: inout [Float], _ w: [Float]) {
        guard !w.isEmpty else { return }
        let d = w.count
        for start in stride(from: 0, to: x.count, by: d) {
            var ss: Float = 0
            for i in start..<(start + d) { ss += x[i] * x[i] }
            let scale = 1 / (ss / Float(d) + config.normEpsilon).squareRoot()
            for i in 0..<d { x[start + i] *= scale * w[i] }
        }
    }

    /// Rotary embedding: pair i of each head turns by position × ropeFrequencies[i]. The pairs
    /// are adjacent values or values half a head apart (`Architecture.ropePairsAdjacent`).
    func rope(_ x: inout [Float], heads: Int, rows: Int, start: Int) {
        let d = config.headDim
        let (step, partner) = config.architecture.ropePairsAdjacent ? (2, 1) : (1, d / 2)
        for r in 0..<rows {
            let pos = Float(start + r)
            for i in 0..<(d / 2) {
                let theta = pos * ropeFrequencies[i]
                let cs = cos(theta), sn = sin(theta)
                for h in 0..<heads {
                    let base = (r * heads + h) * d + step * i
                    let a = x[base], b = x[base + partner]
                    x[base] = a * cs - b * sn
                    x[base + partner] = a * sn + b * cs
                }
            }
        }
    }

    func attention(_ q: [Float], cache: KVCache, layer: Int, start: Int, rows: Int, into out: inout [Float]) {
        let c = config, d = c.headDim, group = c.heads / c.kvHeads, kvDim = c.kvHeads * d
        let scale = 1 / Float(d).squareRoot()
        q.withUnsafeBufferPointer { qp in
            out.withUnsafeMutableBufferPointer { op in
                cache.keys[layer].withUnsafeBufferPointer { kp in
                    cache.values[layer].withUnsafeBufferPointer { vp in
                        // An item is a row's query heads sharing one key/value head, which then
                        // loads and widens those Float16 keys and values once for all of them.
                        // Decoding too, though a layer then has fewer items for the threads to
                        // share: widening each key once per query head cost more.
                        // Head-major items: a row's cost grows with its position (causal), so
                        // contiguous thread ranges over rows would leave the first thread idle.
                        let perItem = group, headItems = c.heads / perItem
                        parallelFor(rows * headItems) { item in
                            let r = item % rows, h = (item / rows) * perItem, kvh = h / group
                            let length = start + r + 1
                            withUnsafeTemporaryAllocation(of: Float.self, capacity: perItem * length) { scores in
                                Attention.attend(qp.baseAddress! + (r * c.heads + h) * d, queries: perItem,
                                                 keys: kp.baseAddress! + kvh * d,
                                                 values: vp.baseAddress! + kvh * d, stride: kvDim, length: length,
                                                 dim: d, scale: scale,
                                                 scores: scores.baseAddress!,
                                                 into: op.baseAddress! + (r * c.heads + h) * d)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Keys and values of every layer for positions 0 ..< count, as Float16 (`HalfFloats`): half the
/// memory of Float32 and half the bytes attention reads per token of context, at an error
/// (2⁻¹¹ relative) far below that of the weights' quantization.
public final class KVCache {
    public let capacity: Int
    public internal(set) var count = 0
    var keys: [[Float16]], values: [[Float16]]
    let kvDim: Int

    /// The cache grows with the tokens stored, not to `capacity` at once: a context length from
    /// a file (or a caller's token count) then never reserves more memory than the text uses.
    init(config: LlamaConfig, capacity: Int) {
        self.capacity = capacity
        kvDim = config.kvHeads * config.headDim
        keys = Array(repeating: [], count: config.layers)
        values = keys
    }

    func store(layer: Int, start: Int, keys k: [Float], values v: [Float], rows: Int) {
        let end = (start + rows) * kvDim, first = start * kvDim, count = rows * kvDim
        if keys[layer].count < end {
            keys[layer].append(contentsOf: repeatElement(0, count: end - keys[layer].count))
            values[layer].append(contentsOf: repeatElement(0, count: end - values[layer].count))
        }
        keys[layer].withUnsafeMutableBufferPointer { Tiers.active.halves(k, into: $0.baseAddress! + first,
                                                                          count: count) }
        values[layer].withUnsafeMutableBufferPointer { Tiers.active.halves(v, into: $0.baseAddress! + first,
                                                                            count: count) }
    }

    public func reset() { count = 0 }
}
