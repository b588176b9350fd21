// @c shims for the embedding part of Include/lowbit.h: options structs, tokens, chat templates,
// contexts. Handles are retained Session objects (`ContextHandle`).
#if canImport(Glibc)
import Glibc
#endif
import LowBit
import LowBitModel

/// A C struct that begins with its own `size_t size`, read field by field at the offsets of
/// Include/lowbit.h (x86-64 and aarch64 LP64; Tests/abi/struct_layout.c checks them). A field past
/// `size` comes from a caller's older, shorter struct: it reads as nil and takes its default.
struct SizedStruct {
    let base: UnsafeRawPointer
    let size: Int
    /// Structs larger than this are no struct of ours: a garbage size, not a newer header.
    static let largest = 4096

    init(_ p: UnsafeRawPointer, _ name: String) throws {
        let size = p.loadUnaligned(as: Int.self)
        guard size >= MemoryLayout<Int>.size, size <= SizedStruct.largest else {
            throw LowBitError(.invalidArgument, "\(name)->size \(size) is not a struct size: set it with the "
                              + "*_default_params function")
        }
        (base, self.size) = (p, size)
    }

    func field<T>(_ offset: Int, _ type: T.Type) -> T? {
        offset + MemoryLayout<T>.size <= size ? base.loadUnaligned(fromByteOffset: offset, as: T.self) : nil
    }
}

/// lowbit_model_params's fields, offsets and defaults.
enum ModelParams {
    static let size = 56
    static let weights = 8, bits = 12, groupSize = 16, kernel = 20, stackPath = 24, budget = 32
    static let calibrationText = 40, activationBits = 48

    static func writeDefaults(_ p: UnsafeMutableRawPointer) {
        p.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        p.storeBytes(of: size, as: Int.self)
        p.storeBytes(of: Int32(1), toByteOffset: weights, as: Int32.self)
        p.storeBytes(of: Int32(4), toByteOffset: bits, as: Int32.self)
        p.storeBytes(of: Int32(64), toByteOffset: groupSize, as: Int32.self)
    }

    /// An elastic model file's budget: FILE weights with a nonzero `budget` (nil: its largest level).
    static func fileBudget(_ p: UnsafeRawPointer?) throws -> Int? {
        guard let s = try p.map({ try SizedStruct($0, "params") }), s.field(weights, Int32.self) ?? 1 == 1,
              let budget = s.field(ModelParams.budget, UInt64.self), budget != 0 else { return nil }
        return Int(min(budget, UInt64(Int.max)))
    }

    /// The weight choice a caller's struct asks for (nil: the defaults).
    static func choice(_ p: UnsafeRawPointer?) throws -> WeightChoice {
        let s = try p.map { try SizedStruct($0, "params") }
        func int(_ offset: Int, _ fallback: Int32) -> Int32 { s?.field(offset, Int32.self) ?? fallback }
        func text(_ offset: Int) -> String? {
            (s?.field(offset, UInt.self)).flatMap { $0 == 0 ? nil : UnsafePointer<CChar>(bitPattern: $0) }
                .map { String(cString: $0) }
        }
        let family = try KernelFamily(code: int(kernel, 0))
        switch int(weights, 1) {
        case 0: return .reference
        case 1:
            let a = int(activationBits, 0)
            _ = try WeightChoice.q4_1Kernel(family, activationBits: a == 0 ? nil : Int(a))
            return .q4_1(kernel: family, activationBits: a == 0 ? nil : Int(a))
        case 2:
            let g = Int(int(groupSize, 64))
            guard supportedGroupSizes.contains(g) else {
                throw LowBitError(.unsupported, "unsupported group size \(g): use 32, 64 or 128")
            }
            return .requantized(type: try WeightType(code: int(bits, 4)), groupSize: g, kernel: family,
                                calibration: text(calibrationText))
        case 3:
            guard let path = text(stackPath) else { throw LowBitError(.nullPointer, "params->stack_path is NULL") }
            let budget = s?.field(ModelParams.budget, UInt64.self) ?? 0
            return .stack(path: path, budget: Int(min(budget, UInt64(Int.max))))
        case let w:
            throw LowBitError(.invalidArgument,
                              "unknown weights \(w): use 0 (reference), 1 (file), 2 (requantized) or 3 (stack)")
        }
    }
}

/// lowbit_sampler_params's fields, offsets and defaults.
enum SamplerParams {
    static let size = 40
    static let temperature = 8, topK = 12, topP = 16, repetitionPenalty = 20, repetitionWindow = 24, seed = 32

    static func writeDefaults(_ p: UnsafeMutableRawPointer) {
        p.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        p.storeBytes(of: size, as: Int.self)
        p.storeBytes(of: Float(1), toByteOffset: topP, as: Float.self)
        p.storeBytes(of: Float(1), toByteOffset: repetitionPenalty, as: Float.self)
        p.storeBytes(of: Int32(64), toByteOffset: repetitionWindow, as: Int32.self)
        p.storeBytes(of: UInt64(1), toByteOffset: seed, as: UInt64.self)
    }

    /// The settings of a caller's struct (nil: greedy), as comparable values and a sampler.
    static func read(_ p: UnsafeRawPointer?) throws -> (key: [UInt64], sampler: Sampler) {
        guard let p else { return ([], try Sampler()) }
        let s = try SizedStruct(p, "params")
        let t = s.field(temperature, Float.self) ?? 0, k = s.field(topK, Int32.self) ?? 0
        let tp = s.field(topP, Float.self) ?? 1, rp = s.field(repetitionPenalty, Float.self) ?? 1
        let w = s.field(repetitionWindow, Int32.self) ?? 64, sd = s.field(seed, UInt64.self) ?? 1
        let sampler = try Sampler(temperature: t, topK: Int(k), topP: tp, repetitionPenalty: rp,
                                  repetitionWindow: Int(w), seed: sd)
        let key = [UInt64(t.bitPattern), UInt64(UInt32(bitPattern: k)), UInt64(tp.bitPattern),
                   UInt64(rp.bitPattern), UInt64(UInt32(bitPattern: w)), sd]
        return (key, sampler)
    }
}

/// A context: the session, and the sampler whose random state goes on between calls.
final class ContextHandle {
    let session: Session
    var samplerKey: [UInt64]? = nil
    var sampler: Sampler? = nil
    init(_ session: Session) { self.session = session }

    /// The sampler for `params`, continuing the stored one while the params stay the same.
    func sampler(for params: UnsafeRawPointer?) throws -> Sampler {
        let (key, fresh) = try SamplerParams.read(params)
        if key == samplerKey, let sampler { return sampler }
        return fresh
    }

    func keep(_ sampler: Sampler, for params: UnsafeRawPointer?) throws {
        (samplerKey, self.sampler) = (try SamplerParams.read(params).key, sampler)
    }
}

func context(_ p: UnsafeRawPointer?) throws -> ContextHandle {
    Unmanaged<ContextHandle>.fromOpaque(try required(p, "context")).takeUnretainedValue()
}

/// Copies `bytes` and a NUL to out: the out / out_len / written rules of lowbit_model_generate.
func writeText(_ bytes: [UInt8], _ out: UnsafeMutablePointer<CChar>?, _ outLen: Int64,
               _ written: UnsafeMutablePointer<Int64>?) throws {
    guard outLen >= 0 else { throw LowBitError(.invalidArgument, "out_len \(outLen) must be >= 0") }
    guard Int64(bytes.count) < outLen else {
        written?.pointee = Int64(bytes.count + 1)
        throw LowBitError(.sizeMismatch, "the text needs \(bytes.count + 1) bytes, out has \(outLen)")
    }
    let out = try required(out, "out")
    for (i, b) in bytes.enumerated() { out[i] = CChar(bitPattern: b) }
    out[bytes.count] = 0
    written?.pointee = Int64(bytes.count)
}

/// Copies token ids to a caller's buffer: the lowbit_tokenize rules for a short one.
func writeTokens(_ ids: [Int], _ out: UnsafeMutablePointer<Int32>?, _ outLen: Int64,
                 _ count: UnsafeMutablePointer<Int64>) throws {
    guard outLen >= 0 else { throw LowBitError(.invalidArgument, "tokens_len \(outLen) must be >= 0") }
    count.pointee = Int64(ids.count)
    guard Int64(ids.count) <= outLen else {
        throw LowBitError(.sizeMismatch, "\(ids.count) tokens, the buffer holds \(outLen)")
    }
    if ids.isEmpty { return }
    let out = try required(out, "tokens")
    for (i, t) in ids.enumerated() { out[i] = Int32(t) }
}

/// Token ids from a caller's array of n, checked against the model's vocabulary.
func tokenArray(_ p: UnsafePointer<Int32>?, _ n: Int64, _ name: String, vocabulary: Int) throws -> [Int] {
    guard n > 0, n <= Int64(Int32.max) else {
        throw LowBitError(.invalidArgument, "\(name) count \(n) must be positive")
    }
    let p = try required(p, name)
    return try (0..<Int(n)).map { i in
        let t = Int(p[i])
        guard t >= 0, t < vocabulary else {
            throw LowBitError(.invalidArgument, "\(name)[\(i)] = \(t) is outside the vocabulary (0..<\(vocabulary))")
        }
        return t
    }
}

func chatMessages(_ p: UnsafeRawPointer?, _ n: Int64) throws -> [ChatMessage] {
    guard n > 0, n <= 1 << 20 else { throw LowBitError(.invalidArgument, "message count \(n) must be 1...\(1 << 20)") }
    let p = try required(p, "messages")
    let stride = 2 * MemoryLayout<UInt>.size  // { const char *role; const char *content; }
    return try (0..<Int(n)).map { i in
        let role = p.loadUnaligned(fromByteOffset: i * stride, as: UnsafePointer<CChar>?.self)
        let content = p.loadUnaligned(fromByteOffset: i * stride + stride / 2, as: UnsafePointer<CChar>?.self)
        return ChatMessage(role: try cString(role, "messages[\(i)].role"),
                           content: try cString(content, "messages[\(i)].content"))
    }
}

// MARK: models

@c public func lowbit_model_default_params(_ out: UnsafeMutableRawPointer?) -> Int32 {
    guarded { ModelParams.writeDefaults(try required(out, "out")) }
}

@c public func lowbit_model_load(_ path: UnsafePointer<CChar>?, _ params: UnsafeRawPointer?,
                                 _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32 {
    guarded {
        let path = try cString(path, "path"), out = try required(out, "out")
        let choice = try ModelParams.choice(params)
        out.pointee = Unmanaged.passRetained(try LlamaModel.load(path: path, weights: choice,
                                                                 budget: ModelParams.fileBudget(params)))
            .toOpaque()
    }
}

@c public func lowbit_model_vocab_size(_ m: UnsafeRawPointer?, _ out: UnsafeMutablePointer<Int32>?) -> Int32 {
    guarded {
        let mdl = try model(m), out = try required(out, "out")
        out.pointee = Int32(mdl.config.vocabulary)
    }
}

@c public func lowbit_model_context_length(_ m: UnsafeRawPointer?, _ out: UnsafeMutablePointer<Int32>?) -> Int32 {
    guarded {
        let mdl = try model(m), out = try required(out, "out")
        out.pointee = Int32(clamping: mdl.config.contextLength)
    }
}

@c public func lowbit_model_special_token(_ m: UnsafeRawPointer?, _ which: Int32,
                                          _ out: UnsafeMutablePointer<Int32>?) -> Int32 {
    guarded {
        let t = try model(m).tokenizer, out = try required(out, "out")
        let id: Int?
        switch which {
        case 0: id = t.bosID
        case 1: id = t.eosID
        case 2: id = t.endOfTurnID
        default:
            throw LowBitError(.invalidArgument, "unknown special token \(which): use 0 (bos), 1 (eos), 2 (end of turn)")
        }
        out.pointee = Int32(id ?? -1)
    }
}

// MARK: tokens and chat templates

@c public func lowbit_tokenize(_ m: UnsafeRawPointer?, _ text: UnsafePointer<CChar>?, _ addSpecial: Int32,
                               _ parseSpecial: Int32, _ tokens: UnsafeMutablePointer<Int32>?, _ tokensLen: Int64,
                               _ nTokens: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded {
        let mdl = try model(m), text = try cString(text, "text"), n = try required(nTokens, "n_tokens")
        let ids = mdl.tokenizer.encode(text, addSpecial: addSpecial != 0, parseSpecial: parseSpecial != 0)
        try writeTokens(ids, tokens, tokensLen, n)
    }
}

@c public func lowbit_detokenize(_ m: UnsafeRawPointer?, _ tokens: UnsafePointer<Int32>?, _ n: Int64,
                                 _ out: UnsafeMutablePointer<CChar>?, _ outLen: Int64,
                                 _ written: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded {
        let mdl = try model(m)
        let ids = n == 0 ? [] : try tokenArray(tokens, n, "tokens", vocabulary: mdl.config.vocabulary)
        try writeText(Array(mdl.tokenizer.decode(ids).utf8), out, outLen, written)
    }
}

@c public func lowbit_chat_template(_ m: UnsafeRawPointer?, _ messages: UnsafeRawPointer?, _ n: Int64,
                                    _ addGenerationPrompt: Int32, _ out: UnsafeMutablePointer<CChar>?,
                                    _ outLen: Int64, _ written: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded {
        let mdl = try model(m), list = try chatMessages(messages, n)
        let text = try mdl.chatPrompt(list, addGenerationPrompt: addGenerationPrompt != 0)
        try writeText(Array(text.utf8), out, outLen, written)
    }
}

// MARK: contexts

@c public func lowbit_sampler_default_params(_ out: UnsafeMutableRawPointer?) -> Int32 {
    guarded { SamplerParams.writeDefaults(try required(out, "out")) }
}

@c public func lowbit_context_new(_ m: UnsafeRawPointer?, _ nCtx: Int32,
                                  _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32 {
    guarded {
        let mdl = try model(m), out = try required(out, "out")
        guard nCtx >= 0 else { throw LowBitError(.invalidArgument, "n_ctx \(nCtx) must be >= 0 (0: the model's)") }
        let session = try Session(model: mdl, capacity: nCtx == 0 ? nil : Int(nCtx))
        out.pointee = Unmanaged.passRetained(ContextHandle(session)).toOpaque()
    }
}

@c public func lowbit_context_free(_ c: UnsafeMutableRawPointer?) {
    if let c { Unmanaged<ContextHandle>.fromOpaque(c).release() }
}

@c public func lowbit_context_eval(_ c: UnsafeMutableRawPointer?, _ tokens: UnsafePointer<Int32>?, _ n: Int64,
                                   _ allLogits: Int32, _ logits: UnsafeMutablePointer<Float>?,
                                   _ logitsLen: Int64) -> Int32 {
    guarded {
        let session = try context(c).session
        let ids = try tokenArray(tokens, n, "tokens", vocabulary: session.model.config.vocabulary)
        let needed = try checkedProduct(allLogits != 0 ? ids.count : 1, session.model.config.vocabulary,
                                        what: "logits")
        guard logitsLen >= 0 else { throw LowBitError(.invalidArgument, "logits_len \(logitsLen) is negative") }
        // logits may be NULL with logits_len 0: run the tokens without copying logits out.
        let out = logitsLen == 0 && logits == nil ? nil : try required(logits, "logits")
        if out != nil { try checkLength(logitsLen, atLeast: needed, "logits") }
        let values = try session.eval(ids, allLogits: allLogits != 0)
        if let out { for i in 0..<values.count { out[i] = values[i] } }
    }
}

@c public func lowbit_context_tokens(_ c: UnsafeRawPointer?, _ tokens: UnsafeMutablePointer<Int32>?,
                                     _ tokensLen: Int64, _ n: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded {
        let session = try context(c).session, n = try required(n, "n")
        try writeTokens(session.tokens, tokens, tokensLen, n)
    }
}

@c public func lowbit_context_truncate(_ c: UnsafeMutableRawPointer?, _ n: Int64) -> Int32 {
    guarded {
        let session = try context(c).session
        guard n >= 0, n <= Int64(session.tokens.count) else {
            throw LowBitError(.invalidArgument, "cannot keep \(n) tokens of \(session.tokens.count)")
        }
        try session.truncate(to: Int(n))
    }
}

@c public func lowbit_context_sample(_ c: UnsafeMutableRawPointer?, _ params: UnsafeRawPointer?,
                                     _ token: UnsafeMutablePointer<Int32>?) -> Int32 {
    guarded {
        let handle = try context(c), token = try required(token, "token")
        let logits = handle.session.lastLogits
        guard !logits.isEmpty else {
            throw LowBitError(.invalidArgument, "the context has no logits: evaluate tokens first")
        }
        var sampler = try handle.sampler(for: params)
        token.pointee = Int32(sampler.sample(logits, context: handle.session.tokens[...]))
        try handle.keep(sampler, for: params)
    }
}

/// lowbit_token_fn: (user, token, piece, piece_len) -> nonzero to go on.
public typealias lowbit_token_fn_t =
    @convention(c) (UnsafeMutableRawPointer?, Int32, UnsafePointer<CChar>?, Int64) -> Int32

/// Runs a generation with the C callback, keeping the sampler's state in the context.
func generate(_ handle: ContextHandle, _ params: UnsafeRawPointer?, _ onToken: lowbit_token_fn_t?,
              _ user: UnsafeMutableRawPointer?, _ generated: UnsafeMutablePointer<Int64>?,
              _ run: (inout Sampler, (Int, String) -> Bool) throws -> [Int]) throws {
    var sampler = try handle.sampler(for: params)
    let tokens = try run(&sampler) { token, piece in
        guard let onToken else { return true }
        let bytes = piece.utf8.map { CChar(bitPattern: $0) } + [0]
        return bytes.withUnsafeBufferPointer { onToken(user, Int32(token), $0.baseAddress, Int64($0.count - 1)) != 0 }
    }
    try handle.keep(sampler, for: params)
    generated?.pointee = Int64(tokens.count)
}

@c public func lowbit_context_generate(_ c: UnsafeMutableRawPointer?, _ prompt: UnsafePointer<Int32>?, _ n: Int64,
                                       _ maxTokens: Int32, _ params: UnsafeRawPointer?,
                                       _ onToken: lowbit_token_fn_t?, _ user: UnsafeMutableRawPointer?,
                                       _ generated: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded {
        let handle = try context(c)
        let ids = try tokenArray(prompt, n, "prompt", vocabulary: handle.session.model.config.vocabulary)
        try generate(handle, params, onToken, user, generated) { sampler, emit in
            try handle.session.generate(prompt: ids, maxTokens: Int(maxTokens), sampler: &sampler, onToken: emit)
        }
    }
}

@c public func lowbit_context_chat(_ c: UnsafeMutableRawPointer?, _ messages: UnsafeRawPointer?, _ n: Int64,
                                   _ maxTokens: Int32, _ params: UnsafeRawPointer?,
                                   _ onToken: lowbit_token_fn_t?, _ user: UnsafeMutableRawPointer?,
                                   _ generated: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded {
        let handle = try context(c), list = try chatMessages(messages, n)
        try generate(handle, params, onToken, user, generated) { sampler, emit in
            let text = try handle.session.model.chatPrompt(list, addGenerationPrompt: true)
            let prompt = handle.session.model.tokenizer.encode(text, addSpecial: true, parseSpecial: true)
            return try handle.session.generate(prompt: prompt, maxTokens: Int(maxTokens), sampler: &sampler,
                                               onToken: emit)
        }
    }
}
