#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A value behind a lock: the one locking idiom of the core (the neck's prepared weights, a
/// plan's workspace).
///
/// A pthread mutex rather than Synchronization's `Mutex`: on Linux that one waits with futexes
/// inside the prebuilt standard library, where ThreadSanitizer cannot see it, so every access it
/// orders would be reported as a race (`make test-sanitizers` runs the C test's concurrent runs
/// under TSan). Unchecked Sendable because the mutex is what makes it safe: `state` is only
/// touched inside `withLock`.
package final class Locked<State>: @unchecked Sendable {
    // (A zero-sized State would share its address with `mutex`, and ThreadSanitizer would take
    // the two for one variable: lock something.)
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var state: State

    package init(_ state: State) {
        self.state = state
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    package func withLock<R>(_ body: (inout State) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&state)
    }
}
