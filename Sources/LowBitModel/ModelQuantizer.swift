import LowBit

/// Makes lowbit matrices of a model's tensors from their reference (dequantized) weights:
/// plainly, or calibrated on the inputs each layer sees on a text — activation-aware scales
/// (`ActivationAwareScaling`), then rounding with error feedback (`ErrorFeedback`). The loader
/// uses it for requantized weights; `lowbit quantize` for every candidate precision of every
/// tensor.
public final class ModelQuantizer {
    let file: GGUFFile
    /// Input rows per tensor name (`CalibrationActivations`) of the first
    /// `LlamaModel.calibrationTokens` tokens, which the matrices are fitted to; empty when not
    /// calibrated.
    let calibration: [String: (rows: [Float], samples: Int)]
    /// Rows of up to `heldOutTokens` further tokens, which no matrix is fitted to: error feedback
    /// brings the error on its own rows far below the error on new text (more at fewer bits), so
    /// comparing precisions by it would favour the smallest.
    let heldOut: [String: (rows: [Float], samples: Int)]
    public static let heldOutTokens = 256
    /// One scratch for every tensor's Float32 weights: fresh pages per tensor cost more time (the
    /// kernel zeroing them) than dequantizing does.
    private var scratch: AlignedBuffer? = nil
    /// Tensors that share input rows (`LlamaModel.inputSource`) are made one after the other: one
    /// set of statistics and error feedback coefficients serves each run of them.
    private var lastInputs: (source: String, statistics: ActivationAwareScaling.Statistics,
                             coefficients: ErrorFeedback.Coefficients)? = nil

    /// Calibration records `LlamaModel.calibrationTokens` tokens of the text through the
    /// reference model.
    public init(file: GGUFFile, calibrationText: String?) throws {
        self.file = file
        let recorded = try calibrationText.map {
            try CalibrationActivations.record(gguf: file, text: $0,
                                              tokens: LlamaModel.calibrationTokens + ModelQuantizer.heldOutTokens)
        } ?? [:]
        let fitted = LlamaModel.calibrationTokens
        calibration = recorded.mapValues { r in
            let cols = r.rows.count / r.samples
            return (Array(r.rows.prefix(min(r.samples, fitted) * cols)), min(r.samples, fitted))
        }
        heldOut = recorded.mapValues { r in
            let cols = r.rows.count / r.samples
            return (Array(r.rows.dropFirst(min(r.samples, fitted) * cols)), max(r.samples - fitted, 0))
        }
    }

    public var isCalibrated: Bool { !calibration.isEmpty }

    /// The type a uniform requantization at `type` gives a tensor: the output projection stays at
    /// 4 bits or more, as fewer bits there cost far more perplexity per byte saved than in the
    /// transformer's layers.
    static func uniformType(_ type: WeightType, isOutput: Bool) -> WeightType {
        isOutput && type.storageBits < 4 ? .integer(bits: 4) : type
    }

    /// Error feedback's dampening: with ~1000 calibration rows for up to 1536 inputs, GPTQ's 1%
    /// fits the calibration text too closely; 0.3 gave the lowest perplexity of 0.01 to 1.0.
    static let dampening: Float = 0.3

    /// `name` (a GGUF tensor of rows × cols) as a matrix of `type`. A group size that does not
    /// divide the rows' length falls back to 32. With calibration, `inputScales` s is set and
    /// the matrix holds W·diag(s): its inputs are divided by s first.
    public func quantize(_ name: String, type: WeightType,
                         groupSize: Int) throws -> (matrix: QuantizedMatrix, inputScales: [Float]?) {
        let (rows, cols) = try ModelFile.shape(file, name)
        let size = cols % groupSize == 0 ? groupSize : 32
        if calibration[name] == nil, !ModelFile.holds(file, name) {
            // Uncalibrated, a GGUF tensor is read and rounded a few rows at a time.
            let t = try file.tensor(name), chunkRows = max(1, ModelQuantizer.chunkFloats / cols)
            let w = try scratch(floats: try checkedProduct(min(rows, chunkRows), cols, what: "weights"))
            let m = try Quantizer.quantize(rows: rows, cols: cols, type: type, groupSize: size, symmetric: false,
                                           chunkRows: chunkRows, scratch: w) { range, out in
                try file.dequantize(t, start: range.lowerBound * cols, count: range.count * cols, into: out)
            }
            return (m, nil)
        }
        let w = try scratch(floats: try checkedProduct(rows, cols, what: "weights"))
        if ModelFile.holds(file, name) {
            let reference = try ModelFile.referenceWeights(file, name)
            reference.withUnsafeBufferPointer { w.update(from: $0.baseAddress!, count: $0.count) }
        } else {
            try file.dequantize(try file.tensor(name), into: w)
        }
        guard let recorded = calibration[name] else {
            let m = try Quantizer.quantize(w, rows: rows, cols: cols, type: type, groupSize: size, symmetric: false)
            return (m, nil)
        }
        let (statistics, coefficients) = try inputs(name, recorded)
        let (scales, _) = try ActivationAwareScaling.search(w, rows: rows, cols: cols, type: type, groupSize: size,
                                                            statistics: statistics)
        for r in 0..<rows { for c in 0..<cols { w[r * cols + c] *= scales[c] } }  // W·diag(s), in place
        let m = try ErrorFeedback.quantize(w, rows: rows, cols: cols, type: type, groupSize: size, symmetric: false,
                                           coefficients: try coefficients.rescaled(by: scales))
        return (m, scales)
    }

    /// Floats of weights rounded at a time without calibration: 4 MiB.
    static let chunkFloats = 1 << 20

    /// The scratch, grown to `floats` floats where it is smaller.
    private func scratch(floats: Int) throws -> UnsafeMutablePointer<Float> {
        if (scratch?.byteCount ?? 0) < floats * 4 {
            scratch = try AlignedBuffer(byteCount: try checkedProduct(floats, 4, what: "weights"))
        }
        return scratch!.floats()
    }

    private func inputs(_ name: String, _ recorded: (rows: [Float], samples: Int)) throws
        -> (statistics: ActivationAwareScaling.Statistics, coefficients: ErrorFeedback.Coefficients) {
        let source = LlamaModel.inputSource(name)
        if let lastInputs, lastInputs.source == source { return (lastInputs.statistics, lastInputs.coefficients) }
        let cols = recorded.rows.count / recorded.samples
        let (statistics, coefficients) = try recorded.rows.withUnsafeBufferPointer {
            (ActivationAwareScaling.Statistics($0.baseAddress!, samples: recorded.samples, cols: cols),
             try ErrorFeedback.coefficients(inputs: $0.baseAddress!, samples: recorded.samples, cols: cols,
                                            dampening: ModelQuantizer.dampening))
        }
        lastInputs = (source, statistics, coefficients)
        return (statistics, coefficients)
    }
}
