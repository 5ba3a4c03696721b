import CKernels
/// What a plan is compiled for: the input's shape and layout, the levels to compute, the threads,
/// the precision, and the element types and layout of the input and outputs.
///
/// Each field is an option of the C ABI's `sam3_neck_compile_params` or `sam3_neck_io_params`
/// (include/sam3_neck.h), with the same defaults. ``Neck/compile(_:)`` checks the values and
/// throws ``NeckError`` naming the first bad one; `Neck.compile(batch:height:width:...)` takes
/// the same options with the levels as a list.
public struct CompileOptions: Sendable, Equatable {
    /// How the input is stored: the order of its four dimensions in memory.
    public enum Layout: Int, Sendable {
        /// `[B, C, H, W]`, channel-major (PyTorch's order).
        case nchw = 0
        /// `[B, H, W, C]`, channels-last (the trunk's own order).
        case nhwc = 1
    }
    /// What the arithmetic may cost in accuracy (normalised max error per level against float64:
    /// 1e-4 for `default`, 1e-5 for `strict`, 1e-2 for `fast`, the C header's
    /// `SAM3_NECK_BOUND_*`): `default` and `strict` compute in float32 (strict with float32
    /// products only), `fast` multiplies in bfloat16 with float32 sums where the CPU has native
    /// bfloat16 products (AVX512_BF16 or AMX-BF16) and is `default` elsewhere.
    public enum Precision: Int, Sendable, CaseIterable {
        /// Float32, normalised error ≤ 1e-4; on CPUs with AMX-BF16 some products run as three
        /// bfloat16 products each, inside that bound.
        case `default` = 0
        /// Float32 products only, normalised error ≤ 1e-5; slower (smaller Winograd tiles).
        case strict = 1
        /// Bfloat16 products with float32 sums, normalised error ≤ 1e-2, where the CPU has native
        /// bfloat16 products; computes as `default` elsewhere.
        case fast = 2
    }
    /// Element type of the input or the outputs; the neck computes in float32 inside. Half
    /// precision outputs are rounded to nearest even (float16 overflows to ±Inf past 65504).
    public enum DType: Int, Sendable {
        /// IEEE binary32, `Float`.
        case float32 = 0
        /// IEEE binary16, passed as 16-bit patterns.
        case float16 = 1
        /// The upper 16 bits of a float32, passed as 16-bit patterns.
        case bfloat16 = 2
    }
    /// How each output level (and its position encoding, with B = 1) is stored: `[B, d, h, w]`,
    /// `[B, h, w, d]`, or `[h·w, B, d]` (the tokens SAM 3's transformer encoder reads).
    public enum OutputLayout: Int, Sendable {
        /// `[B, d, h, w]`, channel-major (PyTorch's order).
        case nchw = 0
        /// `[B, h, w, d]`, channels-last.
        case nhwc = 1
        /// `[h·w, B, d]`: one token per pixel, as `features.flatten(2).permute(2, 0, 1)` gives.
        case sequence = 2
    }

    /// Images per run, 1...1048576 (`B`).
    public var batch: Int
    /// Rows of the trunk's feature grid, 1...32768 (72 for a 1008 × 1008 image).
    public var height: Int
    /// Columns of the trunk's feature grid, 1...32768.
    public var width: Int
    /// How the input is stored, NCHW or NHWC.
    public var layout: Layout
    /// Levels to compute, as a bit mask (bit i = level i): a non-empty subset of 0xF.
    public var levelsMask: UInt32
    /// Threads for a run, 0...1024; 0 means all online cores.
    public var threads: Int
    /// The accuracy the arithmetic keeps, and so its speed.
    public var precision: Precision
    /// The input's element type.
    public var inputDType: DType
    /// The outputs' element type (and their position encodings' when written into a buffer).
    public var outputDType: DType
    /// How each output level is stored.
    public var outputLayout: OutputLayout
    /// The code of the phase-1 products (the CPU's preferred one unless a test picks another).
    package var gemm: GemmBackend = .preferred
    /// Whether the default mode's widest phase-1 products and its Winograd products run as bf16×3
    /// on AMX (`GemmBackend.amxAvailable`, and SAM3NECK_SGEMM_KERNEL unset: naming a kernel means
    /// that kernel everywhere; `NeckPlan.winogradTile`). Strict mode never does.
    package var bf16x3Products = GemmBackend.bf16x3Preferred
    /// Tile rows per level-0 band (`UpsampleConv3x3.Band`): 18 is two bands at SAM 3's 72 × 72
    /// grid, G's frame 23 MB instead of 44 MB (level 1's 22 MB frame is then the largest) for
    /// recomputing 2 of 72 input rows of dconv_2x2_0. Three bands (12) save no more memory and
    /// cost more: dconv_2x2_0's weights are streamed once per row block, and smaller bands
    /// make more blocks (measured on this machine kind). Tests pick others.
    package var level0BandTileRows = 18
    /// The bfloat16 product code of the fast mode (`GemmBackend.bf16Preferred`: AMX, else
    /// AVX512_BF16, else none); tests pick the emulated ones.
    package var bf16Kernel: Int32? = GemmBackend.bf16Preferred

    /// The product code of the fast mode's bfloat16 products: nil outside the fast mode and where
    /// the CPU has no bfloat16 products (then the fast mode computes as the default one).
    package var fastKernel: Int32? { precision == .fast ? bf16Kernel : nil }

    /// The product code of the plan: `gemm`, or packed products wherever the fast mode has its
    /// bfloat16 code (its kernels read packed operands, whatever the float32 choice).
    package var productGemm: GemmBackend {
        if let fast = fastKernel, gemm == .openBLAS { return .packed(kernel: fast) }
        return gemm
    }

    /// The precision whose arithmetic the plan runs: the fast mode without bfloat16 products is
    /// the default mode's.
    package var arithmetic: Precision { precision == .fast && fastKernel == nil ? .default : precision }

    /// Options with the C ABI's defaults: one 72 × 72 NCHW float32 input, all four levels, all
    /// cores, the default precision, float32 NCHW outputs. Nothing is checked until a compile.
    public init(
        batch: Int = 1, height: Int = 72, width: Int = 72, layout: Layout = .nchw,
        levelsMask: UInt32 = 0xF, threads: Int = 0, precision: Precision = .default,
        inputDType: DType = .float32, outputDType: DType = .float32, outputLayout: OutputLayout = .nchw
    ) {
        self.batch = batch
        self.height = height
        self.width = width
        self.layout = layout
        self.levelsMask = levelsMask
        self.threads = threads
        self.precision = precision
        self.inputDType = inputDType
        self.outputDType = outputDType
        self.outputLayout = outputLayout
    }

    /// Whether `level` (0...3) is in ``levelsMask``.
    public func includes(level: Int) -> Bool { levelsMask & (1 << UInt32(level)) != 0 }
    /// The levels of ``levelsMask``, in increasing order.
    public var levels: [Int] { (0..<4).filter(includes(level:)) }

    /// Output grid of `level` for an input grid h × w (scales 4, 2, 1, 0.5; the last floors).
    package static func levelGrid(_ level: Int, height h: Int, width w: Int) -> (h: Int, w: Int) {
        switch level {
        case 0: return (4 * h, 4 * w)
        case 1: return (2 * h, 2 * w)
        case 2: return (h, w)
        default: return (h / 2, w / 2)
        }
    }

    /// Throws `invalidArgument`/`shape` naming the first bad field.
    package func validate() throws {
        // Bounds keep every derived size far from overflow; real grids are ~100.
        let maxGrid = 1 << 15
        guard batch >= 1, batch <= 1 << 20 else {
            throw NeckError(.invalidArgument, "batch must be in 1...\(1 << 20), got \(batch)")
        }
        guard height >= 1, height <= maxGrid else {
            throw NeckError(.invalidArgument, "height must be in 1...\(maxGrid), got \(height)")
        }
        guard width >= 1, width <= maxGrid else {
            throw NeckError(.invalidArgument, "width must be in 1...\(maxGrid), got \(width)")
        }
        guard levelsMask != 0, levelsMask & ~0xF == 0 else {
            throw NeckError(
                .invalidArgument,
                "levels mask must be a non-empty subset of 0xF (bit i = level i), got 0x\(String(levelsMask, radix: 16))"
            )
        }
        guard level0BandTileRows >= 1 else {
            throw NeckError(.invalidArgument, "level-0 bands need at least one tile row, got \(level0BandTileRows)")
        }
        guard threads >= 0, threads <= 1024 else {
            throw NeckError(.invalidArgument, "threads must be in 0...1024 (0 = all cores), got \(threads)")
        }
        if includes(level: 3), height < 2 || width < 2 {
            throw NeckError(
                .shape,
                "level 3 (scale 0.5) needs a grid of at least 2×2, got \(height)×\(width); leave it out of the levels mask"
            )
        }
    }
}
