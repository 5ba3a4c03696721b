#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Immutable-after-fill float storage on 64-byte boundaries, for weight forms of tens of MB.
///
/// Why not `[Float]`: an array's elements start 32 bytes into a malloc'd block, so their cache
/// lines are only as aligned as malloc makes them, and it zero-fills what the weight transform
/// writes anyway. Here the bytes are filled once by `fill` (with every element it leaves
/// untouched zeroed first when `zeroed`), then only read.
package final class AlignedFloats: @unchecked Sendable {
    package let count: Int
    private let base: UnsafeMutablePointer<Float>

    /// `count` floats filled by `fill`. Unchecked Sendable: nothing writes after `init`.
    package init(count: Int, zeroed: Bool, fill: (UnsafeMutablePointer<Float>) -> Void) {
        self.count = count
        guard let raw = AlignedFloats.allocate(bytes: count * MemoryLayout<Float>.stride) else {
            fatalError("AlignedFloats: cannot allocate \(count) floats")
        }
        base = raw.bindMemory(to: Float.self, capacity: Swift.max(16, count))
        if zeroed { base.initialize(repeating: 0, count: count) }
        fill(base)
    }

    /// A copy of `values`.
    package convenience init(copying values: [Float]) {
        self.init(count: values.count, zeroed: false) { p in
            values.withUnsafeBufferPointer { if let v = $0.baseAddress { p.update(from: v, count: values.count) } }
        }
    }

    deinit { free(base) }

    static let hugePage = 2 << 20

    /// `bytes` (at least 64) aligned to 64 bytes, and on huge pages where the kernel grants them
    /// (THP "madvise" mode) when they span two or more: on this machine kind first touching 4 KB
    /// pages costs ~0.7 ms per MB against ~0.2 on 2 MB pages (64 MB: 54 against 20 ms, with the
    /// memset), and a run's working set then takes 512× fewer TLB entries. nil when the memory
    /// cannot be had; release with `free`.
    package static func allocate(bytes: Int) -> UnsafeMutableRawPointer? {
        let bytes = Swift.max(64, bytes), huge = bytes >= hugePage * 2
        var raw: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&raw, huge ? hugePage : 64, bytes) == 0, let raw else { return nil }
        #if os(Linux)
        if huge { _ = madvise(raw, bytes & ~(hugePage - 1), MADV_HUGEPAGE) }
        #endif
        return raw
    }

    /// The floats, read-only.
    package var pointer: UnsafePointer<Float> { UnsafePointer(base) }

    /// The floats as a buffer, read-only (as `Array`'s method of the name).
    package func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: pointer, count: count))
    }
}
