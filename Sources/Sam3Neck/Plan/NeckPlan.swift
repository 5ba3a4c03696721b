import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A neck compiled for one input shape: packed weights, position encodings and one workspace,
/// all prepared here so that `run` allocates nothing.
///
/// Per image and level, channels-last inside, two phases:
/// 1. *Up to the last conv*, in blocks of input rows handed out to the workers. Each worker runs a
///    block's product with single-threaded BLAS and its epilogue while the block is in its
///    cache, writing the last conv's input into a zero-framed image:
///    - level 0: `X·B₀` (dconv_2x2_0) → bias+GELU+scatter into `G` (2H×2W);
///    - level 1: `X·B'` (dconv_2x2∘conv_1x1 folded) → bias+scatter into `Z` (2H×2W);
///    - level 2: `X·B` (conv_1x1) → bias into `Z`;  level 3: max pool, then as level 2.
///    An NCHW input is read as the transposed operand of the first product: no layout pass.
/// 2. *The last conv*, written straight into the caller's NCHW buffer:
///    - level 0: dconv_2x2_1∘conv_1x1 (folded) and conv_3x3 composed into one 2×2 conv of `G` per
///      output phase, by Winograd F(4×4, 2×2) (F(2×2, 2×2) in strict mode; `UpsampleConv3x3`);
///      the 4H×4W intermediate never exists;
///    - levels 1-3: conv_3x3 of `Z` by Winograd (F(4×4) by default, F(2×2) in strict mode).
///
/// Threads: the plan's workers own all parallelism; OpenBLAS runs on one thread (set when the neck
/// is loaded, and again by a run if the application changed it since; never restored), so the two
/// never oversubscribe the cores.
/// Concurrent `run` calls are serialised by a lock: they share the workspace. (Unchecked
/// Sendable because the workspace is raw memory; only a run, holding `lock`, touches it.)
public final class NeckPlan: @unchecked Sendable {
    public let options: CompileOptions
    package let trunkDim: Int, dModel: Int
    /// Resolved thread count (options.threads, or the online cores for 0).
    package let threads: Int
    /// `[B, d, h, w]` per level; nil for levels not compiled.
    package let levelShapes: [[Int]?]
    /// `[1, d, h, w]` per level (filled on request); nil for levels not compiled.
    package let positionEncodings: [PositionEncoding?]
    /// Bytes of workspace owned by the plan.
    package let workspaceBytes: Int

    private let packed: PackedWeights
    private let upsample: UpsampleConv3x3?
    /// The 3×3 conv of each compiled level above 0 (level 0's is inside `upsample`).
    private let convs: [Int: WinogradConv3x3]
    /// Input rows per block in phase 1, per level.
    private let blockRows: [Int]
    private let scratchPerWorker: Int
    // Workspace regions: the conv input frame; the pooled input of level 3; per-worker scratch.
    private let workspace: UnsafeMutableRawPointer
    private let frame: UnsafeMutablePointer<Float>
    private let pooled: UnsafeMutablePointer<Float>
    private let scratch: UnsafeMutablePointer<Float>
    /// Held by a run: runs share the workspace.
    private let lock = Mutex(())

    public var inputCount: Int { options.batch * trunkDim * options.height * options.width }

    /// The Winograd tile of each precision mode: F(4×4) keeps the default mode's 1e-4, F(2×2)
    /// the strict mode's 1e-5 (measured in the tests against the float64 reference).
    package static func winogradTile(_ p: CompileOptions.Precision) -> WinogradTile { p == .strict ? .f2 : .f4 }
    /// Level 0's composed conv: F(4×4, 2×2) by default, F(2×2, 2×2) in strict mode.
    package static func upsampleTile(_ p: CompileOptions.Precision) -> WinogradTile { p == .strict ? .f2r2 : .f4r2 }

    init(packed: PackedWeights, upsample: UpsampleConv3x3?, convs: [Int: WinogradConv3x3], options: CompileOptions) throws {
        try options.validate()
        self.options = options
        self.packed = packed
        self.upsample = upsample
        self.convs = convs
        let c = packed.trunkDim, d = packed.dModel
        trunkDim = c
        dModel = d
        let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        threads = options.threads == 0 ? max(1, cores) : options.threads

        let h = options.height, w = options.width
        // Sizes in floats, with overflow remembered rather than trapping.
        var size = CheckedSize()
        var frameFloats = 0, pooledFloats = 0, scratchFloats = 0
        var rowsPerBlock = [0, 0, 0, 0]
        for level in options.levels {
            let g = CompileOptions.levelGrid(level, height: h, width: w)
            let frame = level == 0
                ? PaddedImage.floatCount(height: 2 * h, width: 2 * w, channels: packed.up4First.n / 4)
                : PaddedImage.floatCount(height: g.h, width: g.w, channels: d)
            frameFloats = Swift.max(frameFloats, size.mul(1, frame))
            scratchFloats = Swift.max(scratchFloats, (level == 0 ? upsample?.scratchPerWorker : convs[level]?.scratchPerWorker) ?? 0)
            // Phase 1 blocks: about 768 product rows each.
            let inW = level == 3 ? g.w : w
            let rows = Swift.max(1, Swift.min(level == 3 ? g.h : h, 768 / inW))
            rowsPerBlock[level] = rows
            let pix = rows * inW
            switch level {
            case 0: scratchFloats = Swift.max(scratchFloats, size.mul(pix, packed.up4First.n))
            case 1: scratchFloats = Swift.max(scratchFloats, size.mul(pix, packed.up2.n))
            case 2: scratchFloats = Swift.max(scratchFloats, size.mul(pix, packed.same.n))
            default:
                scratchFloats = Swift.max(scratchFloats, size.mul(pix, packed.down.n))
                pooledFloats = size.mul(g.h * g.w, c)
            }
        }
        blockRows = rowsPerBlock
        scratchPerWorker = (scratchFloats + 15) & ~15
        func round(_ floats: Int) -> Int { (floats + 15) & ~15 }  // 64-byte aligned regions
        let totalFloats = size.mul(1, round(frameFloats) + round(pooledFloats) + size.mul(threads, scratchPerWorker))
        let bytes = size.mul(totalFloats, MemoryLayout<Float>.size)
        let physical = Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE)))
        let what = "compiling for batch \(options.batch), \(h)×\(w) (trunk_dim \(c), d_model \(d)) with \(threads) threads"
        guard !size.overflow, bytes <= physical else {
            let amount = size.overflow ? "more bytes than fit in 64 bits" : "\(bytes) bytes (\(bytes >> 20) MiB)"
            throw NeckError(.outOfMemory, "\(what) would need \(amount) of workspace, more than the machine's \(physical >> 20) MiB of memory")
        }
        // BLAS takes 32-bit sizes; the largest leading dimension is H·W (NCHW input).
        guard size.mul(16 * h * w, Swift.max(c, 4 * d)) < Int(Int32.max), !size.overflow else {
            throw NeckError(.outOfMemory, "\(what) would need \(bytes) bytes (\(bytes >> 20) MiB) of workspace in matrices too large for OpenBLAS's 32-bit indices")
        }
        var raw: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&raw, 64, Swift.max(bytes, 64)) == 0, let raw else {
            throw NeckError(.outOfMemory, "\(what): cannot allocate \(bytes) bytes (\(bytes >> 20) MiB) of workspace")
        }
        workspace = raw
        workspaceBytes = bytes
        frame = raw.bindMemory(to: Float.self, capacity: totalFloats)
        pooled = frame + round(frameFloats)
        scratch = pooled + round(pooledFloats)

        var shapes: [[Int]?] = Array(repeating: nil, count: 4)
        var pos: [PositionEncoding?] = Array(repeating: nil, count: 4)
        for level in options.levels {
            let g = CompileOptions.levelGrid(level, height: h, width: w)
            shapes[level] = [options.batch, d, g.h, g.w]
            pos[level] = PositionEncoding(dModel: d, height: g.h, width: g.w)
        }
        levelShapes = shapes
        positionEncodings = pos
    }

    deinit { free(workspace) }

    /// Floats of output `level` for the whole batch.
    package func outputCount(level: Int) -> Int? {
        levelShapes[level].map { $0.reduce(1, *) }
    }

    /// Runs the plan. `input` holds `inputCount` floats in the compiled layout; `outputs[i]` must
    /// hold `outputCount(level: i)` floats for every compiled level. Sizes are the caller's
    /// responsibility here (the C layer checks them).
    package func run(input: UnsafePointer<Float>, outputs: [UnsafeMutablePointer<Float>?], profile: Profile? = nil) {
        lock.withLock { _ in
            Blas.useOneThread()  // normally a no-op: set at load (see `Blas`)
            let c = trunkDim, h = options.height, w = options.width
            for image in 0..<options.batch {
                let x = input + image * c * h * w
                for level in options.levels {
                    let shape = levelShapes[level]!
                    let out = outputs[level]! + image * shape[1] * shape[2] * shape[3]
                    let g = CompileOptions.levelGrid(level, height: h, width: w)
                    if level == 0, let upsample {
                        let gImage = PaddedImage(base: frame, height: 2 * h, width: 2 * w, channels: upsample.c0)
                        profile.time("L0 dconv_2x2_0, GELU") { prepareConvInput(level, x, gImage, profile) }
                        profile.time("L0 dconv_2x2_1∘conv_1x1∘conv_3x3 (Winograd F(\(upsample.tile.m)×\(upsample.tile.m), 2×2))") {
                            upsample.run(gImage, into: out, scratch: scratch, threads: threads)
                        }
                    } else if let conv = convs[level] {
                        let z = PaddedImage(base: frame, height: g.h, width: g.w, channels: dModel)
                        profile.time("L\(level) up to conv_3x3") { prepareConvInput(level, x, z, profile) }
                        profile.time("L\(level) conv_3x3 (Winograd F(\(conv.tile.m)×\(conv.tile.m), 3×3))") {
                            conv.run(z, into: out, scratch: scratch, threads: threads)
                        }
                    }
                }
            }
        }
    }

    /// `Y[rows × g.n] = X[rows × c] · B` for input pixels `first ..< first + rows` of an image of
    /// `pixels` pixels (NCHW: X is read transposed, leading dimension `pixels`).
    private func product(_ x: UnsafePointer<Float>, pixels: Int, first: Int, rows: Int,
                         _ g: PackedWeights.Gemm, into y: UnsafeMutablePointer<Float>) {
        let nchw = options.layout == .nchw
        g.b.withUnsafeBufferPointer { b in
            Blas.sgemm(transA: nchw, m: rows, n: g.n, k: g.k,
                       a: x + (nchw ? first : first * g.k), lda: nchw ? pixels : g.k,
                       b: b.baseAddress!, ldb: g.n, c: y, ldc: g.n)
        }
    }

    /// Phase 1 of `level`: fills the interior of `z` with the last conv's input (G for level 0).
    private func prepareConvInput(_ level: Int, _ x: UnsafePointer<Float>, _ z: PaddedImage, _ profile: Profile?) {
        let h = options.height, w = options.width, d = dModel
        z.zeroBorder()
        var source = x, gh = h, gw = w
        if level == 3 {
            let c = trunkDim
            gh = h / 2
            gw = w / 2
            profile.time("L3 maxpool") {
                if options.layout == .nchw {
                    maxPool2x2ChannelMajor(x, channels: c, height: h, width: w, into: pooled, threads: threads)
                } else {
                    maxPool2x2ChannelsLast(x, channels: c, height: h, width: w, into: pooled, threads: threads)
                }
            }
            source = UnsafePointer(pooled)
        }
        let split = BalancedBlocks(gh, most: blockRows[level], workers: threads)
        let perWorker = scratchPerWorker
        nonisolated(unsafe) let source_ = source, scratch = scratch
        parallelQueue(split.blocks, threads: threads) { worker, block in
            let y = scratch + worker * perWorker
            let i0 = split.range(block).lowerBound, rows = split.range(block).count
            switch level {
            case 0:
                // X·B₀ → bias, GELU, scatter into G's rows 2·i0 ..< 2·(i0 + rows).
                let first = self.packed.up4First
                self.product(source_, pixels: gh * gw, first: i0 * gw, rows: rows * gw, first, into: y)
                first.bias.withUnsafeBufferPointer {
                    scatterTransposed2x2(y, height: rows, width: gw, channels: first.n / 4, bias: $0.baseAddress!, gelu: true,
                                         into: z, row0: i0, threads: 1)
                }
            case 1:
                let g = self.packed.up2
                self.product(source_, pixels: gh * gw, first: i0 * gw, rows: rows * gw, g, into: y)
                g.bias.withUnsafeBufferPointer {
                    scatterTransposed2x2(y, height: rows, width: gw, channels: d, bias: $0.baseAddress!, gelu: false, into: z, row0: i0, threads: 1)
                }
            default:
                let g = level == 2 ? self.packed.same : self.packed.down
                self.product(source_, pixels: gh * gw, first: i0 * gw, rows: rows * gw, g, into: y)
                g.bias.withUnsafeBufferPointer {
                    copyAddingBias(y, height: rows, width: gw, channels: d, bias: $0.baseAddress!, into: z, row0: i0, threads: 1)
                }
            }
        }
    }
}

/// Size arithmetic that remembers overflow instead of trapping, so compile can report it.
struct CheckedSize {
    var overflow = false

    mutating func mul(_ xs: Int...) -> Int {
        var r = 1
        for x in xs {
            let (p, o) = r.multipliedReportingOverflow(by: x)
            if o { overflow = true; return Int.max / 4 }
            r = p
        }
        return r
    }
}
