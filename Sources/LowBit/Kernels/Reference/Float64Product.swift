/// The yardstick of every product check (tests, `lowbit demo`, `lowbit bench`): Y = X·Wᵀ in
/// Float64 for row-major W (rows × cols) and X (n × cols), and the normalized error against it.
public func float64Product(_ w: [Float], rows: Int, cols: Int, _ x: [Float], n: Int) -> [Double] {
    var y = [Double](repeating: 0, count: n * rows)
    y.withUnsafeMutableBufferPointer { yp in
        parallelFor(rows) { r in
            for i in 0..<n {
                var s: Double = 0
                for c in 0..<cols { s += Double(w[r * cols + c]) * Double(x[i * cols + c]) }
                yp[i * rows + r] = s
            }
        }
    }
    return y
}

/// ‖y − ref‖² / ‖ref‖² (‖y − ref‖² when ref is zero).
public func normalizedError<Y: Collection, R: Collection>(_ y: Y, _ ref: R) -> Double
    where Y.Element: BinaryFloatingPoint, R.Element: BinaryFloatingPoint {
    var num: Double = 0, den: Double = 0
    for (a, b) in zip(y, ref) {
        let e = Double(a) - Double(b)
        num += e * e
        den += Double(b) * Double(b)
    }
    return den > 0 ? num / den : num
}
