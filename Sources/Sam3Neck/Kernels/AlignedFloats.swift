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
        let bytes = Swift.max(64, count * MemoryLayout<Float>.stride)
        // Buffers of several MB on huge pages where the kernel grants them (THP "madvise" mode):
        // first touching 4 KB pages costs ~0.4 ms per MB here, a third of a first compile.
        let huge = bytes >= AlignedFloats.hugePage * 2
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: huge ? AlignedFloats.hugePage : 64)
        #if os(Linux)
        if huge { _ = madvise(raw, bytes & ~(AlignedFloats.hugePage - 1), MADV_HUGEPAGE) }
        #endif
        base = raw.bindMemory(to: Float.self, capacity: Swift.max(16, count))
        if zeroed { base.initialize(repeating: 0, count: count) }
        fill(base)
    }

    deinit { base.deallocate() }

    static let hugePage = 2 << 20

    /// The floats, read-only.
    package var pointer: UnsafePointer<Float> { UnsafePointer(base) }
}
