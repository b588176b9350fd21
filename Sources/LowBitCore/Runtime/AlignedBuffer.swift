#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import LowBitCPU

/// A fixed-size, 64-byte aligned, zero-initialised block of memory owned by one object.
/// Kernels read it through raw pointers; it never moves and is freed when the owner goes.
public final class AlignedBuffer: @unchecked Sendable {
    public let byteCount: Int
    public let pointer: UnsafeMutableRawPointer

    public init(byteCount: Int) throws {
        var raw: UnsafeMutableRawPointer? = nil
        let huge = byteCount >= AlignedBuffer.hugePageMinimum
        let size = huge ? (byteCount + AlignedBuffer.hugePage - 1) / AlignedBuffer.hugePage * AlignedBuffer.hugePage
            : max(byteCount, 64)
        guard posix_memalign(&raw, huge ? AlignedBuffer.hugePage : 64, size) == 0, let p = raw else {
            throw LowBitError(.outOfMemory, "could not allocate \(byteCount) bytes")
        }
        #if canImport(Glibc)
        if huge { _ = madvise(p, size, MADV_HUGEPAGE) }
        #endif
        memset(p, 0, size)
        self.byteCount = byteCount
        self.pointer = p
    }

    deinit { free(pointer) }

    /// Buffers of at least this many bytes are whole 2 MiB pages where the system has them
    /// (transparent huge pages): a product streaming a large matrix then walks one page table
    /// entry per 2 MiB rather than per 4 KiB. The rounding adds at most one page to a buffer.
    static let hugePage = 2 << 20, hugePageMinimum = 4 << 20

    /// Gives the memory the allocator holds free back to the system. Reading a file's tensors
    /// goes through the allocator, which keeps what was freed for the process; after weights are
    /// let go (a smaller budget), the process should shrink.
    public static func releaseFreeMemory() { lowbit_release_free_memory() }

    @inlinable public func bytes() -> UnsafeMutablePointer<UInt8> { pointer.assumingMemoryBound(to: UInt8.self) }
    @inlinable public func floats() -> UnsafeMutablePointer<Float> { pointer.assumingMemoryBound(to: Float.self) }
}

/// Per-thread scratch memory for products, so a product allocates only the first time a thread
/// needs more than it had. Never shared between threads, so concurrent products cannot collide.
/// Slots let nested users coexist: kernels use slot 0; a caller that keeps data in its own
/// scratch across a kernel call (the BitStack product, a layer's input scaling) uses slot 1;
/// the dequant family's 16-bit activation split, between the two, uses slot 2.
public final class Workspace: @unchecked Sendable {
    private var buffers: [UnsafeMutableRawPointer?] = [nil, nil, nil]
    private var capacities = [0, 0, 0]

    /// A 64-byte aligned region of at least `bytes`, valid until the next reserve of this slot
    /// on this thread.
    public func reserve(_ bytes: Int, slot: Int = 0) throws -> UnsafeMutableRawPointer {
        if bytes > capacities[slot] {
            var raw: UnsafeMutableRawPointer? = nil
            let size = max(bytes, 4096)
            if posix_memalign(&raw, 64, size) != 0 {
                throw LowBitError(.outOfMemory, "could not allocate a \(size)-byte workspace")
            }
            free(buffers[slot])
            buffers[slot] = raw
            capacities[slot] = size
        }
        return buffers[slot]!
    }

    deinit { for b in buffers { free(b) } }

    nonisolated(unsafe) private static var key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { ptr in if let ptr { Unmanaged<Workspace>.fromOpaque(ptr).release() } }
        return k
    }()

    /// The calling thread's workspace, created on first use and released when the thread ends.
    public static var current: Workspace {
        if let p = pthread_getspecific(key) { return Unmanaged<Workspace>.fromOpaque(p).takeUnretainedValue() }
        let w = Workspace()
        pthread_setspecific(key, Unmanaged.passRetained(w).toOpaque())
        return w
    }
}
