#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall time per stage of a run, for the benchmark's `--profile` breakdown. A run without a
/// profile pays one branch per stage.
package final class Profile: @unchecked Sendable {
    package private(set) var seconds: [String: Double] = [:]
    package private(set) var order: [String] = []

    package init() {}

    static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    func add(_ stage: String, _ dt: Double) {
        if seconds[stage] == nil { order.append(stage) }
        seconds[stage, default: 0] += dt
    }

    package func reset() { seconds = [:]; order = [] }
}

extension Optional where Wrapped == Profile {
    /// Runs `body`, charging its wall time to `stage` when profiling.
    @inline(__always)
    func time<R>(_ stage: @autoclosure () -> String, _ body: () throws -> R) rethrows -> R {
        guard let p = self else { return try body() }
        let t0 = Profile.now()
        defer { p.add(stage(), Profile.now() - t0) }
        return try body()
    }
}
