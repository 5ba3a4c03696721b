import Dispatch
import Synchronization

/// Runs `body(i)` for i in 0..<count on up to `threads` threads (inline when threads ≤ 1).
@inlinable
func parallelFor(_ count: Int, threads: Int, _ body: (Int) -> Void) {
    parallelChunks(count, threads: threads) { _, range in
        for i in range { body(i) }
    }
}

/// Splits 0..<count into at most `threads` contiguous ranges and runs `body(worker, range)` for
/// each on its own thread; `worker` indexes per-thread scratch. Inline when there is one range.
@inlinable
func parallelChunks(_ count: Int, threads: Int, _ body: (_ worker: Int, _ range: Range<Int>) -> Void) {
    let chunks = max(1, min(count, threads))
    if chunks == 1 {
        if count > 0 { body(0, 0..<count) }
        return
    }
    withoutActuallyEscaping(body) { body in
        nonisolated(unsafe) let body = body
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            body(chunk, (count * chunk / chunks)..<(count * (chunk + 1) / chunks))
        }
    }
}

/// Splits `count` items into contiguous blocks of at most `most`, as many blocks as the next
/// multiple of `workers` (so the last round keeps every worker busy; never more blocks than
/// items), sizes differing by at most one: block b is `range(b)`.
struct BalancedBlocks {
    let count: Int, blocks: Int

    init(_ count: Int, most: Int, workers: Int) {
        let w = max(1, workers)
        let needed = (count + most - 1) / most
        self.count = count
        blocks = max(1, min(count, (needed + w - 1) / w * w))
    }

    func range(_ b: Int) -> Range<Int> { (count * b / blocks)..<(count * (b + 1) / blocks) }
}

/// Hands out items 0..<count one at a time to `threads` workers (dynamic scheduling, for work
/// whose items cost different amounts). `body(worker, item)`.
@inlinable
func parallelQueue(_ count: Int, threads: Int, _ body: (_ worker: Int, _ item: Int) -> Void) {
    let workers = max(1, min(count, threads))
    if workers == 1 {
        for i in 0..<count { body(0, i) }
        return
    }
    let counter = WorkCounter()
    withoutActuallyEscaping(body) { body in
        nonisolated(unsafe) let body = body
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            while true {
                let item = counter.next.add(1, ordering: .relaxed).oldValue
                if item >= count { break }
                body(worker, item)
            }
        }
    }
}

@usableFromInline
final class WorkCounter: Sendable {
    @usableFromInline let next = Atomic<Int>(0)
    @usableFromInline init() {}
}
