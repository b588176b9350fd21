import LowBit

/// The Llama-family architectures the runner runs, by their GGUF name. They share one forward
/// pass and differ in a few places, each a property here. Llama 2 and Mistral files say `llama`
/// too; their SentencePiece tokenizer is what keeps them from running (`Tokenizer`).
public enum Architecture: String, Sendable, CaseIterable {
    case llama, qwen2, qwen3

    /// Which pairs of a head's values rotary embedding turns together. llama.cpp's converter
    /// reorders llama's q and k rows so that the pairs are adjacent, (2i, 2i + 1); it leaves
    /// qwen's in the order they were trained in, whose pairs are (i, i + d/2).
    public var ropePairsAdjacent: Bool { self == .llama }

    /// Qwen3 normalizes each query and key head (RMSNorm over the head's values, weights
    /// `attn_q_norm` / `attn_k_norm`) before rotating it.
    public var normsQueryAndKeyHeads: Bool { self == .qwen3 }

    /// Qwen2 adds biases to q, k and v; a llama file may too (any of `attn_q.bias`, `attn_k.bias`,
    /// `attn_v.bias` a file holds is used).
    public var requiresQKVBiases: Bool { self == .qwen2 }
}

/// A model's shape and hyperparameters from its GGUF metadata (keys `ARCH.block_count` and so
/// on), each checked against limits a real model stays well inside, so nothing sized from them
/// can overflow or ask for absurd memory before the tensors themselves are checked.
public struct LlamaConfig: Sendable {
    public let architecture: Architecture
    public let layers, embedding, feedForward, heads, kvHeads, headDim, vocabulary, contextLength: Int
    public let ropeBase: Float, normEpsilon: Float
    /// Linear RoPE scaling: positions are divided by this factor (1 without scaling).
    public let ropeLinearScale: Float

    /// Width of all query heads together (q's rows, attn_output's columns). Qwen3's heads are
    /// wider than embedding / heads.
    public var queryWidth: Int { heads * headDim }
    /// Width of all key (and value) heads together.
    public var keyWidth: Int { kvHeads * headDim }

    public init(_ g: GGUFFile) throws {
        let name = g.metadata["general.architecture"]?.stringValue ?? "?"
        guard let architecture = Architecture(rawValue: name) else {
            let known = Architecture.allCases.map(\.rawValue).joined(separator: ", ")
            throw LowBitError(.unsupported, "architecture '\(name)' is not supported (this runner runs \(known))")
        }
        self.architecture = architecture
        func int(_ key: String, default value: Int? = nil) throws -> Int {
            let found = g.metadata["\(name).\(key)"]
            guard let v = found?.intValue ?? (found == nil ? value : nil), v > 0, v < 1 << 24 else {
                throw LowBitError(.badFormat, "GGUF model: missing or bad '\(name).\(key)'")
            }
            return v
        }
        func float(_ key: String, default value: Double, in range: ClosedRange<Double>) throws -> Float {
            let found = g.metadata["\(name).\(key)"]
            guard let v = found == nil ? value : found?.floatValue, range.contains(v) else {
                throw LowBitError(.badFormat, "GGUF model: '\(name).\(key)' must be a number in \(range)")
            }
            return Float(v)
        }
        layers = try int("block_count")
        embedding = try int("embedding_length")
        feedForward = try int("feed_forward_length")
        heads = try int("attention.head_count")
        kvHeads = try int("attention.head_count_kv", default: heads)
        contextLength = try int("context_length")
        guard heads % kvHeads == 0 else {
            throw LowBitError(.badFormat, "GGUF model: \(name).attention.head_count \(heads) is not a multiple of "
                                          + "head_count_kv \(kvHeads)")
        }
        let keyLength = g.metadata["\(name).attention.key_length"]
        guard embedding % heads == 0 || keyLength != nil else {
            throw LowBitError(.badFormat, "GGUF model: \(name).embedding_length \(embedding) is not a multiple of "
                                          + "the head count \(heads), and no attention.key_length gives the "
                                              + "heads' width")
        }
        headDim = try int("attention.key_length", default: embedding / heads)
        // The runner's heads hold keys and values of one width, all of it rotated.
        guard headDim % 2 == 0 else {
            throw LowBitError(.badFormat, "GGUF model: heads of odd width \(headDim) cannot be rotated in pairs")
        }
        guard try int("attention.value_length", default: headDim) == headDim,
              try int("rope.dimension_count", default: headDim) == headDim else {
            throw LowBitError(.unsupported, "GGUF model: heads whose keys, values and rotated part differ in "
                                            + "width are not supported")
        }
        guard heads * headDim < 1 << 24 else { throw LowBitError(.badFormat, "GGUF model: heads too wide") }
        vocabulary = g.metadata["tokenizer.ggml.tokens"]?.arrayValue?.count ?? 0
        ropeBase = try float("rope.freq_base", default: 10000, in: 1...1e12)
        normEpsilon = try float("attention.layer_norm_rms_epsilon", default: 1e-5, in: 0...1)
        switch g.metadata["\(name).rope.scaling.type"]?.stringValue {
        case nil, "none":
            ropeLinearScale = try float("rope.scale_linear", default: 1, in: 1...1024)
        case "linear":
            ropeLinearScale = try float("rope.scaling.factor", default: 1, in: 1...1024)
        case let other?:
            throw LowBitError(.unsupported, "GGUF model: RoPE scaling '\(other)' is not supported (none, linear, "
                                            + "and Llama 3's rope_freqs are)")
        }
    }
}
