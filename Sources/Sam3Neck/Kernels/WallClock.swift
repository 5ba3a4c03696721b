#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Monotonic wall time, for the measured product peak (`PackedGemm.measuredPeak`) and the
/// profile's stage times.
enum WallClock {
    /// Seconds since an arbitrary start.
    static func seconds() -> Double { read(CLOCK_MONOTONIC) }

    /// Seconds of the clock `id` (`CLOCK_MONOTONIC`, `CLOCK_PROCESS_CPUTIME_ID`, ...).
    static func read(_ id: clockid_t) -> Double {
        var t = timespec()
        clock_gettime(id, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }
}
