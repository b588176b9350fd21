#if canImport(Glibc)
import Glibc
#endif

/// Monotonic time in seconds.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Median wall time of `body` over `repeats` runs after one warm-up run.
public func medianSeconds(repeats: Int, _ body: () throws -> Void) rethrows -> Double {
    try body()
    var times: [Double] = []
    for _ in 0..<max(1, repeats) {
        let t0 = monotonicSeconds()
        try body()
        times.append(monotonicSeconds() - t0)
    }
    times.sort()
    return times[times.count / 2]
}
