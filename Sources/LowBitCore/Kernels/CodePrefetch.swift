import LowBitCPU

/// Software prefetching of packed weight codes, shared by the LUT and dequant kernels.
package enum CodePrefetch {
    /// Bytes of codes the kernels keep prefetched ahead of where they read, split evenly over
    /// the row blocks they stream at once (`distance`). 4 KiB is what brings weights streamed
    /// from DRAM close to read speed at N = 1 and 2 (`lowbit bench`'s 11008×4096 dram case); 1 KiB
    /// ahead of a lone stream is too little and 8 KiB no better. The LUT kernel's one-stream quads
    /// prefetch further, into L2 (`LUTLayout.quadPrefetchDistance`).
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
