import LowBitCore

extension PortableKernels {
    /// `FloatTile.pack`, one value at a time.
    package static func packPanels(_ w: UnsafePointer<Float>, rows: Int, cols: Int,
                                   into p: UnsafeMutablePointer<Float>) {
        for panel in 0..<((rows + FloatTile.panelRows - 1) / FloatTile.panelRows) {
            let out = p + panel * FloatTile.panelRows * cols, first = panel * FloatTile.panelRows
            for r in 0..<FloatTile.panelRows {
                let row = first + r
                for c in 0..<cols { out[c * FloatTile.panelRows + r] = row < rows ? w[row * cols + c] : 0 }
            }
        }
    }


    /// `FloatTile.product`: one activation row at a time, 16 lanes per column of a panel.
    package static func panelProduct(_ p: UnsafePointer<Float>, rows: Int, cols: Int, x: UnsafePointer<Float>, n: Int,
                                     y: UnsafeMutablePointer<Float>, yStride: Int) {
        let block = max(6, (256 * 1024 / (cols * 4)) / 6 * 6)
        let panels = (rows + FloatTile.panelRows - 1) / FloatTile.panelRows
        for start in stride(from: 0, to: n, by: block) {
            let end = min(n, start + block)
            for panel in 0..<panels {
                let first = panel * FloatTile.panelRows, valid = min(FloatTile.panelRows, rows - first)
                let pp = p + first * cols
                for t in start..<end {
                    var acc = SIMD16<Float>()
                    let xt = x + t * cols
                    // Multiply, then add: where the compiler targets no FMA (this tier), a fused
                    // `addProduct` is 16 libm `fmaf` calls per column.
                    for c in 0..<cols {
                        let column = UnsafeRawPointer(pp + c * FloatTile.panelRows)
                            .loadUnaligned(as: SIMD16<Float>.self)
                        acc += column * SIMD16(repeating: xt[c])
                    }
                    for r in 0..<valid { y[t * yStride + first + r] = acc[r] }
                }
            }
        }
    }
}
