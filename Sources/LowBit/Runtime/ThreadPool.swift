#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A persistent pool of worker threads for products (no thread creation per call).
///
/// `run(parts:)` hands part 0 to the caller and part i to worker i − 1. Workers spin for about a
/// millisecond after each job before sleeping on a condition variable, so the back-to-back
/// products of a decode loop are dispatched without a system call (on the 2-core VM of the
/// README the second part of a job started 0.4–0.5 µs after the call, and an empty 2-part job
/// took 0.8–0.9 µs in all; `lowbit bench` prints both), and an idle pool costs nothing. One job
/// runs at a time: a caller that finds the pool busy (another thread's product, or a product
/// started from inside a job) runs all its parts itself. Parts never depend on which thread runs
/// them, so results are the same either way.
final class ThreadPool: @unchecked Sendable {
    static let shared = ThreadPool()

    private let generation = Atomic<Int>(0)
    private let unfinished = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private let sleepers = Atomic<Int>(0)
    private var job: ((Int) -> Void)? = nil
    private var parts = 0
    private var workerCount = 0
    private var mutex = pthread_mutex_t()
    private var wake = pthread_cond_t()
    /// Spin iterations before a worker sleeps (about a millisecond of atomic loads).
    private let spinLimit = 300_000

    private init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&wake, nil)
    }

    /// One spin step. (`_mm_pause` is not callable from Swift: clang declares it as an external
    /// function. A plain atomic re-load is the spin.)
    @inline(__always) private static func relax() {}

    /// Starts workers until there are `count` (called with `busy` held, so never concurrently).
    private func ensureWorkers(_ count: Int) {
        while workerCount < count {
            let index = workerCount
            // The worker starts from the current generation, so it takes the job about to be published
            // even if the thread is scheduled only after that.
            let context = Unmanaged.passRetained(WorkerContext(pool: self, index: index,
                                                               generation: generation.load(ordering: .acquiring))).toOpaque()
            var thread = pthread_t()
            let started = pthread_create(&thread, nil, { raw in
                let ctx = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
                ctx.pool.workerLoop(index: ctx.index, seen: ctx.generation)
                return nil
            }, context)
            if started != 0 {
                Unmanaged<WorkerContext>.fromOpaque(context).release()
                return  // fewer workers than asked: the caller runs the remaining parts itself
            }
            pthread_detach(thread)
            workerCount += 1
        }
    }

    private func workerLoop(index: Int, seen initial: Int) {
        var seen = initial
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                if spins < spinLimit {
                    spins += 1
                    ThreadPool.relax()
                } else {
                    pthread_mutex_lock(&mutex)
                    sleepers.add(1, ordering: .sequentiallyConsistent)
                    while generation.load(ordering: .acquiring) == seen { pthread_cond_wait(&wake, &mutex) }
                    sleepers.subtract(1, ordering: .sequentiallyConsistent)
                    pthread_mutex_unlock(&mutex)
                }
            }
            seen = generation.load(ordering: .acquiring)
            let part = index + 1
            if part < parts, let body = job { body(part) }
            unfinished.subtract(1, ordering: .releasing)
        }
    }

    /// Runs body(0..<parts), spread over the caller and up to parts − 1 workers; returns when all
    /// parts are done.
    func run(parts count: Int, _ body: (Int) -> Void) {
        if count <= 1 {
            if count == 1 { body(0) }
            return
        }
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            for p in 0..<count { body(p) }
            return
        }
        ensureWorkers(count - 1)
        withoutActuallyEscaping(body) { body in
            job = body
            parts = count
            unfinished.store(workerCount, ordering: .relaxed)
            generation.add(1, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(&mutex)
                pthread_cond_broadcast(&wake)
                pthread_mutex_unlock(&mutex)
            }
            body(0)
            // Parts the workers could not take (thread creation failed) run here.
            for p in (workerCount + 1)..<max(count, workerCount + 1) { body(p) }
            while unfinished.load(ordering: .acquiring) > 0 { ThreadPool.relax() }
            job = nil
        }
        busy.store(false, ordering: .releasing)
    }
}

private final class WorkerContext {
    let pool: ThreadPool
    let index: Int
    let generation: Int
    init(pool: ThreadPool, index: Int, generation: Int) {
        self.pool = pool
        self.index = index
        self.generation = generation
    }
}
