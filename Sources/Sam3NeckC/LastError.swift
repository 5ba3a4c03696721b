#if canImport(Glibc)
import Glibc
#endif

/// The per-thread last-error message behind `sam3_neck_last_error`: a malloc'd C string per
/// thread, held in a pthread key whose destructor frees it when the thread exits.
enum LastError {
    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { free($0) }
        return k
    }()

    /// Stores `message` for this thread. An embedded NUL (from a name in a file) would end the C
    /// string early, so it is written as the escape `\0`.
    static func set(_ message: String) {
        let copy = strdup(message.split(separator: "\0", omittingEmptySubsequences: false).joined(separator: "\\0"))
        free(pthread_getspecific(key))
        pthread_setspecific(key, copy)
    }

    /// The current thread's message, or "" if none; valid until the next `set` on this thread.
    static var current: UnsafePointer<CChar> {
        if let p = pthread_getspecific(key) { return UnsafePointer(p.assumingMemoryBound(to: CChar.self)) }
        return empty
    }

    nonisolated(unsafe) private static let empty: UnsafePointer<CChar> = {
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
        p.pointee = 0
        return UnsafePointer(p)
    }()
}
