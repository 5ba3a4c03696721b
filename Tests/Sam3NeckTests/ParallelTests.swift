import Testing
@testable import Sam3Neck

@Suite struct ParallelTests {
    /// Every item lands in exactly one block, blocks hold at most `most` and differ by at most
    /// one, and their number is a multiple of the workers whenever there are items enough.
    @Test func balancedBlocksCoverEverythingOnce() {
        for count in 1...40 {
            for most in 1...9 {
                for workers in 1...4 {
                    let split = BalancedBlocks(count, most: most, workers: workers)
                    let sizes = (0..<split.blocks).map { split.range($0).count }
                    #expect(sizes.max()! <= most && sizes.min()! >= 1 && sizes.max()! - sizes.min()! <= 1)
                    let rounded = ((count + most - 1) / most + workers - 1) / workers * workers
                    if rounded <= count { #expect(split.blocks % workers == 0) }
                    var seen = [Int](repeating: 0, count: count)
                    for b in 0..<split.blocks { for i in split.range(b) { seen[i] += 1 } }
                    #expect(seen.allSatisfy { $0 == 1 })
                }
            }
        }
    }

    @Test func parallelQueueRunsEachItemOnce() {
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: 100)
        counts.initialize(repeating: 0, count: 100)
        defer { counts.deallocate() }
        nonisolated(unsafe) let c = counts
        parallelQueue(100, threads: 3) { _, item in c[item] += 1 }
        #expect((0..<100).allSatisfy { counts[$0] == 1 })
    }
}
