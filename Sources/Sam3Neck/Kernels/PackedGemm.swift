import CKernels
#if canImport(Glibc)
import Glibc
#endif

/// Which code runs the plan's products (phase 1 and the Winograd products).
///
/// The packed micro-kernels of CKernels (`sam3neck_sgemm`, B packed once at compile) where the CPU
/// has AVX-512: measured 1.8–1.9× the Haswell kernels of OpenBLAS 0.3.21 on Zen 5 and level with
/// its own AVX-512 kernels, with the bias, GELU and phase scatter done per tile instead of in a
/// separate pass. With AVX2 only, OpenBLAS where its own kernels for this CPU are AVX2 ones (the
/// two tie on Zen 3), the AVX2 micro-kernels where OpenBLAS does not know the CPU and falls back
/// to older ones (0.3.21 runs its SSE3 "Prescott" kernels on some Xeons of this machine kind:
/// the AVX2 micro-kernels are 2.3–2.7× those there). Without AVX2, OpenBLAS (about 5× the
/// portable kernel). SAM3NECK_SGEMM_KERNEL, when it names a kernel this CPU runs, picks it.
/// (`swift run -c release sam3neck-gemm-bench` measures them side by side.)
package enum GemmBackend: Hashable, Sendable {
    case openBLAS
    case packed(kernel: Int32)

    /// Whether the CPU runs the bf16×3 AMX products (`sam3neck_cpu_has_amx_bf16`); the default
    /// precision mode uses them for phase 1 and the Winograd convs unless SAM3NECK_SGEMM_KERNEL
    /// names a kernel.
    package static let amxAvailable = sam3neck_sgemm_kernel_supported(Int32(SAM3NECK_SGEMM_AMX_BF16X3)) != 0

    /// Whether the default mode takes the AMX products now: the CPU has them and
    /// SAM3NECK_SGEMM_KERNEL names no kernel.
    package static var bf16x3Preferred: Bool { amxAvailable && sam3neck_sgemm_env_kernel() < 0 }

    /// The bfloat16 products of the fast mode on this CPU: the AMX tile products, else VDPBF16PS
    /// (AVX512_BF16), else none (nil).
    package static let bf16Preferred: Int32? = [Int32(SAM3NECK_SGEMM_AMX_BF16), Int32(SAM3NECK_SGEMM_AVX512_BF16)]
        .first { sam3neck_sgemm_kernel_supported($0) != 0 }

    /// Whether `kernel` is a bfloat16 product code of the fast mode (its B: `PackedGemm.bf16`).
    package static func isBF16(_ kernel: Int32) -> Bool {
        [
            SAM3NECK_SGEMM_AVX512_BF16, SAM3NECK_SGEMM_AVX512_BF16_EMULATED, SAM3NECK_SGEMM_AMX_BF16,
            SAM3NECK_SGEMM_AMX_BF16_EMULATED,
        ].contains(Int(kernel))
    }

    /// The short name of a product code (`SAM3NECK_SGEMM_*`), as `sam3_neck_kernel_name` reports
    /// it: "generic", "avx2", "avx512", "amx_bf16x3", "avx512_bf16", "amx_bf16" (the emulated
    /// codes of the tests end in "_emulated").
    package static func codeName(_ kernel: Int32) -> String {
        switch Int(kernel) {
        case Int(SAM3NECK_SGEMM_GENERIC): return "generic"
        case Int(SAM3NECK_SGEMM_AVX2): return "avx2"
        case Int(SAM3NECK_SGEMM_AVX512): return "avx512"
        case Int(SAM3NECK_SGEMM_AMX_BF16X3): return "amx_bf16x3"
        case Int(SAM3NECK_SGEMM_AVX512_BF16): return "avx512_bf16"
        case Int(SAM3NECK_SGEMM_AVX512_BF16_EMULATED): return "avx512_bf16_emulated"
        case Int(SAM3NECK_SGEMM_AMX_BF16): return "amx_bf16"
        case Int(SAM3NECK_SGEMM_AMX_BF16_EMULATED): return "amx_bf16_emulated"
        case Int(SAM3NECK_SGEMM_AMX_BF16X3_EMULATED): return "amx_bf16x3_emulated"
        default: return "unknown"
        }
    }

    /// Every name `codeName` gives, the backend's "openblas" included.
    package static let codeNames: [String] =
        ["openblas", "unknown"] + (1...Int32(SAM3NECK_SGEMM_AMX_BF16X3_EMULATED)).map { codeName($0) }

    /// `codeName` of this backend's float32 products; "openblas" for OpenBLAS's sgemm.
    package var codeName: String {
        switch self {
        case .openBLAS: return "openblas"
        case let .packed(kernel): return GemmBackend.codeName(kernel)
        }
    }

    /// For people: the name of a bfloat16 product code.
    package static func bf16Name(_ kernel: Int32) -> String {
        switch Int(kernel) {
        case Int(SAM3NECK_SGEMM_AMX_BF16): return "amx-bf16 tile products"
        case Int(SAM3NECK_SGEMM_AVX512_BF16): return "avx512-bf16 micro-kernels"
        case Int(SAM3NECK_SGEMM_AMX_BF16_EMULATED): return "amx-bf16 tile products (emulated)"
        default: return "avx512-bf16 micro-kernels (emulated)"
        }
    }

    /// Throws `invalidArgument` when SAM3NECK_SGEMM_KERNEL is set to anything but a kernel this CPU
    /// runs ("generic", "avx2", "avx512"): a typo or a kernel the CPU lacks would otherwise be
    /// silently ignored, and the variable decides which code, so which last bits, a plan computes.
    package static func checkEnvironment() throws {
        guard let raw = getenv("SAM3NECK_SGEMM_KERNEL") else { return }
        let value = String(cString: raw), named = sam3neck_sgemm_kernel_named(raw)
        guard named > 0 else {
            throw NeckError(
                .invalidArgument,
                "SAM3NECK_SGEMM_KERNEL is '\(value)': it takes generic, avx2 or avx512 (unset it for the best kernel this CPU runs)"
            )
        }
        guard sam3neck_sgemm_kernel_supported(named) != 0 else {
            throw NeckError(
                .invalidArgument,
                "SAM3NECK_SGEMM_KERNEL is '\(value)', a kernel this CPU does not run (unset it for the best kernel this CPU runs)"
            )
        }
    }

    /// The choice for this CPU and this OpenBLAS.
    package static var preferred: GemmBackend {
        choose(
            kernel: sam3neck_sgemm_auto_kernel(), explicit: sam3neck_sgemm_env_kernel() >= 0,
            openBLASCore: Blas.coreName)
    }

    /// OpenBLAS's names for the cores whose sgemm kernels are AVX2 + FMA or better.
    static let vectorCores: Set<String> = ["haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"]

    /// The rule of `preferred`, for a kernel the CPU runs (`sam3neck_sgemm_auto_kernel`), whether
    /// the environment named it, and the core OpenBLAS runs (`openblas_get_corename`).
    package static func choose(kernel: Int32, explicit: Bool, openBLASCore: String) -> GemmBackend {
        if explicit || kernel == Int32(SAM3NECK_SGEMM_AVX512) { return .packed(kernel: kernel) }
        if kernel == Int32(SAM3NECK_SGEMM_AVX2), !vectorCores.contains(openBLASCore.lowercased()) {
            return .packed(kernel: kernel)
        }
        return .openBLAS
    }
}

/// A GEMM right-hand side packed for the micro-kernels, with its bias laid out per column (a
/// transposed conv's bias repeated over its four taps).
package struct PackedGemm: Sendable {
    package let packed: AlignedFloats
    /// B split into bfloat16 hi and lo tiles for the AMX products of the default mode
    /// (`sam3neck_sgemm_pack_b_bf16x3`), where the CPU has AMX and B splits (no Inf or NaN).
    package let bf16x3: AlignedFloats?
    /// B rounded to bfloat16 pairs for the fast mode's products (`sam3neck_sgemm_pack_b_bf16`),
    /// made on request (`withBF16`).
    package private(set) var bf16: AlignedFloats?
    package let bias: [Float]
    package let k: Int, n: Int

    /// `bf16x3`: also split B for the AMX products; by default where the CPU has AMX and B is
    /// wide (levels 0 and 1, n = 2048 and 1024: 1.7-2.1× the AVX-512 kernel in
    /// `sam3neck-gemm-bench 9 amx`; at n = 256 the split of A costs what the products save).
    package init(_ g: GemmWeights, bf16x3 split: Bool = GemmBackend.bf16x3Preferred) {
        let split = split && g.n >= 1024
        k = g.k
        n = g.n
        // (`sam3neck_sgemm_pack_b` writes the padding columns too.)
        let packed = AlignedFloats(count: sam3neck_sgemm_packed_b_floats(k, n), zeroed: false) { p in
            g.b.withUnsafeBufferPointer { sam3neck_sgemm_pack_b(g.k, g.n, $0.baseAddress, g.n, 0, p) }
        }
        self.packed = packed
        var splits = split
        let halves =
            split
            ? AlignedFloats(count: sam3neck_sgemm_bf16x3_b_floats(k, n), zeroed: false) { p in
                splits = sam3neck_sgemm_pack_b_bf16x3(g.k, g.n, packed.pointer, p) == 0
            } : nil
        bf16x3 = splits ? halves : nil
        bias = Array(repeatElement(g.bias, count: g.n / g.bias.count).joined())
    }

    /// This product with its bfloat16 form made (a copy of the handles, not of the float32 forms).
    package func withBF16() -> PackedGemm {
        guard bf16 == nil else { return self }
        var copy = self
        let packed = packed, k = k, n = n
        copy.bf16 = AlignedFloats(count: sam3neck_sgemm_bf16_b_floats(k, n), zeroed: false) {
            sam3neck_sgemm_pack_b_bf16(k, n, packed.pointer, $0)
        }
        return copy
    }

    /// Workspace floats one call of `rows` rows needs.
    func workspaceFloats(rows: Int) -> Int {
        var args = sam3neck_sgemm_args()
        (args.m, args.n, args.k) = (rows, n, k)
        return sam3neck_sgemm_workspace_floats(&args)
    }

    /// `A[rows × k] · B + bias` (with GELU when asked), stored through `store` (a C hook and its
    /// context) or into `c` (row-major, ldc = n). `aTrans`: A is stored transposed (k × rows, lda).
    func run(
        kernel: Int32, rows: Int, a: UnsafePointer<Float>, lda: Int, aTrans: Bool, gelu: Bool,
        c: UnsafeMutablePointer<Float>?, store: sam3neck_sgemm_store_fn? = nil, context: UnsafeMutableRawPointer? = nil,
        workspace: UnsafeMutablePointer<Float>
    ) {
        do {
            let p = packed.pointer
            bias.withUnsafeBufferPointer { b in
                var args = sam3neck_sgemm_args()
                args.kernel = kernel
                (args.m, args.n, args.k) = (rows, n, k)
                (args.a, args.lda, args.a_trans) = (a, lda, aTrans ? 1 : 0)
                (args.packed_b, args.bias, args.gelu) = (p, b.baseAddress, gelu ? 1 : 0)
                (args.c, args.rs_c, args.cs_c) = (c, n, 1)
                (args.store, args.store_ctx, args.workspace) = (store, context, workspace)
                if kernel == Int32(SAM3NECK_SGEMM_AMX_BF16X3) { args.packed_b_bf16x3 = UnsafePointer(bf16x3!.pointer) }
                if GemmBackend.isBF16(kernel) { args.packed_b = UnsafePointer(bf16!.pointer) }
                let status = sam3neck_sgemm_run(&args)
                precondition(status == 0, "sam3neck_sgemm_run: \(status)")  // arguments are the plan's own
            }
        }
    }
}

extension PackedGemm {
    /// `A[rows × k] · B + bias` (with GELU when asked) for `rows` pixels of a grid `width` wide
    /// from its row `row0` on, stored channels-last into `image`: `side` 2, a k = 2, s = 2
    /// transposed conv (columns (2a + b)·n/4 + o to pixel (2i + a, 2j + b), from image row
    /// 2·row0); `side` 1, a plain product (column o to pixel (i, j), from image row row0).
    /// The C kernels' phase-scatter hook does the stores, per finished tile.
    func run(
        kernel: Int32, rows: Int, a: UnsafePointer<Float>, lda: Int, aTrans: Bool, gelu: Bool,
        scatterInto image: PaddedImage, width: Int, row0: Int, side: Int, workspace: UnsafeMutablePointer<Float>
    ) {
        let channels = n / (side * side)
        precondition(channels == image.channels && rows % width == 0)
        var scatter = sam3neck_phase_scatter(
            out: image.pixel(side * row0, 0), width: width, channels: channels,
            row_stride: image.paddedWidth * channels, pixel_stride: channels, side: side)
        withUnsafeMutablePointer(to: &scatter) { ctx in
            run(
                kernel: kernel, rows: rows, a: a, lda: lda, aTrans: aTrans, gelu: gelu, c: nil,
                store: sam3neck_sgemm_store_phase_scatter, context: UnsafeMutableRawPointer(ctx), workspace: workspace)
        }
    }
}

extension GemmBackend {
    /// The best rate, in GFLOP/s, of this backend's products on `threads` workers at once (each
    /// its own 1536 × 1024 · 1024 × 1024 product, single-threaded, as the plan runs them): the
    /// machine's float32 product peak, against which `sam3neck-profile` and the benchmark state the
    /// efficiency of a run. Best of `repeats` rounds; takes about a second. `bf16`: the peak of that
    /// bfloat16 product code instead (the fast mode's), on the same shapes.
    package func measuredPeak(threads: Int, repeats: Int = 5, bf16: Int32? = nil) -> Double {
        let m = 1536, n = 1024, k = 1024, workers = max(1, threads)
        var args = sam3neck_sgemm_args()
        (args.m, args.n, args.k) = (m, n, k)
        let wsFloats = sam3neck_sgemm_workspace_floats(&args)
        let a = [Float]((0..<(m * k)).map { Float(($0 * 7919) % 1000) / 1000 - 0.5 })
        let b = [Float]((0..<(k * n)).map { Float(($0 * 104_729) % 1000) / 1000 - 0.5 })
        var packed = PackedGemm(
            GemmWeights(b: AlignedFloats(copying: b), bias: [Float](repeating: 0, count: n), k: k, n: n))
        if bf16 != nil { packed = packed.withBF16() }
        let out = UnsafeMutablePointer<Float>.allocate(capacity: workers * (m * n + wsFloats))
        defer { out.deallocate() }
        nonisolated(unsafe) let base = out
        var best = 0.0
        a.withUnsafeBufferPointer { ab in
            b.withUnsafeBufferPointer { bb in
                nonisolated(unsafe) let ap = ab.baseAddress!, bp = bb.baseAddress!
                for _ in 0..<max(1, repeats) {
                    let t0 = WallClock.seconds()
                    parallelFor(workers, threads: workers) { w in
                        let c = base + w * (m * n + wsFloats)
                        switch self {
                        case _ where bf16 != nil:
                            packed.run(
                                kernel: bf16!, rows: m, a: ap, lda: k, aTrans: false, gelu: false, c: c,
                                workspace: c + m * n)
                        case .openBLAS:
                            Blas.sgemm(m: m, n: n, k: k, a: ap, lda: k, b: bp, ldb: n, c: c, ldc: n)
                        case let .packed(kernel):
                            packed.run(
                                kernel: kernel, rows: m, a: ap, lda: k, aTrans: false, gelu: false, c: c,
                                workspace: c + m * n)
                        }
                    }
                    best = Swift.max(best, 2.0 * Double(m * n * k * workers) / (WallClock.seconds() - t0) * 1e-9)
                }
            }
        }
        return best
    }

    /// What the products run on, for people: "avx512 micro-kernels", "OpenBLAS".
    package var name: String {
        switch self {
        case .openBLAS: return "OpenBLAS sgemm"
        case let .packed(k):
            return k == Int32(SAM3NECK_SGEMM_AVX512)
                ? "avx512 micro-kernels"
                : k == Int32(SAM3NECK_SGEMM_AVX2) ? "avx2 micro-kernels" : "portable micro-kernels"
        }
    }
}
