#if canImport(Glibc)
import Glibc
#endif

/// A value behind a pthread mutex. The standard library's `Mutex` would do, but its lock lives
/// in the prebuilt Synchronization library, which ThreadSanitizer does not see into: every value
/// it guards was reported as a race. pthread's lock is one the sanitizer understands, so the
/// TSan build of the tests checks what these locks protect.
public final class Locked<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
