#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A persistent pool of worker threads for products (no thread creation per call).
///
/// `run(parts:)` publishes a job of numbered parts; the caller and the workers claim parts one at
/// a time from a shared counter until none is left, so a worker that the system has not
/// scheduled yet leaves its part to whoever is running (the caller never waits for a thread that
/// has not started), and the caller waits only for parts already under way. Workers spin a while
/// after each job before sleeping on a condition variable, so the back-to-back products of a
/// decode loop are dispatched without a system call; a worker that keeps waking too late to
/// claim anything (its core is busy with other work) spins less, so it stops taking time from
/// the thread that does the work. When the caller keeps waiting for parts whose worker the system
/// has paused (another program holds the core), the pool runs jobs on the caller alone for a
/// while, then tries its workers again (`ContentionGuard`): more threads never make a product
/// much slower than one. One job runs at a time: a caller that finds the pool busy
/// (another thread's product, or a product started from inside a job) runs all its parts
/// itself. Parts never depend on which thread runs them, so results are the same either way.
final class ThreadPool: @unchecked Sendable {
    static let shared = ThreadPool()

    /// The job being run: generation (high 32 bits), part count (bits 16-31) and the next part
    /// to claim (bits 0-15). One word, so a claim can never take a part of a newer job.
    private let state = Atomic<UInt64>(0)
    private let completed = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private let sleepers = Atomic<Int>(0)
    private var job: ((Int) -> Void)? = nil
    private var workerCount = 0
    /// Read and written only by the caller that holds `busy` (and by tests between jobs).
    var contention = ContentionGuard()
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let wake: UnsafeMutablePointer<pthread_cond_t>
    /// Spin iterations before a worker sleeps: about a millisecond of atomic loads at most, and
    /// down to `minimumSpin` for a worker whose wake-ups find nothing left to claim.
    private static let maximumSpin = 300_000, minimumSpin = 1_000
    /// Parts of one job: more than any thread count (`Runtime.setThreads` takes up to 1024).
    static let maximumParts = 0xFFFF

    private init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        wake = .allocate(capacity: 1)
        wake.initialize(to: pthread_cond_t())
        pthread_cond_init(wake, nil)
    }

    /// One spin step. (`_mm_pause` is not callable from Swift: clang declares it as an external
    /// function. A plain atomic re-load is the spin.)
    @inline(__always) private static func relax() {}

    private static func generation(_ word: UInt64) -> UInt64 { word >> 32 }

    /// Starts workers until there are `count` (called with `busy` held, so never concurrently).
    private func ensureWorkers(_ count: Int) {
        while workerCount < count {
            // The worker starts from the current generation, so it joins the job about to be
            // published even if the thread is scheduled only after that.
            let seen = ThreadPool.generation(state.load(ordering: .acquiring))
            let context = Unmanaged.passRetained(WorkerContext(pool: self, generation: seen)).toOpaque()
            var thread = pthread_t()
            let started = pthread_create(&thread, nil, { raw in
                let ctx = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
                ctx.pool.workerLoop(seen: ctx.generation)
                return nil
            }, context)
            if started != 0 {
                Unmanaged<WorkerContext>.fromOpaque(context).release()
                return  // fewer workers than asked: the caller claims the remaining parts itself
            }
            pthread_detach(thread)
            workerCount += 1
        }
    }

    /// The next unclaimed part of job `generation`, or nil when it has none left (or a newer job
    /// has replaced it).
    private func claim(_ generation: UInt64) -> Int? {
        var word = state.load(ordering: .acquiring)
        while ThreadPool.generation(word) == generation, word & 0xFFFF < (word >> 16) & 0xFFFF {
            let (exchanged, original) = state.compareExchange(expected: word, desired: word + 1,
                                                              ordering: .acquiringAndReleasing)
            if exchanged { return Int(word & 0xFFFF) }
            word = original
        }
        return nil
    }

    /// Runs every part of job `generation` it can claim; returns how many.
    private func runParts(_ generation: UInt64) -> Int {
        var ran = 0
        while let part = claim(generation) {
            job!(part)
            completed.add(1, ordering: .releasing)
            ran += 1
        }
        return ran
    }

    private func workerLoop(seen initial: UInt64) {
        var seen = initial
        var spinLimit = ThreadPool.maximumSpin
        while true {
            var spins = 0
            while ThreadPool.generation(state.load(ordering: .acquiring)) == seen {
                if spins < spinLimit {
                    spins += 1
                    ThreadPool.relax()
                } else {
                    pthread_mutex_lock(mutex)
                    sleepers.add(1, ordering: .sequentiallyConsistent)
                    while ThreadPool.generation(state.load(ordering: .sequentiallyConsistent)) == seen {
                        pthread_cond_wait(wake, mutex)
                    }
                    sleepers.subtract(1, ordering: .sequentiallyConsistent)
                    pthread_mutex_unlock(mutex)
                }
            }
            seen = ThreadPool.generation(state.load(ordering: .acquiring))
            // Late for a whole job: the caller ran our parts, so our spinning only slowed it down.
            spinLimit = runParts(seen) > 0 ? min(2 * spinLimit, ThreadPool.maximumSpin)
                                           : max(spinLimit / 2, ThreadPool.minimumSpin)
        }
    }

    /// Runs body(0..<parts), spread over the caller and up to parts − 1 workers; returns when all
    /// parts are done.
    func run(parts count: Int, _ body: (Int) -> Void) {
        if count <= 1 || count > ThreadPool.maximumParts {
            for p in 0..<max(count, 0) { body(p) }
            return
        }
        guard busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            for p in 0..<count { body(p) }
            return
        }
        let start = monotonicSeconds()
        if contention.runsAlone(now: start) {
            for p in 0..<count { body(p) }
            busy.store(false, ordering: .releasing)
            return
        }
        ensureWorkers(count - 1)
        let sampled = contention.samplesCPUTime
        let cpuStart = sampled ? threadCPUSeconds() : 0
        withoutActuallyEscaping(body) { body in
            job = body
            completed.store(0, ordering: .relaxed)
            let generation = ThreadPool.generation(state.load(ordering: .relaxed)) &+ 1 & 0xFFFF_FFFF
            state.store(generation << 32 | UInt64(count) << 16, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(mutex)
                pthread_cond_broadcast(wake)
                pthread_mutex_unlock(mutex)
            }
            _ = runParts(generation)
            // Only parts a worker has started remain; yield now and then, in case that worker
            // shares this core.
            let ownEnd = monotonicSeconds(), ownCPU = sampled ? threadCPUSeconds() - cpuStart : nil
            var spins = 0
            while completed.load(ordering: .acquiring) < count {
                spins += 1
                if spins % 4096 == 0 { sched_yield() } else { ThreadPool.relax() }
            }
            job = nil
            let end = spins < 64 ? ownEnd : monotonicSeconds()
            contention.record(own: ownEnd - start, wait: end - ownEnd, now: end, ownCPU: ownCPU)
        }
        busy.store(false, ordering: .releasing)
    }
}

/// Decides when the caller should run jobs alone: after a window of jobs in which it waited
/// more than once for a paused worker (a wait well beyond what unequal parts explain), or in
/// which the caller itself was off its CPU for much of its own parts (its threads outnumber the
/// free cores, so one shares the caller's: no wait shows it, but every part takes longer), for a
/// time that doubles while this goes on and returns to its start once a window is clean.
struct ContentionGuard {
    static let window = 32, stallsToBackOff = 2
    static let firstBackOff = 0.1, longestBackOff = 1.6
    /// A wait this much longer than half of the caller's own part is a worker not running.
    static let stallSeconds = 50e-6
    /// One job in this many has the caller's CPU time read around its own parts (a system call
    /// each way, so not every job).
    static let cpuSampleEvery = 4
    /// Below this share of its sampled parts' time on a CPU, the caller is sharing its core.
    static let starvedCPUShare = 0.6
    /// Sampled time a window needs before its CPU share counts (timer and accounting resolution).
    static let minimumSampledSeconds = 200e-6

    private var jobs = 0, stalls = 0
    private var sampledWall = 0.0, sampledCPU = 0.0
    private var aloneUntil = 0.0
    private var backOff = firstBackOff

    func runsAlone(now: Double) -> Bool { now < aloneUntil }

    /// Whether the next job's caller should read its CPU time around its own parts.
    var samplesCPUTime: Bool { jobs % ContentionGuard.cpuSampleEvery == 0 }

    /// One job: the caller's own parts took `own` seconds (`ownCPU` of them on a CPU, where
    /// sampled), then it waited `wait` for the workers' parts.
    mutating func record(own: Double, wait: Double, now: Double, ownCPU: Double? = nil) {
        jobs += 1
        if wait > ContentionGuard.stallSeconds + own / 2 { stalls += 1 }
        if let ownCPU { (sampledWall, sampledCPU) = (sampledWall + own, sampledCPU + ownCPU) }
        guard jobs == ContentionGuard.window else { return }
        let starved = sampledWall >= ContentionGuard.minimumSampledSeconds
            && sampledCPU < ContentionGuard.starvedCPUShare * sampledWall
        if stalls >= ContentionGuard.stallsToBackOff || starved {
            aloneUntil = now + backOff
            backOff = min(2 * backOff, ContentionGuard.longestBackOff)
        } else {
            backOff = ContentionGuard.firstBackOff
        }
        (jobs, stalls, sampledWall, sampledCPU) = (0, 0, 0, 0)
    }
}

/// CPU time the calling thread has used, in seconds.
func threadCPUSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

private final class WorkerContext {
    let pool: ThreadPool
    let generation: UInt64
    init(pool: ThreadPool, generation: UInt64) {
        self.pool = pool
        self.generation = generation
    }
}
