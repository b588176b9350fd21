import LowBitCPU

/// Software prefetching of packed weight codes, shared by the LUT and dequant kernels.
package enum CodePrefetch {
    /// Bytes of codes the kernels keep prefetched ahead of where they read, split evenly over
    /// the row blocks they stream at once (`distance`). On the Intel VM of earlier sessions,
    /// weights streamed from DRAM (11008×4096, 1 thread) ran at 0.81–0.85 of read speed at N = 1
    /// without (then four streams of row blocks) and 0.93–1.0 with 4 KiB ahead; at N = 2 (one
    /// block at a time) 0.50–0.75 without, 0.81–0.96 with; 1 KiB ahead of a lone stream was too
    /// little (0.70–0.75), 8 KiB no better than 4. The LUT kernel's one-stream quads prefetch
    /// further, into L2 (`LUTKernelAVX2.quadPrefetchDistance`).
    /// Prefetches past the end of a layout are harmless: they never fault.
    static let window = 4096

    /// How far ahead each of `streams` code streams is prefetched.
    @inline(__always)
    package static func distance(streams: Int) -> Int { window / streams }

    /// The cache line holding `address`.
    @inline(__always)
    package static func line(_ address: UnsafeRawPointer) { lowbit_prefetch(address) }

    /// The `bytes` of codes at `codes`, `distance` bytes ahead: one prefetch per 64 bytes (a LUT
    /// chunk is 32·bits bytes: at 1 bit, every other chunk repeats a line).
    @inline(__always)
    package static func ahead(of codes: UnsafeRawPointer, bytes: Int, distance: Int) {
        for offset in stride(from: 0, to: bytes, by: 64) { lowbit_prefetch(codes + distance + offset) }
    }

    /// As `ahead`, into L2 only.
    @inline(__always)
    package static func aheadToL2(of codes: UnsafeRawPointer, bytes: Int, distance: Int) {
        for offset in stride(from: 0, to: bytes, by: 64) { lowbit_prefetch_l2(codes + distance + offset) }
    }
}
