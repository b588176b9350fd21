// @c shims for the BitStack part of Include/lowbit.h. Handles are retained Stack objects.
import LowBit

func stack(_ p: UnsafeRawPointer?) throws -> Stack {
    Unmanaged<Stack>.fromOpaque(try required(p, "stack")).takeUnretainedValue()
}

func cString(_ p: UnsafePointer<CChar>?, _ name: String) throws -> String {
    String(cString: try required(p, name))
}

@c public func lowbit_stack_build(_ path: UnsafePointer<CChar>?, _ count: Int32,
                                  _ names: UnsafePointer<UnsafePointer<CChar>?>?,
                                  _ weights: UnsafePointer<UnsafePointer<Float>?>?, _ rows: UnsafePointer<Int64>?,
                                  _ cols: UnsafePointer<Int64>?, _ calibration: UnsafePointer<UnsafePointer<Float>?>?,
                                  _ calibrationSamples: UnsafePointer<Int64>?, _ sensitivity: UnsafePointer<Double>?,
                                  _ blocks: Int32, _ maxRank: Int32, _ factorShare: Double,
                                  _ progress: (@convention(c) (UnsafeMutableRawPointer?, Int64, Int64) -> Void)?,
                                  _ user: UnsafeMutableRawPointer?) -> Int32 {
    guarded {
        let path = try cString(path, "path")
        guard count > 0 else { throw LowBitError(.invalidArgument, "tensor count \(count) must be positive") }
        let names = try required(names, "names"), weights = try required(weights, "weights")
        let rows = try required(rows, "rows"), cols = try required(cols, "cols")
        if calibration != nil, calibrationSamples == nil {
            throw LowBitError(.nullPointer, "calibration_samples is NULL")
        }
        var inputs: [StackBuilder.Input] = []
        var sensitivities: [String: Double]? = sensitivity == nil ? nil : [:]
        for i in 0..<Int(count) {
            let name = try cString(names[i], "names[\(i)]")
            let w = try required(weights[i], "weights[\(i)]")
            let (r, c) = try shape(rows[i], cols[i])
            var calib: (UnsafePointer<Float>, samples: Int)? = nil
            if let calibration, let x = calibration[i] {
                let samples = calibrationSamples![i]
                guard samples > 0, samples < Int64(Int32.max) else {
                    throw LowBitError(.invalidArgument, "calibration_samples[\(i)] = \(samples) must be positive")
                }
                _ = try checkedProduct(Int(samples), c, what: "calibration")
                calib = (x, Int(samples))
            }
            if let sensitivity {
                guard sensitivity[i].isFinite, sensitivity[i] >= 0 else {
                    throw LowBitError(.invalidArgument, "sensitivity[\(i)] = \(sensitivity[i]) must be finite and >= 0")
                }
                sensitivities![name] = sensitivity[i]
            }
            inputs.append(StackBuilder.Input(name: name, weights: w, rows: r, cols: c, calibration: calib))
        }
        var options = StackBuilder.Options()
        options.blocks = Int(blocks)
        options.maxRank = Int(maxRank)
        guard factorShare.isFinite, factorShare >= 0 else {
            throw LowBitError(.invalidArgument, "factor_share \(factorShare) must be >= 0")
        }
        if factorShare > 0 { options.factorShare = factorShare }
        options.sensitivity = sensitivities
        try StackBuilder.build(inputs, path: path, options: options) { done, total in
            progress?(user, Int64(done), Int64(total))
        }
    }
}

@c public func lowbit_stack_open(_ path: UnsafePointer<CChar>?, _ budget: UInt64,
                                 _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32 {
    guarded {
        let path = try cString(path, "path"), out = try required(out, "out")
        let s = try Stack(path: path, budget: Int(min(budget, UInt64(Int.max))))
        out.pointee = Unmanaged.passRetained(s).toOpaque()
    }
}

@c public func lowbit_stack_close(_ s: UnsafeMutableRawPointer?) {
    if let s { Unmanaged<Stack>.fromOpaque(s).release() }
}

@c public func lowbit_stack_set_budget(_ s: UnsafeMutableRawPointer?, _ budget: UInt64) -> Int32 {
    guarded { try stack(s).setBudget(Int(min(budget, UInt64(Int.max)))) }
}

@c public func lowbit_stack_info(_ s: UnsafeRawPointer?, _ resident: UnsafeMutablePointer<UInt64>?,
                                 _ minimum: UnsafeMutablePointer<UInt64>?, _ total: UnsafeMutablePointer<UInt64>?,
                                 _ read: UnsafeMutablePointer<UInt64>?) -> Int32 {
    guarded {
        let st = try stack(s)
        resident?.pointee = UInt64(st.residentBytes)
        minimum?.pointee = UInt64(st.minimumBytes)
        total?.pointee = UInt64(st.totalBytes)
        read?.pointee = UInt64(st.bytesRead)
    }
}

@c public func lowbit_stack_tensor(_ s: UnsafeRawPointer?, _ name: UnsafePointer<CChar>?,
                                   _ rows: UnsafeMutablePointer<Int64>?,
                                   _ cols: UnsafeMutablePointer<Int64>?, _ rank: UnsafeMutablePointer<Int32>?,
                                   _ resident: UnsafeMutablePointer<Int32>?,
                                   _ total: UnsafeMutablePointer<Int32>?) -> Int32 {
    guarded {
        let st = try stack(s), name = try cString(name, "name")
        let t = st.index.tensors[try st.tensorNumber(name)]
        let b = try st.blocks(name)
        rows?.pointee = Int64(t.rows)
        cols?.pointee = Int64(t.cols)
        rank?.pointee = Int32(t.rank)
        resident?.pointee = Int32(b.resident)
        total?.pointee = Int32(b.total)
    }
}

@c public func lowbit_stack_matmul(_ s: UnsafeRawPointer?, _ name: UnsafePointer<CChar>?, _ x: UnsafePointer<Float>?,
                                   _ xLen: Int64, _ n: Int64, _ y: UnsafeMutablePointer<Float>?,
                                   _ yLen: Int64) -> Int32 {
    guarded {
        let st = try stack(s), name = try cString(name, "name")
        let x = try required(x, "x"), y = try required(y, "y")
        let t = st.index.tensors[try st.tensorNumber(name)]
        guard n > 0 else { throw LowBitError(.invalidArgument, "activation row count n = \(n) must be positive") }
        guard n <= Int64(Int32.max) else { throw LowBitError(.overflow, "activation row count n = \(n) is too large") }
        try checkLength(xLen, atLeast: try checkedProduct(Int(n), t.cols, what: "x"), "x")
        try checkLength(yLen, atLeast: try checkedProduct(Int(n), t.rows, what: "y"), "y")
        try st.multiply(name, x, n: Int(n), into: y)
    }
}
