/// The spec every family is held to: y[n, r] = Σ_c x[n, c] · (d·q[r, c] + m), summed in Float64.
/// Slow by design (one decode per weight); the REFERENCE kernel choice runs it.
enum ReferenceKernel {
    static func multiply(_ m: QuantizedMatrix, x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>) {
        parallelFor(m.rows) { r in
            for i in 0..<n {
                var sum: Double = 0
                for c in 0..<m.cols { sum += Double(m.weight(row: r, col: c)) * Double(x[i * m.cols + c]) }
                y[i * m.rows + r] = Float(sum)
            }
        }
    }
}
