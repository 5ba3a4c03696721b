import CKernels

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
///    - level 0: `X·B₀` (dconv_2x2_0) → bias+GELU+scatter into `G` (2H×2W), one band of rows at
///      a time: level 0 runs both phases per band of tile rows (`UpsampleConv3x3.Band`,
///      `CompileOptions.level0BandTileRows`), so G is never whole;
///    - level 1: `X·B'` (dconv_2x2∘conv_1x1 folded) → bias+scatter into `Z` (2H×2W);
///    - level 2: `X·B` (conv_1x1) → bias into `Z`;  level 3: max pool, then as level 2.
///    An NCHW input is read as the transposed operand of the first product: no layout pass.
/// 2. *The last conv*, written straight into the caller's buffer:
///    - level 0: dconv_2x2_1∘conv_1x1 (folded) and conv_3x3 composed into one 2×2 conv of `G` per
///      output phase, by Winograd F(4×4, 2×2) (F(3×3, 2×2) in strict mode; `UpsampleConv3x3`);
///      the 4H×4W intermediate never exists;
///    - levels 1-3: conv_3x3 of `Z` by Winograd (F(4×4) by default, F(2×2) in strict mode).
///
/// Threads: the plan's workers own all parallelism; OpenBLAS runs on one thread (set when the neck
/// is loaded, and again by a run if the application changed it since; never restored), so the two
/// never oversubscribe the cores.
/// Concurrent `run` calls are serialised by a lock: they share the workspace. (Unchecked
/// Sendable because the workspace is raw memory; only a run, holding `runs`' lock, touches it.)
public final class NeckPlan: @unchecked Sendable {
    /// The options the plan was compiled for, as given (`threads` 0 stays 0).
    public let options: CompileOptions
    package let trunkDim: Int, dModel: Int
    /// The workers a run uses: options.threads, at most the online cores (0: all of them). More
    /// would not run at once, and each worker has its own scratch: a workspace sized by the number
    /// asked for reserved GBs for nothing (1024 on a 5×7 grid: 12 GB).
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
    /// Level 0 runs in bands of tile rows, G held one band at a time (`UpsampleConv3x3.Band`).
    private let bands: [UpsampleConv3x3.Band]
    private let scratchPerWorker: Int
    /// Where, in a worker's scratch, a half-precision input is widened (after the product's output).
    private let widenOffset: Int
    /// Where, in a worker's scratch, the packed products keep their workspace.
    private let gemmOffset: Int
    /// Phase 1's products packed for the micro-kernels, by level, when `options.gemm` says so.
    private let products: [Int: PackedGemm]
    /// The levels whose phase-1 product runs as bf16×3 on AMX: in the default mode, where the
    /// options allow it and the level's weights were split (`PackedGemm.bf16x3`).
    package let bf16x3Levels: Set<Int>
    /// The product kernel (`SAM3NECK_SGEMM_*`) of each level's phase 1 when it runs on the packed
    /// micro-kernels (nil: OpenBLAS): the options' float32 kernel, bf16×3 on AMX for
    /// `bf16x3Levels`, the fast mode's bfloat16 kernel whatever the level.
    private let phase1Kernels: [Int: Int32]
    /// Whether level 0's composed conv runs its products as bf16×3 on AMX (`upsampleTile`).
    package var level0ComposedBF16x3: Bool { upsample?.bf16x3 ?? false }
    /// The levels whose 3×3 conv runs its products as bf16×3 on AMX (`winogradTile`).
    package var convBF16x3Levels: Set<Int> { Set(convs.filter { $0.value.u.bf16x3 }.keys) }
    /// The code that runs the plan's widest products (phase 1 of levels 0-1 and the Winograd
    /// convs), by `GemmBackend.codeName`: the fast mode's bfloat16 code where it has one; else
    /// "amx_bf16x3" where any of them runs as bf16×3 on AMX (the narrower ones then run on
    /// avx512); else the float32 backend ("openblas", "avx512", "avx2", "generic"), which
    /// SAM3NECK_SGEMM_KERNEL may name. `sam3_neck_kernel_name` reports it.
    package var productKernel: String {
        if let fast = options.fastKernel { return GemmBackend.codeName(fast) }
        if !bf16x3Levels.isEmpty || level0ComposedBF16x3 || !convBF16x3Levels.isEmpty {
            return GemmBackend.codeName(Int32(SAM3NECK_SGEMM_AMX_BF16X3))
        }
        return options.gemm.codeName
    }
    // Workspace regions: the conv input frame; the pooled input of level 3; per-worker scratch.
    private let workspace: UnsafeMutableRawPointer
    private let frame: UnsafeMutablePointer<Float>
    private let pooled: UnsafeMutablePointer<Float>
    private let scratch: UnsafeMutablePointer<Float>
    /// Held by a run, as the runs share the workspace; it counts them.
    private let runs = Locked(0)

    /// The number of input elements a run takes, `B·C·H·W` (C = the neck's trunk width).
    public var inputCount: Int { options.batch * trunkDim * options.height * options.width }

    /// Whether a plan of these options runs its Winograd products as bf16×3 on AMX: the default
    /// mode where the CPU has them (`CompileOptions.bf16x3Products`) and the products are packed.
    static func winogradOnAMX(_ options: CompileOptions) -> Bool {
        guard options.arithmetic == .default, options.bf16x3Products, GemmBackend.amxAvailable,
            case .packed = options.gemm
        else { return false }
        return true
    }

    /// The 3×3 Winograd conv of levels 1-3: F(4×4, 3×3) keeps the default mode's 1e-4, F(2×2, 3×3)
    /// the strict mode's 1e-5 (checked in the tests against the float64 reference). With the
    /// AMX products (`winogradOnAMX`), F(2×2, 3×3): F(4×4, 3×3)'s larger transform coefficients
    /// magnify the split's error past the bound, F(2×2, 3×3)'s do not (it stays below float32
    /// F(4×4, 3×3)'s), at about the same speed (78% more products at 2-3× the rate) and with
    /// 5.4 MB less weights per level (16 blocks, not 36).
    /// In the fast mode, F(2×2, 3×3) with bfloat16 products: the transforms' constants (0, ±1, ½)
    /// add no rounding of their own to the operands'. Measured errors: docs/accuracy.md.
    package static func winogradTile(_ options: CompileOptions) -> (tile: WinogradTile, bf16x3: Bool) {
        if winogradOnAMX(options) || options.fastKernel != nil { return (.f2, options.fastKernel == nil) }
        return (options.precision == .strict ? .f2 : .f4, false)
    }
    /// Level 0's composed conv: F(4×4, 2×2) by default, F(3×3, 2×2) in strict mode. With the AMX
    /// products, F(3×3, 2×2): 14% more products than F(4×4, 2×2), but the stage is faster, the
    /// weights 18 MB smaller (16 blocks per phase, not 25), and the error lower than F(4×4, 2×2)'s,
    /// in float32 or with bf16×3 (measured errors: docs/accuracy.md).
    /// In the fast mode, F(3×3, 2×2) with bfloat16 products (constants 0, ±1, ½, as F(2×2, 3×3)).
    package static func upsampleTile(_ options: CompileOptions) -> (tile: WinogradTile, bf16x3: Bool) {
        if winogradOnAMX(options) || options.fastKernel != nil { return (.f3r2, options.fastKernel == nil) }
        return (options.precision == .strict ? .f3r2 : .f4r2, false)
    }

    init(
        packed: PackedWeights, upsample: UpsampleConv3x3?, convs: [Int: WinogradConv3x3], products: [Int: PackedGemm],
        options: CompileOptions
    ) throws {
        try options.validate()
        self.options = options
        self.packed = packed
        self.upsample = upsample
        self.convs = convs
        self.products = products
        bf16x3Levels =
            options.bf16x3Products && options.arithmetic == .default
            ? Set(products.filter { $0.value.bf16x3 != nil }.keys) : []
        if case let .packed(kernel) = options.productGemm {
            phase1Kernels = Dictionary(
                uniqueKeysWithValues: products.keys.map { [bf16x3Levels] level in
                    (
                        level,
                        options.fastKernel ?? (bf16x3Levels.contains(level) ? Int32(SAM3NECK_SGEMM_AMX_BF16X3) : kernel)
                    )
                })
        } else {
            phase1Kernels = [:]
        }
        let c = packed.trunkDim, d = packed.dModel
        trunkDim = c
        dModel = d
        let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        threads = options.threads == 0 ? max(1, cores) : min(options.threads, max(1, cores))

        let h = options.height, w = options.width
        // Sizes in floats, with overflow remembered rather than trapping.
        var size = CheckedSize()
        var frameFloats = 0, pooledFloats = 0, scratchFloats = 0
        var rowsPerBlock = [0, 0, 0, 0]
        let bands = upsample.map { $0.bands(height: 2 * h, tileRowsPerBand: options.level0BandTileRows) } ?? []
        self.bands = bands
        for level in options.levels {
            let g = CompileOptions.levelGrid(level, height: h, width: w)
            var frame = PaddedImage.floatCount(height: g.h, width: g.w, channels: d)
            if level == 0 {  // G's largest band
                let dims = PaddedImage.dimensions(height: 2 * h, width: 2 * w, pad: 1)
                frame = size.mul(1, (bands.map(\.stored.count).max() ?? 0) * dims.w + dims.slack, packed.up4First.n / 4)
            }
            frameFloats = Swift.max(frameFloats, size.mul(1, frame))
            scratchFloats = Swift.max(
                scratchFloats, (level == 0 ? upsample?.scratchPerWorker : convs[level]?.scratchPerWorker) ?? 0)
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
        // A half-precision input is widened block by block in its first pass: levels 0-2 widen
        // the block's rows × C into the worker's scratch after the product's output; level 3's
        // pool widens two input rows at a time.
        var widenFloats = 0
        if options.inputDType != .float32 {
            for level in options.levels where level < 3 {
                widenFloats = Swift.max(widenFloats, size.mul(rowsPerBlock[level] * w, c))
            }
            if options.includes(level: 3) {
                widenFloats = Swift.max(widenFloats, size.mul(2 * w, options.layout == .nchw ? 1 : c))
            }
        }
        widenOffset = (scratchFloats + 15) & ~15
        // The packed products' own workspace, after the widened input.
        var gemmFloats = 0
        for (level, g) in products {
            gemmFloats = Swift.max(gemmFloats, g.workspaceFloats(rows: rowsPerBlock[level] * (level == 3 ? w / 2 : w)))
        }
        gemmOffset = (widenOffset + widenFloats + 15) & ~15
        scratchPerWorker = (gemmOffset + gemmFloats + 15) & ~15
        func round(_ floats: Int) -> Int { (floats + 15) & ~15 }  // 64-byte aligned regions
        let totalFloats = size.mul(1, round(frameFloats) + round(pooledFloats) + size.mul(threads, scratchPerWorker))
        let bytes = size.mul(totalFloats, MemoryLayout<Float>.size)
        let physical = Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE)))
        let what =
            "compiling for batch \(options.batch), \(h)×\(w) (trunk_dim \(c), d_model \(d)) with \(threads) threads"
        guard !size.overflow, bytes <= physical else {
            let amount = size.overflow ? "more bytes than fit in 64 bits" : "\(bytes) bytes (\(bytes >> 20) MiB)"
            throw NeckError(
                .outOfMemory,
                "\(what) would need \(amount) of workspace, more than the machine's \(physical >> 20) MiB of memory")
        }
        // BLAS takes 32-bit sizes; the largest leading dimension is H·W (NCHW input).
        guard size.mul(16 * h * w, Swift.max(c, 4 * d)) < Int(Int32.max), !size.overflow else {
            throw NeckError(
                .outOfMemory,
                "\(what) would need \(bytes) bytes (\(bytes >> 20) MiB) of workspace in matrices too large for OpenBLAS's 32-bit indices"
            )
        }
        guard let raw = AlignedFloats.allocate(bytes: bytes) else {
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

    /// The floating-point operations one image of `level` executes in products (2 per
    /// multiply-add, as the algorithms run them: Winograd's transformed products, not the direct
    /// conv's count): the first product (phase 1) and the last conv. The benchmark's efficiency
    /// is these over the time, against the machine's product peak (`GemmBackend.measuredPeak`).
    package func executedFlops(level: Int) -> (phase1: Double, conv: Double) {
        guard options.includes(level: level) else { return (0, 0) }
        let h = options.height, w = options.width
        let g = packed.product(level: level)
        let pixels = level == 3 ? (h / 2) * (w / 2) : h * w
        let phase1 = 2.0 * Double(pixels) * Double(g.k) * Double(g.n)
        func winograd(_ tile: WinogradTile, height: Int, width: Int, cin: Int, cout: Int) -> Double {
            let tiles = ((height + tile.m - 1) / tile.m) * ((width + tile.m - 1) / tile.m)
            return 2.0 * Double(tiles * tile.alpha * tile.alpha) * Double(cin) * Double(cout)
        }
        if level == 0, let upsample {
            return (
                phase1, 4 * winograd(upsample.tile, height: 2 * h, width: 2 * w, cin: upsample.c0, cout: upsample.d)
            )
        }
        guard let conv = convs[level] else { return (phase1, 0) }
        let grid = CompileOptions.levelGrid(level, height: h, width: w)
        return (phase1, winograd(conv.tile, height: grid.h, width: grid.w, cin: conv.cin, cout: conv.cout))
    }

    /// Floats of output `level` for the whole batch.
    package func outputCount(level: Int) -> Int? {
        levelShapes[level].map { $0.reduce(1, *) }
    }

    /// The stored dimensions of output `level` in the compiled output layout (`[B, d, h, w]`,
    /// `[B, h, w, d]` or `[h·w, B, d]`); with `batch: 1`, those of its position encoding.
    package func outputDimensions(level: Int, batch: Int? = nil) -> [Int]? {
        guard let s = levelShapes[level] else { return nil }
        let b = batch ?? s[0], d = s[1], h = s[2], w = s[3]
        switch options.outputLayout {
        case .nchw: return [b, d, h, w]
        case .nhwc: return [b, h, w, d]
        case .sequence: return [h * w, b, d]
        }
    }

    /// Writes the position encoding of `level` into `out` (`d·h·w` elements) in the compiled output
    /// layout and type, as an output of batch 1.
    package func writePositionEncoding(level: Int, into out: UnsafeMutableRawPointer) {
        guard let pe = positionEncodings[level] else { return }
        let d = pe.dModel, h = pe.height, w = pe.width
        var channelsLast = [Float](repeating: 0, count: d * w)  // one row of the encoding, pixel-major
        let values = pe.values
        let target = OutputTarget(
            options.outputLayout, dtype: options.outputDType, base: out, image: 0, batch: 1,
            channels: d, height: h, width: w)
        channelsLast.withUnsafeMutableBufferPointer { row in
            for y in 0..<h {
                for x in 0..<w { for c in 0..<d { row[x * d + c] = values[(c * h + y) * w + x] } }
                target.store(row.baseAddress!, ldy: d, m: w, rows: 1, cols: w, channels: d, y0: y, x0: 0)
            }
        }
    }

    /// `run` for a plan whose input and outputs are float32.
    package func run(input: UnsafePointer<Float>, outputs: [UnsafeMutablePointer<Float>?], profile: Profile? = nil) {
        precondition(
            options.inputDType == .float32 && options.outputDType == .float32,
            "float32 run of a plan compiled for other types")
        run(
            input: UnsafeRawPointer(input), outputs: outputs.map { $0.map(UnsafeMutableRawPointer.init) },
            profile: profile)
    }

    /// Runs the plan. `input` holds `inputCount` elements of the compiled input type in the
    /// compiled layout; `outputs[i]` must hold `outputCount(level: i)` elements of the compiled
    /// output type for every compiled level. Sizes are the caller's responsibility here (the C
    /// layer and the safe API check them).
    package func run(input: UnsafeRawPointer, outputs: [UnsafeMutableRawPointer?], profile: Profile? = nil) {
        runs.withLock { count in
            count += 1
            Blas.useOneThread()  // normally a no-op: set at load (see `Blas`)
            let c = trunkDim, h = options.height, w = options.width
            for image in 0..<options.batch {
                let x = input + image * c * h * w * options.inputDType.size
                for level in options.levels {
                    let shape = levelShapes[level]!
                    let out = OutputTarget(
                        options.outputLayout, dtype: options.outputDType, base: outputs[level]!, image: image,
                        batch: options.batch, channels: shape[1], height: shape[2], width: shape[3])
                    let g = CompileOptions.levelGrid(level, height: h, width: w)
                    if level == 0, let upsample {
                        let gImage = PaddedImage(base: frame, height: 2 * h, width: 2 * w, channels: upsample.c0)
                        for band in bands {
                            // The band's stored rows of G, in the frame: framed, then filled, then read.
                            let view = gImage.band(frame, firstStoredRow: band.stored.lowerBound)
                            profile.time("L0 dconv_2x2_0, GELU") {
                                view.zeroBorder(storedRows: band.stored)
                                prepareConvInput(level, x, view, rows: band.input, profile)
                            }
                            profile.time(
                                "L0 dconv_2x2_1∘conv_1x1∘conv_3x3 (Winograd F(\(upsample.tile.m)×\(upsample.tile.m), 2×2))"
                            ) {
                                upsample.run(view, into: out, tileRows: band.tiles, scratch: scratch, threads: threads)
                            }
                        }
                    } else if let conv = convs[level] {
                        let z = PaddedImage(base: frame, height: g.h, width: g.w, channels: dModel)
                        profile.time("L\(level) up to conv_3x3") {
                            z.zeroBorder()
                            prepareConvInput(level, x, z, rows: nil, profile)
                        }
                        profile.time("L\(level) conv_3x3 (Winograd F(\(conv.tile.m)×\(conv.tile.m), 3×3))") {
                            conv.run(z, into: out, scratch: scratch, threads: threads)
                        }
                    }
                }
            }
        }
    }

    /// Level 3's max pool of the input image `x` into `pooled` (float32, in the input's layout).
    private func maxPool(_ x: UnsafeRawPointer) {
        let c = trunkDim, h = options.height, w = options.width
        if options.inputDType != .float32 {
            maxPool2x2Widening(
                x, dtype: options.inputDType.element, channelsLast: options.layout == .nhwc, channels: c, height: h,
                width: w, into: pooled,
                scratch: scratch + widenOffset, scratchStride: scratchPerWorker, threads: threads)
        } else if options.layout == .nchw {
            maxPool2x2ChannelMajor(
                x.assumingMemoryBound(to: Float.self), channels: c, height: h, width: w, into: pooled, threads: threads)
        } else {
            maxPool2x2ChannelsLast(
                x.assumingMemoryBound(to: Float.self), channels: c, height: h, width: w, into: pooled, threads: threads)
        }
    }

    /// The A operand of the product for input pixels `first ..< first + rows` of an image of
    /// `pixels` pixels of `dtype`, `k` channels: X itself (NCHW: read transposed, leading dimension
    /// `pixels`), or for a half-precision X its widened block in `widened` (rows × k floats).
    private func operand(
        _ x: UnsafeRawPointer, dtype: CompileOptions.DType, pixels: Int, first: Int, rows: Int, k: Int,
        widened: UnsafeMutablePointer<Float>
    ) -> (a: UnsafePointer<Float>, lda: Int) {
        let nchw = options.layout == .nchw
        if dtype == .float32 {
            let xf = x.assumingMemoryBound(to: Float.self)
            return (xf + (nchw ? first : first * k), nchw ? pixels : k)
        }
        if nchw {
            for ch in 0..<k {
                sam3neck_widen(x + (ch * pixels + first) * dtype.size, dtype.code, widened + ch * rows, rows)
            }
            return (UnsafePointer(widened), rows)
        }
        sam3neck_widen(x + first * k * dtype.size, dtype.code, widened, rows * k)
        return (UnsafePointer(widened), k)
    }

    /// `Y[rows × g.n] = A · B` through OpenBLAS.
    private func product(
        _ a: UnsafePointer<Float>, lda: Int, rows: Int, _ g: PackedWeights.Gemm, into y: UnsafeMutablePointer<Float>
    ) {
        g.b.withUnsafeBufferPointer { b in
            Blas.sgemm(
                transA: options.layout == .nchw, m: rows, n: g.n, k: g.k, a: a, lda: lda,
                b: b.baseAddress!, ldb: g.n, c: y, ldc: g.n)
        }
    }

    /// Phase 1 of `level`: fills the interior of `z` with the last conv's input (G for level 0),
    /// from the input rows `rows` of the level's grid (all when nil). The frame is the caller's.
    private func prepareConvInput(
        _ level: Int, _ x: UnsafeRawPointer, _ z: PaddedImage, rows inputRows: Range<Int>?,
        _ profile: Profile?
    ) {
        let h = options.height, w = options.width, d = dModel
        var source = x, gh = h, gw = w
        let dtype = level == 3 ? CompileOptions.DType.float32 : options.inputDType  // level 3 reads the pooled floats
        let perWorker = scratchPerWorker, widenOffset = widenOffset
        if level == 3 {
            gh = h / 2
            gw = w / 2
            profile.time("L3 maxpool") { maxPool(x) }
            source = UnsafeRawPointer(pooled)
        }
        let range = inputRows ?? 0..<gh
        let split = BalancedBlocks(range.count, most: blockRows[level], workers: threads)
        let gemmOffset = gemmOffset, nchw = options.layout == .nchw
        nonisolated(unsafe) let source_ = source, scratch = scratch
        parallelQueue(split.blocks, threads: threads) { worker, block in
            let y = scratch + worker * perWorker, widened = y + widenOffset
            let i0 = range.lowerBound + split.range(block).lowerBound, rows = split.range(block).count
            let g = self.packed.product(level: level)
            let (a, lda) = self.operand(
                source_, dtype: dtype, pixels: gh * gw, first: i0 * gw, rows: rows * gw, k: g.k, widened: widened)
            if let pg = self.products[level], let kernel = self.phase1Kernels[level] {
                // The micro-kernels add the bias (and GELU) per tile and store it where it goes,
                // one product per block: levels 0 and 1 through the phase scatter into G's / Z's
                // rows 2·i0 ..< 2·(i0 + rows); levels 2 and 3 (side 1) into Z's rows i0 ..< i0 + rows
                // (framed, so a block is not one strided matrix). One call per image row instead
                // reads the whole B for gw (72) product rows each time.
                pg.run(
                    kernel: kernel, rows: rows * gw, a: a, lda: lda, aTrans: nchw, gelu: level == 0, scatterInto: z,
                    width: gw, row0: i0, side: level < 2 ? 2 : 1, workspace: y + gemmOffset)
                return
            }
            self.product(a, lda: lda, rows: rows * gw, g, into: y)
            g.bias.withUnsafeBufferPointer { bias in
                switch level {
                case 0, 1:
                    // X·B → bias (GELU for level 0), scatter into G's / Z's rows 2·i0 ..< 2·(i0 + rows).
                    scatterTransposed2x2(
                        y, height: rows, width: gw, channels: g.n / 4, bias: bias.baseAddress!, gelu: level == 0,
                        into: z, row0: i0, threads: 1)
                default:
                    copyAddingBias(
                        y, height: rows, width: gw, channels: d, bias: bias.baseAddress!, into: z, row0: i0, threads: 1)
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
