/// Float32 matrix × activation rows, register-tiled: the reference model's layers, and BitStack
/// products of many activation rows on a slice of weights rebuilt in Float32 (`Stack.multiply`).
/// The weights go in panels of 16 rows, column by column, so that the product is an outer
/// product per column, without the horizontal sums of row-by-row dot products. Against the
/// row-major 2 weight rows × 4 activation rows of dot products it replaced, one 512-token
/// perplexity chunk (2 threads) took 1.2–1.6 s instead of 1.8–1.9 s on the reference model and
/// 1.6–1.7 s instead of 2.0 s on a BitStack at 55 MB.
public enum FloatTile {
    /// Rows per panel of `pack`: two AVX2 vectors per column.
    public static let panelRows = 16

    /// Floats `pack` writes for a rows × cols matrix (rows rounded up to whole panels).
    public static func packedCount(rows: Int,
                                   cols: Int) -> Int { (rows + panelRows - 1) / panelRows * panelRows * cols }
}
