// @c shims for the runner part of Include/lowbit.h. Handles are retained LlamaModel objects.
#if canImport(Glibc)
import Glibc
#endif
import LowBit
import LowBitModel

func model(_ p: UnsafeRawPointer?) throws -> LlamaModel {
    Unmanaged<LlamaModel>.fromOpaque(try required(p, "model")).takeUnretainedValue()
}

@c public func lowbit_model_open(_ path: UnsafePointer<CChar>?, _ weights: Int32, _ bits: Int32, _ groupSize: Int32,
                                 _ kernel: Int32, _ stackPath: UnsafePointer<CChar>?, _ budget: UInt64,
                                 _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32 {
    guarded {
        let path = try cString(path, "path"), out = try required(out, "out")
        let family = try KernelFamily(code: kernel)
        let choice: WeightChoice
        switch weights {
        case 0: choice = .reference
        case 1: choice = .q4_1(kernel: family)
        case 2: choice = .requantized(type: try WeightType(code: bits), groupSize: groupSize == 0 ? 64 : Int(groupSize),
                                      kernel: family)
        case 3: choice = .stack(path: try cString(stackPath, "stack_path"), budget: Int(min(budget, UInt64(Int.max))))
        default:
            throw LowBitError(.invalidArgument,
                              "unknown weights \(weights): use 0 (reference), 1 (file), 2 (requantized) or 3 (stack)")
        }
        if case .requantized(_, let g, _, _) = choice, !supportedGroupSizes.contains(g) {
            throw LowBitError(.unsupported, "unsupported group size \(g): use 32, 64 or 128")
        }
        out.pointee = Unmanaged.passRetained(try LlamaModel.load(path: path, weights: choice)).toOpaque()
    }
}

@c public func lowbit_model_open_calibrated(_ path: UnsafePointer<CChar>?, _ bits: Int32, _ groupSize: Int32,
                                            _ kernel: Int32,
                                            _ calibrationText: UnsafePointer<CChar>?,
                                            _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32 {
    guarded {
        let path = try cString(path, "path"), text = try cString(calibrationText, "calibration_text"),
            out = try required(out, "out")
        let g = groupSize == 0 ? 64 : Int(groupSize)
        guard supportedGroupSizes.contains(g) else {
            throw LowBitError(.unsupported, "unsupported group size \(g): use 32, 64 or 128")
        }
        let choice = WeightChoice.requantized(type: try WeightType(code: bits), groupSize: g,
                                              kernel: try KernelFamily(code: kernel),
                                              calibration: text)
        out.pointee = Unmanaged.passRetained(try LlamaModel.load(path: path, weights: choice)).toOpaque()
    }
}

@c public func lowbit_model_quantize(_ path: UnsafePointer<CChar>?, _ outPath: UnsafePointer<CChar>?, _ bits: Int32,
                                     _ groupSize: Int32, _ targetBytes: UInt64,
                                     _ calibrationText: UnsafePointer<CChar>?) -> Int32 {
    guarded {
        let path = try cString(path, "path"), output = try cString(outPath, "out_path")
        guard (bits == 0) != (targetBytes == 0) else {
            throw LowBitError(.invalidArgument,
                              "give bits or target_bytes (the other 0), not \(bits) and \(targetBytes)")
        }
        try ModelFile.quantize(modelPath: path, output: output,
                               type: bits == 0 ? nil : try WeightType(code: bits),
                               groupSize: groupSize == 0 ? 64 : Int(groupSize),
                               targetBytes: targetBytes == 0 ? nil : Int(min(targetBytes, UInt64(Int.max))),
                               calibrationText: calibrationText.map { String(cString: $0) })
    }
}

@c public func lowbit_model_quantize_elastic(_ path: UnsafePointer<CChar>?, _ outPath: UnsafePointer<CChar>?,
                                             _ minBytes: UInt64, _ maxBytes: UInt64, _ levels: Int32,
                                             _ calibrationText: UnsafePointer<CChar>?) -> Int32 {
    guarded {
        let path = try cString(path, "path"), output = try cString(outPath, "out_path")
        let text = try cString(calibrationText, "calibration_text")
        guard levels >= 0 else { throw LowBitError(.invalidArgument, "levels \(levels) must be >= 0") }
        try ModelFile.quantizeElastic(modelPath: path, output: output, minBytes: Int(min(minBytes, UInt64(Int.max))),
                                      maxBytes: Int(min(maxBytes, UInt64(Int.max))), calibrationText: text,
                                      levelCount: levels == 0 ? nil : Int(levels))
    }
}

@c public func lowbit_model_close(_ m: UnsafeMutableRawPointer?) {
    if let m { Unmanaged<LlamaModel>.fromOpaque(m).release() }
}

@c public func lowbit_model_generate(_ m: UnsafeRawPointer?, _ prompt: UnsafePointer<CChar>?, _ chat: Int32,
                                     _ maxTokens: Int32,
                                     _ temperature: Float, _ topP: Float, _ seed: UInt64,
                                     _ out: UnsafeMutablePointer<CChar>?, _ outLen: Int64,
                                     _ written: UnsafeMutablePointer<Int64>?) -> Int32 {
    guarded {
        let mdl = try model(m), prompt = try cString(prompt, "prompt")
        guard outLen >= 0 else { throw LowBitError(.invalidArgument, "out_len \(outLen) must be >= 0") }
        // out may be NULL only with out_len 0: a call that asks for the size the text needs.
        let out = outLen == 0 ? out : try required(out, "out")
        let (text, _) = try mdl.generate(prompt, chat: chat != 0, maxTokens: Int(maxTokens), temperature: temperature,
                                         topP: topP, seed: seed)
        let bytes = Array(text.utf8)
        guard Int64(bytes.count) < outLen, let out else {
            written?.pointee = Int64(bytes.count + 1)
            throw LowBitError(.sizeMismatch, "the text needs \(bytes.count + 1) bytes, out has \(outLen)")
        }
        for (i, b) in bytes.enumerated() { out[i] = CChar(bitPattern: b) }
        out[bytes.count] = 0
        written?.pointee = Int64(bytes.count)
    }
}

@c public func lowbit_model_perplexity(_ m: UnsafeRawPointer?, _ text: UnsafePointer<CChar>?, _ ctx: Int32,
                                       _ chunks: Int32,
                                       _ out: UnsafeMutablePointer<Double>?) -> Int32 {
    guarded {
        let mdl = try model(m), text = try cString(text, "text"), out = try required(out, "out")
        guard chunks >= 0 else { throw LowBitError(.invalidArgument, "chunks \(chunks) must be >= 0 (0 = all)") }
        out.pointee = try mdl.perplexity(text, context: Int(ctx), chunks: chunks == 0 ? nil : Int(chunks)).perplexity
    }
}

@c public func lowbit_model_set_budget(_ m: UnsafeMutableRawPointer?, _ budget: UInt64) -> Int32 {
    guarded { try model(m).setBudget(Int(min(budget, UInt64(Int.max)))) }
}

@c public func lowbit_model_weight_bytes(_ m: UnsafeRawPointer?, _ out: UnsafeMutablePointer<UInt64>?) -> Int32 {
    guarded {
        let mdl = try model(m), out = try required(out, "out")
        out.pointee = UInt64(mdl.weightBytes)
    }
}

@c public func lowbit_model_trace(_ m: UnsafeRawPointer?, _ tokens: UnsafePointer<Int32>?, _ n: Int64,
                                  _ out: UnsafeMutablePointer<Float>?, _ outLen: Int64,
                                  _ layers: UnsafeMutablePointer<Int32>?,
                                  _ hidden: UnsafeMutablePointer<Int32>?) -> Int32 {
    guarded {
        let model = try model(m), tokens = try required(tokens, "tokens"), out = try required(out, "out")
        let c = model.config
        guard n > 0, n <= Int64(c.contextLength) else {
            throw LowBitError(.invalidArgument, "token count \(n) must be 1...\(c.contextLength)")
        }
        layers?.pointee = Int32(c.layers)
        hidden?.pointee = Int32(c.embedding)
        let count = try checkedProduct(c.layers + 1, Int(n), c.embedding, what: "trace")
        try checkLength(outLen, atLeast: count, "out")
        let ids = (0..<Int(n)).map { Int(tokens[$0]) }
        var states: [[Float]] = []
        _ = try model.forward(ids, cache: model.makeCache(capacity: ids.count), logitRows: 0..<0) { _, x in
            states.append(x)
        }
        for (l, x) in states.enumerated() { for i in 0..<x.count { out[l * x.count + i] = x[i] } }
    }
}
