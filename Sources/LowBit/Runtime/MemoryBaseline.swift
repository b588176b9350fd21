#if LOWBIT_AVX2
import _Builtin_intrinsics.intel
#endif
import Synchronization

/// The memory-read baseline of `lowbit bench`: the time to stream the same bytes a kernel reads,
/// split over the same threads, with 32-byte loads and nothing else (a xor fold keeps the loads live).
public enum MemoryBaseline {
    /// Reads `bytes` bytes at `base` (bytes a multiple of 32) over `Runtime.threads` threads.
    public static func read(_ base: UnsafeRawPointer, bytes: Int) -> UInt64 {
        let sink = Atomic<UInt64>(0)
        let blocks = bytes / 1024  // whole KiB per thread range; the tail is read by the caller
        parallelRanges(blocks) { range in
            _ = sink.bitwiseXor(readRange(base + range.lowerBound * 1024, bytes: range.count * 1024), ordering: .relaxed)
        }
        return sink.load(ordering: .relaxed) ^ readRange(base + blocks * 1024, bytes: bytes - blocks * 1024)
    }

    @inline(__always)
    static func readRange(_ p: UnsafeRawPointer, bytes: Int) -> UInt64 {
        #if LOWBIT_AVX2
        var a = _mm256_setzero_si256(), b = a, c = a, d = a
        var i = 0
        while i + 128 <= bytes {
            a = _mm256_xor_si256(a, p.loadUnaligned(fromByteOffset: i, as: __m256i.self))
            b = _mm256_xor_si256(b, p.loadUnaligned(fromByteOffset: i + 32, as: __m256i.self))
            c = _mm256_xor_si256(c, p.loadUnaligned(fromByteOffset: i + 64, as: __m256i.self))
            d = _mm256_xor_si256(d, p.loadUnaligned(fromByteOffset: i + 96, as: __m256i.self))
            i += 128
        }
        while i + 32 <= bytes { a = _mm256_xor_si256(a, p.loadUnaligned(fromByteOffset: i, as: __m256i.self)); i += 32 }
        let v = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d))
        return UInt64(bitPattern: v[0] ^ v[1] ^ v[2] ^ v[3])
        #else
        var a = SIMD4<UInt64>(), b = a
        var i = 0
        while i + 64 <= bytes {
            a ^= p.loadUnaligned(fromByteOffset: i, as: SIMD4<UInt64>.self)
            b ^= p.loadUnaligned(fromByteOffset: i + 32, as: SIMD4<UInt64>.self)
            i += 64
        }
        while i + 32 <= bytes { a ^= p.loadUnaligned(fromByteOffset: i, as: SIMD4<UInt64>.self); i += 32 }
        let v = a ^ b
        return v[0] ^ v[1] ^ v[2] ^ v[3]
        #endif
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

    /// The weight bytes a family's kernel streams per product: its own layout where it has one,
    /// else the canonical codes and group parameters.
    public func kernelByteCount(_ family: KernelFamily) throws -> Int {
        if type.isMixed { return try valueCodes().kernelByteCount(family) }
        switch family {
        case .lut, .auto: return try lutLayout().byteCount
        case .dequant where Runtime.useAVX2: return try dequantLayout().byteCount
        case .bitSerial where Runtime.useAVX2: return try bitSerialLayout().byteCount
        default: return codes.byteCount + scales.byteCount + offsets.byteCount
        }
    }
}

extension AlignedBuffer {
    /// Whether `evictFromCache` flushes: a build with CLFLUSHOPT, on a CPU that has it.
    public static let canEvictFromCache: Bool = {
        #if LOWBIT_CLFLUSHOPT
        return Runtime.cpuFeatures.contains("clflushopt")
        #else
        return false
        #endif
    }()

    /// Flushes every cache line of the buffer (where `canEvictFromCache`; elsewhere nothing).
    public func evictFromCache() {
        #if LOWBIT_CLFLUSHOPT
        guard AlignedBuffer.canEvictFromCache else { return }
        for offset in stride(from: 0, to: max(byteCount, 1), by: 64) { _mm_clflushopt(pointer + offset) }
        atomicMemoryFence(ordering: .sequentiallyConsistent)  // the flushes complete before what follows
        #endif
    }
}
