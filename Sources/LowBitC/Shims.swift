// @c shims for Include/lowbit.h: check arguments, call the core, turn errors into statuses.
// Nothing here computes; nothing throws or traps across the boundary. Handles are retained
// QuantizedMatrix objects (Unmanaged), released by lowbit_matrix_free.
#if canImport(Glibc)
import Glibc
#endif
import LowBit

/// Static C strings, made once, never freed.
nonisolated(unsafe) let versionCString = strdup(LowBitVersion.string)!
nonisolated(unsafe) let statusCStrings: [UnsafeMutablePointer<CChar>] = (0...9).map {
    strdup(LowBitStatus(rawValue: Int32($0))!.summary)!
}
nonisolated(unsafe) let unknownStatusCString = strdup("unknown status code")!
nonisolated(unsafe) let tierCStrings = Dictionary(uniqueKeysWithValues: SIMDTier.allCases.map { ($0,
    strdup($0.rawValue)!) })
nonisolated(unsafe) let kernelCStrings = Dictionary(uniqueKeysWithValues: KernelFamily.allCases.map {
    ($0.code, UnsafePointer(strdup($0.description)!))
})

// MARK: thread-local last error

final class ErrorMessage {
    var text: UnsafeMutablePointer<CChar> = strdup("")!
    deinit { free(text) }
}

let errorKey: pthread_key_t = {
    var k = pthread_key_t()
    pthread_key_create(&k) { p in if let p { Unmanaged<ErrorMessage>.fromOpaque(p).release() } }
    return k
}()

func threadErrorMessage() -> ErrorMessage {
    if let p = pthread_getspecific(errorKey) { return Unmanaged<ErrorMessage>.fromOpaque(p).takeUnretainedValue() }
    let e = ErrorMessage()
    pthread_setspecific(errorKey, Unmanaged.passRetained(e).toOpaque())
    return e
}

func fail(_ status: LowBitStatus, _ message: String) -> Int32 {
    let e = threadErrorMessage()
    free(e.text)
    e.text = strdup(message)!
    return status.rawValue
}

/// Runs a shim body, mapping a thrown error to its status and message.
func guarded(_ body: () throws -> Void) -> Int32 {
    do {
        try body()
        return LowBitStatus.ok.rawValue
    } catch let e as LowBitError {
        return fail(e.status, e.message)
    } catch {
        return fail(.internal, "\(error)")
    }
}

func required<T>(_ p: T?, _ name: String) throws -> T {
    guard let p else { throw LowBitError(.nullPointer, "\(name) is NULL") }
    return p
}

func matrix(_ p: UnsafeRawPointer?) throws -> QuantizedMatrix {
    Unmanaged<QuantizedMatrix>.fromOpaque(try required(p, "matrix")).takeUnretainedValue()
}

/// Checks that a caller's buffer of `length` elements holds at least `needed`.
func checkLength(_ length: Int64, atLeast needed: Int, _ name: String) throws {
    guard length >= 0 else { throw LowBitError(.invalidArgument, "\(name) length \(length) is negative") }
    guard length >= Int64(needed) else {
        throw LowBitError(.sizeMismatch, "\(name) has \(length) elements, \(needed) needed")
    }
}

/// rows and cols as Int, positive, with rows·cols representable.
func shape(_ rows: Int64, _ cols: Int64) throws -> (Int, Int) {
    guard rows > 0, cols > 0 else {
        throw LowBitError(.invalidArgument, "matrix shape \(rows) x \(cols): rows and cols must be positive")
    }
    guard rows <= Int64(Int32.max) * 64, cols <= Int64(Int32.max) * 64 else {
        throw LowBitError(.overflow, "matrix shape \(rows) x \(cols) is too large")
    }
    _ = try checkedProduct(Int(rows), Int(cols), what: "matrix")
    return (Int(rows), Int(cols))
}

func publish(_ m: QuantizedMatrix, _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>) {
    out.pointee = Unmanaged.passRetained(m).toOpaque()
}

// MARK: versions, status, runtime

@c public func lowbit_version_number() -> UInt32 { UInt32(LowBitVersion.number) }

@c public func lowbit_version_string() -> UnsafePointer<CChar> { UnsafePointer(versionCString) }

@c public func lowbit_status_string(_ status: Int32) -> UnsafePointer<CChar> {
    (0...9).contains(status) ? UnsafePointer(statusCStrings[Int(status)]) : UnsafePointer(unknownStatusCString)
}

@c public func lowbit_last_error() -> UnsafePointer<CChar> { UnsafePointer(threadErrorMessage().text) }

@c public func lowbit_set_threads(_ threads: Int32) -> Int32 {
    guarded { try Runtime.setThreads(Int(threads)) }
}

@c public func lowbit_get_threads() -> Int32 { Int32(Runtime.threads) }

@c public func lowbit_kernel_name(_ kernel: Int32) -> UnsafePointer<CChar>? { kernelCStrings[kernel] }

@c public func lowbit_simd_tier() -> UnsafePointer<CChar> {
    UnsafePointer(tierCStrings[Runtime.simdTier]!)
}

// MARK: matrices

@c public func lowbit_matrix_quantize(_ weights: UnsafePointer<Float>?, _ weightsLen: Int64, _ rows: Int64,
                                      _ cols: Int64,
                                      _ bits: Int32, _ groupSize: Int32, _ flags: UInt32,
                                      _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32 {
    guarded {
        let w = try required(weights, "weights"), out = try required(out, "out")
        let (r, c) = try shape(rows, cols)
        let type = try WeightType(code: bits)
        guard flags & ~1 == 0 else {
            throw LowBitError(.invalidArgument, "unknown quantization flags 0x\(String(flags, radix: 16))")
        }
        try checkLength(weightsLen, atLeast: r * c, "weights")
        publish(try Quantizer.quantize(w, rows: r, cols: c, type: type, groupSize: Int(groupSize),
                                       symmetric: flags & 1 != 0), out)
    }
}

@c public func lowbit_matrix_from_gptq(_ qweight: UnsafePointer<Int32>?, _ qweightLen: Int64,
                                      _ qzeros: UnsafePointer<Int32>?, _ qzerosLen: Int64,
                                      _ scales: UnsafePointer<Float>?, _ scalesLen: Int64,
                                      _ rows: Int64, _ cols: Int64, _ bits: Int32, _ groupSize: Int32, _ flags: UInt32,
                                      _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32 {
    guarded {
        let qw = try required(qweight, "qweight"), qz = try required(qzeros, "qzeros")
        let sc = try required(scales, "scales"), out = try required(out, "out")
        let (r, c) = try shape(rows, cols)
        guard [1, 2, 4].contains(bits) else {
            throw LowBitError(.unsupported, "GPTQ import supports 1, 2 and 4 bits, not \(bits)")
        }
        guard flags & ~1 == 0 else {
            throw LowBitError(.invalidArgument, "unknown GPTQ flags 0x\(String(flags, radix: 16))")
        }
        try validateShape(rows: r, cols: c, groupSize: Int(groupSize))
        let pack = 32 / Int(bits), groups = c / Int(groupSize)
        guard c % pack == 0, r % pack == 0 else {
            throw LowBitError(.invalidArgument,
                              "GPTQ packs \(pack) codes per int32: rows \(r) and cols \(c) must be multiples "
                              + "of \(pack)")
        }
        try checkLength(qweightLen, atLeast: c / pack * r, "qweight")
        try checkLength(qzerosLen, atLeast: groups * (r / pack), "qzeros")
        try checkLength(scalesLen, atLeast: groups * r, "scales")
        publish(try Importer.gptq(qweight: qw, qzeros: qz, scales: sc, rows: r, cols: c, bits: Int(bits),
                                  groupSize: Int(groupSize), zeros: flags & 1 != 0 ? .exact : .storedMinusOne), out)
    }
}

@c public func lowbit_matrix_from_ternary(_ values: UnsafePointer<Int8>?, _ valuesLen: Int64,
                                         _ scales: UnsafePointer<Float>?, _ scalesLen: Int64,
                                         _ rows: Int64, _ cols: Int64, _ groupSize: Int32,
                                         _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32 {
    guarded {
        let v = try required(values, "values"), sc = try required(scales, "scales"), out = try required(out, "out")
        let (r, c) = try shape(rows, cols)
        try checkLength(valuesLen, atLeast: r * c, "values")
        guard scalesLen > 0, scalesLen <= Int64(r * c) else {
            throw LowBitError(.sizeMismatch,
                              "ternary import needs 1, \(r) (per row) or rows*cols/group_size (per group) scales, got "
                              + "\(scalesLen)")
        }
        publish(try Importer.ternary(values: v, scales: sc, scaleCount: Int(scalesLen), rows: r, cols: c,
                                     groupSize: Int(groupSize)), out)
    }
}

@c public func lowbit_matrix_free(_ m: UnsafeMutableRawPointer?) {
    if let m { Unmanaged<QuantizedMatrix>.fromOpaque(m).release() }
}

@c public func lowbit_matrix_describe(_ m: UnsafeRawPointer?, _ rows: UnsafeMutablePointer<Int64>?,
                                     _ cols: UnsafeMutablePointer<Int64>?, _ bits: UnsafeMutablePointer<Int32>?,
                                     _ groupSize: UnsafeMutablePointer<Int32>?,
                                     _ flags: UnsafeMutablePointer<UInt32>?) -> Int32 {
    guarded {
        let mat = try matrix(m)
        rows?.pointee = Int64(mat.rows)
        cols?.pointee = Int64(mat.cols)
        bits?.pointee = mat.type.code
        groupSize?.pointee = Int32(mat.groupSize)
        flags?.pointee = mat.symmetric ? 1 : 0
    }
}

@c public func lowbit_matrix_nbytes(_ m: UnsafeRawPointer?, _ out: UnsafeMutablePointer<UInt64>?) -> Int32 {
    guarded {
        let mat = try matrix(m), out = try required(out, "out")
        out.pointee = UInt64(mat.byteCount)
    }
}

@c public func lowbit_matrix_matmul(_ m: UnsafeRawPointer?, _ x: UnsafePointer<Float>?, _ xLen: Int64, _ n: Int64,
                                   _ y: UnsafeMutablePointer<Float>?, _ yLen: Int64, _ kernel: Int32,
                                   _ actBits: Int32) -> Int32 {
    guarded {
        let mat = try matrix(m), x = try required(x, "x"), y = try required(y, "y")
        let family = try KernelFamily(code: kernel)
        guard n > 0 else { throw LowBitError(.invalidArgument, "activation row count n = \(n) must be positive") }
        guard n <= Int64(Int32.max) else { throw LowBitError(.overflow, "activation row count n = \(n) is too large") }
        try checkLength(xLen, atLeast: try checkedProduct(Int(n), mat.cols, what: "x"), "x")
        try checkLength(yLen, atLeast: try checkedProduct(Int(n), mat.rows, what: "y"), "y")
        try mat.multiply(x, n: Int(n), into: y, kernel: family, activationBits: actBits == 0 ? 8 : Int(actBits))
    }
}

@c public func lowbit_matrix_prepare(_ m: UnsafeRawPointer?, _ kernel: Int32) -> Int32 {
    guarded { try matrix(m).prepare(try KernelFamily(code: kernel)) }
}

@c public func lowbit_matrix_auto_kernel(_ m: UnsafeRawPointer?, _ n: Int64,
                                         _ out: UnsafeMutablePointer<Int32>?) -> Int32 {
    guarded {
        let mat = try matrix(m), out = try required(out, "out")
        guard n > 0 else { throw LowBitError(.invalidArgument, "activation row count n = \(n) must be positive") }
        out.pointee = try mat.autoKernel(n: Int(min(n, Int64(Int32.max)))).code
    }
}

@c public func lowbit_matrix_dequantize(_ m: UnsafeRawPointer?, _ out: UnsafeMutablePointer<Float>?,
                                        _ outLen: Int64) -> Int32 {
    guarded {
        let mat = try matrix(m), out = try required(out, "out")
        try checkLength(outLen, atLeast: mat.rows * mat.cols, "out")
        mat.dequantize(into: out)
    }
}

@c public func lowbit_matrix_save(_ m: UnsafeRawPointer?, _ path: UnsafePointer<CChar>?) -> Int32 {
    guarded { try MatrixFile.save(try matrix(m), to: String(cString: try required(path, "path"))) }
}

@c public func lowbit_matrix_load(_ path: UnsafePointer<CChar>?,
                                  _ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32 {
    guarded {
        let p = try required(path, "path"), out = try required(out, "out")
        publish(try MatrixFile.load(String(cString: p)), out)
    }
}

// MARK: auto-kernel calibration

@c public func lowbit_calibration_save(_ path: UnsafePointer<CChar>?) -> Int32 {
    guarded { try AutoKernel.save(to: String(cString: try required(path, "path"))) }
}

@c public func lowbit_calibration_load(_ path: UnsafePointer<CChar>?) -> Int32 {
    guarded { try AutoKernel.load(from: String(cString: try required(path, "path"))) }
}
