import LowBit

/// Causal attention of the query heads that share one key/value head (grouped-query attention):
///   outⱼ = Σₜ softmax(scale · qⱼ·kₜ)ₜ · vₜ  for t < length and j < queries,
/// where qⱼ = q + j·dim and outⱼ = out + j·dim hold `dim` floats, kₜ = keys + t·stride and
/// vₜ = values + t·stride `dim` Float16s (the KV cache's), and `scores` has room for
/// queries·length floats. Each SIMD tier has its own loops (`TierKernels.attend`); the portable
/// tier's read as the formula.
enum Attention {
    static func attend(_ q: UnsafePointer<Float>, queries: Int, keys: UnsafePointer<Float16>,
                       values: UnsafePointer<Float16>, stride: Int,
                       length: Int, dim: Int, scale: Float, scores: UnsafeMutablePointer<Float>,
                       into out: UnsafeMutablePointer<Float>) {
        Tiers.active.attend(q, queries: queries, keys: keys, values: values, stride: stride, length: length, dim: dim,
                            scale: scale, scores: scores, into: out)
    }
}
