/// Float32 matrix × activation rows, register-tiled: the reference model's layers, and BitStack
/// products of many activation rows on a slice of weights rebuilt in Float32 (`Stack.multiply`).
/// The weights go in panels of 16 rows, column by column, so that the product is an outer
/// product per column, without the horizontal sums that row-by-row dot products end in (they
/// cost a reference model's perplexity run about a third of its time).
public enum FloatTile {
    /// Rows per panel of `pack`: two AVX2 vectors per column.
    public static let panelRows = 16

    /// Floats `pack` writes for a rows × cols matrix (rows rounded up to whole panels).
    public static func packedCount(rows: Int,
                                   cols: Int) -> Int { (rows + panelRows - 1) / panelRows * panelRows * cols }
}
