#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A neck compiled for one input shape: packed weights, position encodings and one workspace,
/// all prepared here so that `run` allocates nothing.
///
/// Per image, branch by branch (channels-last inside):
/// - level 0: `Y = X·B₀` → bias+GELU+scatter → `G` (2H×2W) → `Y = G·B₁'` (dconv∘1×1 folded) →
///   bias+scatter into padded `Z` (4H×4W) → 3×3 conv → caller's buffer (NCHW);
/// - level 1: `Y = X·B'` (folded) → bias+scatter into `Z` (2H×2W) → 3×3 conv;
/// - level 2: `Y = X·B` (1×1) → bias into `Z` (H×W) → 3×3 conv;
/// - level 3: max pool → `Y = X'·B` → bias into `Z` → 3×3 conv.
/// An NCHW input is read as the transposed operand of the first product, so no layout pass is needed.
///
/// Concurrent `run` calls are serialised by a lock: they share the workspace.
public final class NeckPlan: @unchecked Sendable {
    public let options: CompileOptions
    public let trunkDim: Int, dModel: Int
    /// Resolved thread count (options.threads, or the online cores for 0).
    public let threads: Int
    /// `[B, d, h, w]` per level; nil for levels not compiled.
    public let levelShapes: [[Int]?]
    /// `[1, d, h, w]` per level, channel-major; nil for levels not compiled.
    public let positionEncodings: [[Float]?]
    /// Bytes of workspace owned by the plan.
    public let workspaceBytes: Int

    private let packed: PackedWeights
    // Workspace regions (floats): GEMM outputs; images between layers; pooled input; conv accumulator.
    private let workspace: UnsafeMutableRawPointer
    private let products: UnsafeMutablePointer<Float>
    private let images: UnsafeMutablePointer<Float>
    private let pooled: UnsafeMutablePointer<Float>
    private let accumulator: UnsafeMutablePointer<Float>
    private let lock: UnsafeMutablePointer<pthread_mutex_t>

    public var inputCount: Int { options.batch * trunkDim * options.height * options.width }

    public init(packed: PackedWeights, options: CompileOptions) throws {
        try options.validate()
        self.options = options
        self.packed = packed
        let c = packed.trunkDim, d = packed.dModel
        trunkDim = c
        dModel = d
        let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        threads = options.threads == 0 ? max(1, cores) : options.threads

        let h = options.height, w = options.width, p = h * w
        var shapes: [[Int]?] = Array(repeating: nil, count: 4)
        var pos: [[Float]?] = Array(repeating: nil, count: 4)
        // Sizes in floats, accumulated with overflow checks.
        var size = CheckedSize()
        var productFloats = 0, imageFloats = 0, pooledFloats = 0, accFloats = 0
        for level in options.levels {
            let g = CompileOptions.levelGrid(level, height: h, width: w)
            shapes[level] = [options.batch, d, g.h, g.w]
            let padded = size.mul(g.h + 2, g.w + 2, d) + 2 * d
            imageFloats = size.max(imageFloats, padded)
            accFloats = size.max(accFloats, packed.conv3x3[level].accumulatorCount(width: g.w, height: g.h))
            switch level {
            case 0:
                productFloats = size.max(productFloats, size.mul(p, packed.up4First.n), size.mul(4 * p, packed.up4Second.n))
                imageFloats = size.max(imageFloats, size.mul(4 * p, packed.up4Second.k))
            case 1: productFloats = size.max(productFloats, size.mul(p, packed.up2.n))
            case 2: productFloats = size.max(productFloats, size.mul(p, packed.same.n))
            default:
                productFloats = size.max(productFloats, size.mul(g.h * g.w, packed.down.n))
                pooledFloats = size.mul(g.h * g.w, c)
            }
        }
        // 64-byte aligned regions.
        func round(_ floats: Int) -> Int { (floats + 15) & ~15 }
        let totalFloats = size.mul(1, round(productFloats) + round(imageFloats) + round(pooledFloats) + round(accFloats))
        let bytes = size.mul(totalFloats, MemoryLayout<Float>.size)
        let physical = Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE)))
        let what = "compiling for batch \(options.batch), \(h)×\(w) (trunk_dim \(c), d_model \(d))"
        guard !size.overflow, bytes <= physical else {
            let amount = size.overflow ? "more bytes than fit in 64 bits" : "\(bytes) bytes (\(bytes >> 20) MiB)"
            throw NeckError(.outOfMemory, "\(what) would need \(amount) of workspace, more than the machine's \(physical >> 20) MiB of memory")
        }
        // Every BLAS dimension (at most 16·h·w rows of up to max(C, 4d) columns) must fit 32-bit integers.
        guard size.mul(16 * p, max(c, 4 * d)) < Int(Int32.max), !size.overflow else {
            throw NeckError(.outOfMemory, "\(what) would need \(bytes) bytes (\(bytes >> 20) MiB) of workspace in matrices too large for OpenBLAS's 32-bit indices")
        }
        var raw: UnsafeMutableRawPointer? = nil
        guard posix_memalign(&raw, 64, max(bytes, 64)) == 0, let raw else {
            throw NeckError(.outOfMemory, "cannot allocate \(bytes) bytes (\(bytes >> 20) MiB) of workspace for batch \(options.batch), \(h)×\(w)")
        }
        workspace = raw
        workspaceBytes = bytes
        let base = raw.bindMemory(to: Float.self, capacity: totalFloats)
        products = base
        images = products + round(productFloats)
        pooled = images + round(imageFloats)
        accumulator = pooled + round(pooledFloats)

        for level in options.levels {
            let g = CompileOptions.levelGrid(level, height: h, width: w)
            pos[level] = positionEncoding(dModel: d, height: g.h, width: g.w)
        }
        levelShapes = shapes
        positionEncodings = pos
        lock = .allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
    }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
        free(workspace)
    }

    /// Floats of output `level` for the whole batch.
    public func outputCount(level: Int) -> Int? {
        levelShapes[level].map { $0.reduce(1, *) }
    }

    /// Runs the plan. `input` holds `inputCount` floats in the compiled layout; `outputs[i]` must
    /// hold `outputCount(level: i)` floats for every compiled level. Sizes are the caller's
    /// responsibility here (the C layer checks them).
    public func run(input: UnsafePointer<Float>, outputs: [UnsafeMutablePointer<Float>?], profile: Profile? = nil) {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        Blas.setThreads(threads)
        let c = trunkDim, h = options.height, w = options.width
        for image in 0..<options.batch {
            let x = input + image * c * h * w
            for level in options.levels {
                let shape = levelShapes[level]!
                let out = outputs[level]! + image * shape[1] * shape[2] * shape[3]
                runBranch(level, x, out, profile)
            }
        }
    }

    /// `Y[p × n] = X[p × c] · B` where X is the input image (or its transpose for NCHW).
    private func productWithInput(_ x: UnsafePointer<Float>, pixels: Int, _ g: PackedWeights.Gemm) {
        let nchw = options.layout == .nchw
        g.b.withUnsafeBufferPointer { b in
            Blas.sgemm(transA: nchw, m: pixels, n: g.n, k: g.k, a: x, lda: nchw ? pixels : g.k,
                       b: b.baseAddress!, ldb: g.n, c: products, ldc: g.n)
        }
    }

    private func runBranch(_ level: Int, _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ profile: Profile?) {
        let h = options.height, w = options.width, d = dModel
        let g = CompileOptions.levelGrid(level, height: h, width: w)
        let z = PaddedImage(base: images, height: g.h, width: g.w, channels: d)
        switch level {
        case 0:
            let first = packed.up4First, second = packed.up4Second
            profile.time("L0 dconv_2x2_0 gemm") { productWithInput(x, pixels: h * w, first) }
            let mid = PaddedImage(base: images, height: 2 * h, width: 2 * w, channels: first.n / 4, pad: 0, slack: 0)
            profile.time("L0 bias+gelu+scatter") {
                first.bias.withUnsafeBufferPointer {
                    scatterTransposed2x2(products, height: h, width: w, channels: first.n / 4, bias: $0.baseAddress!, gelu: true, into: mid, threads: threads)
                }
            }
            profile.time("L0 dconv_2x2_1∘conv_1x1 gemm") {
                second.b.withUnsafeBufferPointer { b in
                    Blas.sgemm(m: 4 * h * w, n: second.n, k: second.k, a: images, lda: second.k,
                               b: b.baseAddress!, ldb: second.n, c: products, ldc: second.n)
                }
            }
            // `z` overlaps `mid`, which is dead once the product above has read it.
            profile.time("L0 bias+scatter") {
                z.zeroBorder()
                second.bias.withUnsafeBufferPointer {
                    scatterTransposed2x2(products, height: 2 * h, width: 2 * w, channels: d, bias: $0.baseAddress!, gelu: false, into: z, threads: threads)
                }
            }
        case 1:
            profile.time("L1 dconv_2x2∘conv_1x1 gemm") { productWithInput(x, pixels: h * w, packed.up2) }
            profile.time("L1 bias+scatter") {
                z.zeroBorder()
                packed.up2.bias.withUnsafeBufferPointer {
                    scatterTransposed2x2(products, height: h, width: w, channels: d, bias: $0.baseAddress!, gelu: false, into: z, threads: threads)
                }
            }
        case 2:
            profile.time("L2 conv_1x1 gemm") { productWithInput(x, pixels: h * w, packed.same) }
            profile.time("L2 bias") {
                z.zeroBorder()
                packed.same.bias.withUnsafeBufferPointer {
                    copyAddingBias(products, height: h, width: w, channels: d, bias: $0.baseAddress!, into: z, threads: threads)
                }
            }
        default:
            let c = trunkDim, pixels = g.h * g.w
            let nchw = options.layout == .nchw
            profile.time("L3 maxpool") {
                if nchw {
                    maxPool2x2ChannelMajor(x, channels: c, height: h, width: w, into: pooled, threads: threads)
                } else {
                    maxPool2x2ChannelsLast(x, channels: c, height: h, width: w, into: pooled, threads: threads)
                }
            }
            profile.time("L3 conv_1x1 gemm") { productWithInput(pooled, pixels: pixels, packed.down) }
            profile.time("L3 bias") {
                z.zeroBorder()
                packed.down.bias.withUnsafeBufferPointer {
                    copyAddingBias(products, height: g.h, width: g.w, channels: d, bias: $0.baseAddress!, into: z, threads: threads)
                }
            }
        }
        profile.time("L\(level) conv_3x3") {
            packed.conv3x3[level].run(z, into: out, accumulator: accumulator, threads: threads)
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
            if o { overflow = true; return Int.max / 2 }
            r = p
        }
        return r
    }

    func max(_ xs: Int...) -> Int { xs.max()! }
}
