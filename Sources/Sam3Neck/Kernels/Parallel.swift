import Dispatch

/// Runs `body(i)` for i in 0..<count on up to `threads` threads (inline when threads ≤ 1).
/// Used only for the element-wise passes, between matrix products.
@inlinable
func parallelFor(_ count: Int, threads: Int, _ body: (Int) -> Void) {
    if threads <= 1 || count <= 1 {
        for i in 0..<count { body(i) }
        return
    }
    let chunks = min(count, threads)
    withoutActuallyEscaping(body) { body in
        nonisolated(unsafe) let body = body
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            let lo = count * chunk / chunks, hi = count * (chunk + 1) / chunks
            for i in lo..<hi { body(i) }
        }
    }
}
