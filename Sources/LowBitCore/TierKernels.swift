/// What an instruction-set tier provides: every loop whose speed depends on the instruction set,
/// on raw pointers and this module's layouts. The library calls a tier only through
/// `Tiers.active` (module LowBit), never by name, so adding a tier is a target and one line of
/// `Tiers.all`. `PortableKernels` is the reference each tier is tested against; a tier may run
/// another's kernel where it has no faster one.
package protocol TierKernels {
    static var tier: SIMDTier { get }
    /// How this tier runs a kernel family ("lut", "bitserial", "dequant"), said plainly for `lowbit info`.
    static func note(family: String) -> String

    // Float vectors: quantizers, BitStack products, the model's layers.

    /// Σ a[i]·b[i] for i < count.
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float
    /// The four sums Σ c[i]·bⱼ[i] (j = 0…3) for i < count, where bⱼ = b + j·stride.
    static func dot4(_ c: UnsafePointer<Float>, _ b: UnsafePointer<Float>, stride: Int,
                     count: Int) -> (Float, Float, Float, Float)
    /// (min, max) of count ≥ 1 finite values.
    static func range(_ a: UnsafePointer<Float>, count: Int) -> (Float, Float)
    /// Σw·t and Σt² over the ternary values t = q − 1 the quantizer gives w for (d, m = −d).
    static func ternarySums(_ w: UnsafePointer<Float>, count: Int, d: Float) -> (wt: Float, tt: Float)
    /// out[i] = h[i] · x[i]
    static func multiplyHalf(_ h: UnsafePointer<Float16>, _ x: UnsafePointer<Float>,
                             into out: UnsafeMutablePointer<Float>,
                             count: Int)
    /// y[i] += h[i] · p[i]
    static func multiplyAddHalf(_ h: UnsafePointer<Float16>, _ p: UnsafePointer<Float>,
                                into y: UnsafeMutablePointer<Float>,
                                count: Int)
    /// A fold (xor) of `bytes` bytes at p, read as widely as the tier reads: the memory-read baseline.
    static func readBytes(_ p: UnsafeRawPointer, bytes: Int) -> UInt64

    // Activations, tables and float panels: the same bytes at every tier.

    static func quantize(_ acts: Int8Activations, _ x: UnsafePointer<Float>, into base: UnsafeMutableRawPointer)
    static func buildTables(_ tables: LUTTables, _ x: UnsafePointer<Float>, into base: UnsafeMutableRawPointer)
    /// `FloatTile.pack` and `FloatTile.product`.
    static func packPanels(_ w: UnsafePointer<Float>, rows: Int, cols: Int, into p: UnsafeMutablePointer<Float>)
    static func panelProduct(_ p: UnsafePointer<Float>, rows: Int, cols: Int, x: UnsafePointer<Float>, n: Int,
                             y: UnsafeMutablePointer<Float>, yStride: Int)

    /// BitStack: w[c] += S[row, c]·Σ_j u[j]·v[j·cols + c] for c < cols, the signs S those of a
    /// sign matrix's layout.
    static func addSignedRow(_ signs: LUTLayout, row: Int, u: UnsafePointer<Float>, v: UnsafePointer<Float>, k: Int,
                             cols: Int, into w: UnsafeMutablePointer<Float>)

    // The model's layers.

    /// Causal attention of `queries` query heads sharing one key/value head (`Attention.attend`),
    /// keys and values as the KV cache holds them.
    static func attend(_ q: UnsafePointer<Float>, queries: Int, keys: UnsafePointer<Float16>,
                       values: UnsafePointer<Float16>,
                       stride: Int, length: Int, dim: Int, scale: Float, scores: UnsafeMutablePointer<Float>,
                       into out: UnsafeMutablePointer<Float>)
    /// out[i] = x[i] rounded to the nearest Float16 (ties to even), saturated at ±65504
    /// (`HalfFloats.saturated`): the KV cache's keys and values.
    static func halves(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float16>, count: Int)
    /// gate[i] ← silu(gate[i])·up[i] for i < count.
    static func swiGLU(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int)
    /// y[i·rows + r] for r in `range`: the rows of m, Q8_0 blocks (Float16 d, 32 Int8 q), × n
    /// float activation rows.
    static func q8_0Rows(_ m: GroupedBlockMatrix, x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>,
                         range: Range<Int>)
    /// `count` blocks of `type` at `blocks`, `stride` bytes apart, decoded into out (count ·
    /// type.elements floats): s·v − m, the file's values bit for bit (`GroupedBlocks`).
    static func groupedBlockWeights(_ type: GroupedBlockType, _ blocks: UnsafeRawPointer, count: Int, stride: Int,
                                    into out: UnsafeMutablePointer<Float>)
    /// y[i·rows + r] for r in `range`: the rows of m × n activation rows rounded to int8 by
    /// `acts`, a scale per block (row i at actBase + i·actStride): each block's sums in integers
    /// (`GroupedBlockLinear`).
    static func groupedBlockRows(_ m: GroupedBlockMatrix,
                                 acts: Int8Activations, actBase: UnsafeMutableRawPointer, actStride: Int, n: Int,
                                 y: UnsafeMutablePointer<Float>, range: Range<Int>)
}

/// The kernel families' packed layouts: tiers with SIMD registers run each family on a layout
/// permuted for them (`LUTLayout`, `DequantLayout`, `BitSerialLayout`); the portable tier runs
/// the canonical codes and has none.
package protocol PackedTierKernels: TierKernels {
    /// Y = X·Wᵀ through tables (x: n × cols, y: n × rows).
    static func lutMultiply(_ layout: LUTLayout, rows: Int, cols: Int, groupSize: Int, x: UnsafePointer<Float>, n: Int,
                            y: UnsafeMutablePointer<Float>) throws
    /// A sign matrix's product for the row blocks `rowBlocks`, from tables already built for the
    /// n activation rows at `tableBase + i·tableStride` (BitStack).
    static func signProduct(_ layout: LUTLayout, groupSize: Int, rows: Int, n: Int, tables: LUTTables,
                            tableBase: UnsafeMutableRawPointer, tableStride: Int, y: UnsafeMutablePointer<Float>,
                            rowBlocks: Range<Int>)
    /// Y = X·Wᵀ with int8 activations, or float ones where `floatActivations`.
    static func dequantMultiply(_ layout: DequantLayout, rows: Int, cols: Int, groupSize: Int, x: UnsafePointer<Float>,
                                n: Int, y: UnsafeMutablePointer<Float>, floatActivations: Bool) throws
    /// Y = X·Wᵀ with `acts.bits`-bit activations prepared in `workspace` (n rows of `rowBytes`).
    static func bitSerialMultiply(_ layout: BitSerialLayout, groupSize: Int, acts: BitSerialActivations,
                                  x: UnsafePointer<Float>, n: Int, rows: Int, workspace: UnsafeMutableRawPointer,
                                  rowBytes: Int, y: UnsafeMutablePointer<Float>)
}
