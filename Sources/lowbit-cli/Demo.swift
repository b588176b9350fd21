#if canImport(Glibc)
import Glibc
#endif
import LowBit

/// The README's first run: quantize one deterministic random matrix at every bit width, then
/// multiply with every family and print size, quantization error, product error and time.
func runDemo(_ args: Arguments) throws {
    try args.allow(["rows", "cols", "group-size", "threads", "n"])
    let rows = try args.int("rows", default: 4096), cols = try args.int("cols", default: 4096)
    let groupSize = try args.int("group-size", default: 128), n = try args.int("n", default: 1)
    try validateShape(rows: rows, cols: cols, groupSize: groupSize)
    guard n >= 1 else { throw CLIError("--n must be positive") }
    var rng = SplitMix(seed: 42)
    let w = (0..<(rows * cols)).map { _ in rng.normal() * 0.02 }
    let x = (0..<(n * cols)).map { _ in rng.normal() }
    print("lowbit \(LowBitVersion.string) demo: W \(rows) x \(cols) (Gaussian), group size \(groupSize), n = \(n), \(Runtime.threads) thread(s), tier \(Runtime.tier)")
    print("float32 weights: \(formatBytes(rows * cols * 4))")
    print("")
    print("type     bytes      bits/w  weight err  family     product err  time")
    for type in [WeightType.integer(bits: 4), .integer(bits: 3), .integer(bits: 2), .integer(bits: 1), .ternary] {
        let m = try w.withUnsafeBufferPointer {
            try Quantizer.quantize($0.baseAddress!, rows: rows, cols: cols, type: type, groupSize: groupSize, symmetric: false)
        }
        let wq = m.dequantized()
        let weightErr = normalizedError(wq.map(Double.init), w.map(Double.init))
        let reference = product64(wq, rows: rows, cols: cols, x, n: n)
        for (i, k) in [KernelFamily.lut, .bitSerial, .dequant].enumerated() {
            try m.prepare(k)
            var y = [Float](repeating: 0, count: n * rows)
            let seconds = try medianSeconds(repeats: 5) {
                try x.withUnsafeBufferPointer { xp in
                    try y.withUnsafeMutableBufferPointer { yp in
                        try m.multiply(xp.baseAddress!, n: n, into: yp.baseAddress!, kernel: k)
                    }
                }
            }
            let err = normalizedError(y.map(Double.init), reference)
            let lead = i == 0
                ? "\(type.description.padded(8)) \(formatBytes(m.byteCount).padded(10)) \(fmt(m.bitsPerWeight, 2).padded(7)) \(sci(weightErr).padded(11))"
                : String(repeating: " ", count: 39)
            print("\(lead) \(k.description.padded(10)) \(sci(err).padded(12)) \(formatTime(seconds))")
        }
    }
    print("")
    print("weight err: |W - Wq|^2 / |W|^2; product err: |y - y64|^2 / |y64|^2 against the Float64 product of Wq")
    print("(bytes include the LUT layout once packed; see `lowbit bench` for bandwidth ratios)")
}

/// Deterministic normals (SplitMix64 + Box-Muller), so every run shows the same matrix.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func normal() -> Float {
        let u = Double(next() >> 11) / Double(1 << 53) + 1e-300, v = Double(next() >> 11) / Double(1 << 53)
        return Float((-2 * log(u)).squareRoot() * cos(2 * Double.pi * v))
    }
}

func product64(_ w: [Float], rows: Int, cols: Int, _ x: [Float], n: Int) -> [Double] {
    var y = [Double](repeating: 0, count: n * rows)
    parallelFor(rows) { r in
        for i in 0..<n {
            var s: Double = 0
            for c in 0..<cols { s += Double(w[r * cols + c]) * Double(x[i * cols + c]) }
            y[i * rows + r] = s
        }
    }
    return y
}

func normalizedError(_ y: [Double], _ ref: [Double]) -> Double {
    var num = 0.0, den = 0.0
    for i in 0..<ref.count { num += (y[i] - ref[i]) * (y[i] - ref[i]); den += ref[i] * ref[i] }
    return den > 0 ? num / den : num
}

func fmt(_ v: Double, _ digits: Int) -> String {
    var s = String(Int((v * pow(10, Double(digits))).rounded()))
    while s.count <= digits { s = "0" + s }
    return digits == 0 ? s : String(s.dropLast(digits)) + "." + String(s.suffix(digits))
}

func sci(_ v: Double) -> String {
    if v == 0 { return "0" }
    let e = Int(floor(log10(abs(v))))
    return "\(fmt(v / pow(10, Double(e)), 2))e\(e)"
}

func formatBytes(_ b: Int) -> String {
    if b >= 1 << 20 { return "\(fmt(Double(b) / Double(1 << 20), 2)) MiB" }
    if b >= 1 << 10 { return "\(fmt(Double(b) / 1024, 1)) KiB" }
    return "\(b) B"
}

func formatTime(_ s: Double) -> String {
    s >= 1e-3 ? "\(fmt(s * 1e3, 3)) ms" : "\(fmt(s * 1e6, 1)) us"
}
