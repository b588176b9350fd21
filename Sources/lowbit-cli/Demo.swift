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
    var rng = SplitMix64(seed: 42)
    let w = (0..<(rows * cols)).map { _ in rng.normal() * 0.02 }
    let x = (0..<(n * cols)).map { _ in rng.normal() }
    print("lowbit \(LowBitVersion.string) demo: W \(rows) x \(cols) (Gaussian), group size \(groupSize), n = \(n), "
          + "\(Runtime.threads) thread(s), tier \(Runtime.simdTier)")
    print("float32 weights: \(formatBytes(rows * cols * 4))")
    print("")
    print("type     bytes      bits/w  weight err  family     product err  time")
    for type in [WeightType.integer(bits: 4), .integer(bits: 3), .integer(bits: 2), .integer(bits: 1), .ternary] {
        let m = try w.withUnsafeBufferPointer {
            try Quantizer.quantize($0.baseAddress!, rows: rows, cols: cols, type: type, groupSize: groupSize,
                                   symmetric: false)
        }
        let wq = m.dequantized()
        let weightErr = normalizedError(wq, w)
        let reference = float64Product(wq, rows: rows, cols: cols, x, n: n)
        for (i, k) in KernelFamily.families.filter({ $0 != .reference }).enumerated() {
            try m.prepare(k)
            var y = [Float](repeating: 0, count: n * rows)
            let seconds = try medianSeconds(repeats: 5) {
                try x.withUnsafeBufferPointer { xp in
                    try y.withUnsafeMutableBufferPointer { yp in
                        try m.multiply(xp.baseAddress!, n: n, into: yp.baseAddress!, kernel: k)
                    }
                }
            }
            let err = normalizedError(y, reference)
            let lead = i == 0
                ? "\(type.description.padded(8)) \(formatBytes(m.byteCount).padded(10)) "
                    + "\(fmt(m.bitsPerWeight, 2).padded(7)) \(sci(weightErr).padded(11))"
                : String(repeating: " ", count: 39)
            print("\(lead) \(k.description.padded(10)) \(sci(err).padded(12)) \(formatTime(seconds))")
        }
    }
    print("")
    print("weight err: |W - Wq|^2 / |W|^2; product err: |y - y64|^2 / |y64|^2 against the Float64 product of Wq")
    print("(bytes include the LUT layout once packed; see `lowbit bench` for bandwidth ratios)")
}

/// v with `digits` decimals. Any Double prints: a measured perplexity can be 1e19 or infinite,
/// which no Int holds, so magnitudes past 1e15 go to `sci`.
func fmt(_ v: Double, _ digits: Int) -> String {
    guard v.isFinite else { return v.isNaN ? "nan" : v < 0 ? "-inf" : "inf" }
    let scaled = (abs(v) * pow(10, Double(digits))).rounded()
    guard scaled < 1e15 else { return sci(v) }
    var s = String(Int(scaled))
    while s.count <= digits { s = "0" + s }
    let text = digits == 0 ? s : String(s.dropLast(digits)) + "." + String(s.suffix(digits))
    return v < 0 && scaled > 0 ? "-" + text : text
}

func sci(_ v: Double) -> String {
    guard v.isFinite else { return fmt(v, 0) }
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
