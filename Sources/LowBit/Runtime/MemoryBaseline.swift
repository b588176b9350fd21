import LowBitCPU
import Synchronization

/// The memory-read baseline of `lowbit bench`: the time to stream the same bytes a kernel reads,
/// split over the same threads, with 32-byte loads and nothing else (a xor fold keeps the loads live).
public enum MemoryBaseline {
    /// Reads `bytes` bytes at `base` (bytes a multiple of 32) over `Runtime.threads` threads.
    public static func read(_ base: UnsafeRawPointer, bytes: Int) -> UInt64 {
        let sink = Atomic<UInt64>(0)
        let blocks = bytes / 1024  // whole KiB per thread range; the tail is read by the caller
        parallelRanges(blocks) { range in
            _ = sink.bitwiseXor(readRange(base + range.lowerBound * 1024, bytes: range.count * 1024),
                                ordering: .relaxed)
        }
        return sink.load(ordering: .relaxed) ^ readRange(base + blocks * 1024, bytes: bytes - blocks * 1024)
    }

    static func readRange(_ p: UnsafeRawPointer, bytes: Int) -> UInt64 { Tiers.active.readBytes(p, bytes: bytes) }

    /// Reads a buffer's whole 32-byte units (a layout's buffers are sized in them; a tail of a few
    /// bytes is not worth a second pass).
    public static func read(_ buffer: AlignedBuffer) -> UInt64 {
        read(UnsafeRawPointer(buffer.pointer), bytes: buffer.byteCount / 32 * 32)
    }
}

extension QuantizedMatrix {
    /// A deep copy (codes, group parameters and any packed kernel layout), for benchmarks that
    /// rotate through copies to stream weights from DRAM.
    public func clone() throws -> QuantizedMatrix {
        let m = try QuantizedMatrix(rows: rows, cols: cols, groupSize: groupSize, type: type, symmetric: symmetric,
                                    allowWideCodes: true)
        for (dst, src) in [(m.codes, codes), (m.scales, scales), (m.offsets, offsets)] {
            dst.pointer.copyMemory(from: src.pointer, byteCount: src.byteCount)
        }
        if let types = groupTypes { m.groupTypes!.pointer.copyMemory(from: types.pointer, byteCount: types.byteCount) }
        for family in packedLayouts { try m.prepare(family) }
        return m
    }

    /// The weight bytes a family's kernel streams per product: its own layout where it has one
    /// at this tier (LUT's for `auto`), else the canonical codes and group parameters.
    public func kernelByteCount(_ family: KernelFamily) throws -> Int {
        if type.isMixed { return try valueCodes().kernelByteCount(family) }
        let kernels = (family == .auto ? KernelFamily.lut : family).kernels
        if let layout = try kernels?.pack(self) { return layout.byteCount }
        return codes.byteCount + scales.byteCount + offsets.byteCount
    }
}

extension AlignedBuffer {
    /// Whether `evictFromCache` flushes: a CPU with CLFLUSHOPT.
    public static let canEvictFromCache = CPUFeatures.current.contains(.clflushopt)

    /// Flushes every cache line of the buffer (where `canEvictFromCache`; elsewhere nothing).
    public func evictFromCache() {
        guard AlignedBuffer.canEvictFromCache else { return }
        lowbit_cpu_flush(pointer, max(byteCount, 1))
    }
}
