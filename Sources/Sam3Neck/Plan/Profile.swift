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
    /// Whether stages are charged the CPU time of all the process's threads instead of wall time:
    /// on a shared machine, time other processes take from the cores is then not charged (nor is
    /// a worker's wait for the others).
    package let cpuTime: Bool

    package init(cpuTime: Bool = false) { self.cpuTime = cpuTime }

    /// The time stages are charged (`cpuTime`), seconds.
    package func clock() -> Double { WallClock.read(cpuTime ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC) }

    func add(_ stage: String, _ dt: Double) {
        if seconds[stage] == nil { order.append(stage) }
        seconds[stage, default: 0] += dt
    }

    package func reset() { seconds = [:]; order = [] }
}

extension Optional where Wrapped == Profile {
    /// Runs `body`, charging its time (`Profile.cpuTime`) to `stage` when profiling.
    @inline(__always)
    func time<R>(_ stage: @autoclosure () -> String, _ body: () throws -> R) rethrows -> R {
        guard let p = self else { return try body() }
        let t0 = p.clock()
        defer { p.add(stage(), p.clock() - t0) }
        return try body()
    }
}
