// sam3neck-gemm-bench: the packed SGEMM of Sources/CKernels/sgemm.c against OpenBLAS's
// cblas_sgemm (one thread, as the neck's plan runs it) on the neck's shapes, interleaved in the
// same run, medians of REPS repetitions.
//
//   swift run -c release sam3neck-gemm-bench [REPS [KERNEL [WORKERS]]]   the table (KERNEL: avx512, avx2,
//       generic or auto; WORKERS threads at once, each on its own m rows with the shared B, as the plan runs)
//   swift run -c release sam3neck-gemm-bench tune [REPS [KERNEL]]  variants and cache blockings on a few shapes
//   swift run -c release sam3neck-gemm-bench tune-scatter [REPS]    blockings of the fused level-0 stage
// OpenBLAS picks its kernels by its own CPU table: OPENBLAS_CORETYPE=SkylakeX in the environment
// compares against its AVX-512 kernels where it does not pick them itself (0.3.21 on Zen 5).
import CKernels
import COpenBLAS
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// 64-byte aligned floats, filled with a fixed pseudo-random sequence in [-1, 1).
final class Buf {
    let p: UnsafeMutablePointer<Float>
    let count: Int
    init(_ count: Int, seed: UInt64 = 0) {
        self.count = max(count, 1)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: self.count * 4, alignment: 64)
        p = raw.bindMemory(to: Float.self, capacity: self.count)
        var s = seed &* 6364136223846793005 &+ 1442695040888963407
        for i in 0..<self.count {
            s = s &* 6364136223846793005 &+ 1442695040888963407
            p[i] = seed == 0 ? 0 : Float(Int32(truncatingIfNeeded: s >> 32)) / 2147483648
        }
    }
    deinit { UnsafeMutableRawPointer(p).deallocate() }
}

struct Shape {
    let name: String
    let m: Int, n: Int, k: Int
    let aTrans: Bool
    let lda: Int
}

/// One product's operands, our packed B, and both outputs.
final class Case {
    let s: Shape
    let a: Buf, b: Buf, bias: Buf, packed: Buf, c1: Buf, c2: Buf, ws: Buf
    /// B split for the bf16×3 AMX products, when the kernel is that one.
    let split: Buf?
    var args = sam3neck_sgemm_args()
    /// Workers, each with its own block of m rows (the plan's split); B is shared.
    let workers: Int
    init(_ s: Shape, kernel: Int32, workers: Int = 1) {
        self.s = s
        self.workers = workers
        precondition(!s.aTrans || s.lda >= s.m * workers, "lda")
        a = Buf(s.aTrans ? s.k * s.lda : s.m * workers * s.lda, seed: 1)
        b = Buf(s.k * s.n, seed: 2)
        // Outputs of order 1 (std ~ 1/3), as a trained layer's pre-activations: a GELU input with
        // |x| >= 13 takes the kernel's scalar path, which random sums of 1024 terms would hit.
        let scale = 1 / Float(s.k).squareRoot()
        for i in 0..<(s.k * s.n) { b.p[i] *= scale }
        bias = Buf(s.n, seed: 3)
        packed = Buf(sam3neck_sgemm_packed_b_floats(s.k, s.n))
        sam3neck_sgemm_pack_b(s.k, s.n, b.p, s.n, 0, packed.p)
        if kernel == Int32(SAM3NECK_SGEMM_AMX_BF16X3) {
            let split = Buf(sam3neck_sgemm_bf16x3_b_floats(s.k, s.n))
            precondition(sam3neck_sgemm_pack_b_bf16x3(s.k, s.n, packed.p, split.p) == 0)
            self.split = split
        } else {
            split = nil
        }
        c1 = Buf(s.m * workers * s.n)
        c2 = Buf(s.m * workers * s.n)
        args.kernel = kernel
        args.m = s.m; args.n = s.n; args.k = s.k
        args.a = UnsafePointer(a.p); args.lda = s.lda; args.a_trans = s.aTrans ? 1 : 0
        args.packed_b = UnsafePointer(packed.p)
        args.packed_b_bf16x3 = split.map { UnsafePointer($0.p) }
        args.c = c1.p; args.rs_c = s.n; args.cs_c = 1
        ws = Buf(workers << 22)  // 4 Mi floats per worker; checked against the query per call
    }
    /// Runs body(worker) on every worker at once (one after the other when there is one).
    func parallel(_ body: @Sendable (Int) -> Void) {
        if workers == 1 { body(0) } else { DispatchQueue.concurrentPerform(iterations: workers, execute: body) }
    }
    func ours(gelu: Bool = false, variant: Int32 = 0, mc: Int = 0, kc: Int = 0, nc: Int = 0) -> Double {
        var g = args
        g.variant = variant; g.mc = mc; g.kc = kc; g.nc = nc
        if gelu { g.bias = UnsafePointer(bias.p); g.gelu = 1 }
        precondition(sam3neck_sgemm_workspace_floats(&g) <= 1 << 22, "workspace")
        let s = self.s
        nonisolated(unsafe) let g0 = g
        nonisolated(unsafe) let a = self.a.p, c = c1.p, ws = self.ws.p
        let t0 = now()
        parallel { w in
            var gw = g0
            gw.a = UnsafePointer(s.aTrans ? a + w * s.m : a + w * s.m * s.lda)
            gw.c = c + w * s.m * s.n
            gw.workspace = ws + (w << 22)
            let rc = sam3neck_sgemm_run(&gw)
            precondition(rc == 0, "sam3neck_sgemm_run: \(rc)")
        }
        return now() - t0
    }
    func blas(gelu: Bool = false) -> Double {
        let s = self.s
        nonisolated(unsafe) let a = self.a.p, b = self.b.p, c = c2.p, bias = self.bias.p
        let t0 = now()
        parallel { w in
            let aw = s.aTrans ? a + w * s.m : a + w * s.m * s.lda, cw = c + w * s.m * s.n
            cblas_sgemm(
                CblasRowMajor, s.aTrans ? CblasTrans : CblasNoTrans, CblasNoTrans,
                blasint(s.m), blasint(s.n), blasint(s.k), 1, aw, blasint(s.lda), b, blasint(s.n),
                0, cw, blasint(s.n))
            if gelu {
                for i in 0..<s.m { sam3neck_bias_gelu(cw + i * s.n, bias, cw + i * s.n, s.n) }
            }
        }
        return now() - t0
    }
    /// max |ours - OpenBLAS| / max |OpenBLAS|
    func diff() -> Double {
        var md = 0.0, mx = 0.0
        for i in 0..<(s.m * workers * s.n) {
            md = max(md, Double(abs(c1.p[i] - c2.p[i]))); mx = max(mx, Double(abs(c2.p[i])))
        }
        return md / max(mx, 1e-30)
    }
    var gflop: Double { 2.0 * Double(s.m * workers) * Double(s.n) * Double(s.k) / 1e9 }
}

func pad(_ s: String, _ w: Int) -> String { String(repeating: " ", count: max(0, w - s.count)) + s }
/// printf-style formatting of one Double (no Foundation here).
func fmt(_ f: String, _ x: Double) -> String {
    var buf = [CChar](repeating: 0, count: 64)
    _ = withVaList([x]) { vsnprintf(&buf, 64, f, $0) }
    return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
func f1(_ x: Double) -> String { fmt("%.1f", x) }
func f2(_ x: Double) -> String { fmt("%.2f", x) }

let argv = CommandLine.arguments
openblas_set_num_threads(1)
let pixels = 72 * 72

if argv.count > 1 && argv[1] == "tune" {
    let reps = argv.count > 2 ? Int(argv[2]) ?? 9 : 9
    let kernel = argv.count > 3 ? sam3neck_sgemm_kernel_named(argv[3]) : Int32(SAM3NECK_SGEMM_AVX512)
    guard kernel > 0, sam3neck_sgemm_kernel_supported(kernel) != 0 else { print("kernel not supported here"); exit(2) }
    let vnames =
        kernel == Int32(SAM3NECK_SGEMM_AVX512)
        ? ["12x32", "14x32", "6x64"] : kernel == Int32(SAM3NECK_SGEMM_AVX2) ? ["6x16"] : ["4x16"]
    let shapes = [
        Shape(name: "L0 a^T", m: 2592, n: 2048, k: 1024, aTrans: true, lda: pixels),
        Shape(name: "L2 a^T", m: 288, n: 256, k: 1024, aTrans: true, lda: pixels),
        Shape(name: "wino", m: 324, n: 256, k: 256, aTrans: false, lda: 256),
        Shape(name: "L2big", m: 2592, n: 256, k: 1024, aTrans: false, lda: 1024),
        Shape(name: "wino1296", m: 1296, n: 256, k: 256, aTrans: false, lda: 256),
    ]
    for s in shapes {
        let c = Case(s, kernel: kernel)
        print("\(s.name) m=\(s.m) n=\(s.n) k=\(s.k)")
        _ = c.blas()
        var tb = [Double]()
        for _ in 0..<reps { tb.append(c.blas()) }
        print("  OpenBLAS \(f1(c.gflop / median(tb))) GFLOP/s")
        for v in 0..<vnames.count {
            for kc in [128, 256, 384, 512] {
                for mc in [48, 96, 192, 384] {
                    for nc in [512, 4096] {
                        _ = c.ours(variant: Int32(v), mc: mc, kc: kc, nc: nc)
                        var t = [Double]()
                        for _ in 0..<reps { t.append(c.ours(variant: Int32(v), mc: mc, kc: kc, nc: nc)) }
                        print("  \(vnames[v]) kc=\(kc) mc=\(mc) nc=\(nc): \(f1(c.gflop / median(t)))")
                    }
                }
            }
        }
    }
    exit(0)
}

// Level 0's first stage end to end: X·B, bias, GELU, and the transposed conv's phase scatter into
// the channels-last framed image the next stage reads. Ours: all in the epilogue (the scatter
// hook); OpenBLAS: cblas_sgemm into a scratch block, then the plan's scatter pass (bias + GELU
// per pixel and tap with sam3neck_bias_gelu, as scatterTransposed2x2 does).
/// Medians (ms) of ours under each (kc, nc) blocking (0: default) and of OpenBLAS + scatter, all
/// interleaved, plus the largest difference between the two images.
func fusedStage(rows: Int, aTrans: Bool, kernel: Int32, reps: Int, configs: [(Int, Int)]) -> (
    ours: [Double], blas: Double, diff: Double
) {
    let w = 72, ch = 512, m = rows * w
    let s = Shape(name: "", m: m, n: 4 * ch, k: 1024, aTrans: aTrans, lda: aTrans ? pixels : 1024)
    let c = Case(s, kernel: kernel)
    let pw = 2 * w + 2, ph = 2 * rows + 2
    let img1 = Buf(ph * pw * ch), img2 = Buf(ph * pw * ch)
    let bias4 = Buf(4 * ch)
    for t in 0..<4 { for o in 0..<ch { bias4.p[t * ch + o] = c.bias.p[o] } }
    let scatter = UnsafeMutablePointer<sam3neck_phase_scatter>.allocate(capacity: 1)
    defer { scatter.deallocate() }
    scatter.initialize(
        to: sam3neck_phase_scatter(
            out: img1.p + (pw + 1) * ch, width: w, channels: ch, row_stride: pw * ch, pixel_stride: ch, side: 2))
    func ours(_ kc: Int, _ nc: Int) -> Double {
        var g = c.args
        g.bias = UnsafePointer(bias4.p); g.gelu = 1
        g.store = sam3neck_sgemm_store_phase_scatter
        g.store_ctx = UnsafeMutableRawPointer(scatter)
        g.kc = kc; g.nc = nc
        g.workspace = c.ws.p
        precondition(sam3neck_sgemm_workspace_floats(&g) <= 1 << 22)
        let t0 = now()
        precondition(sam3neck_sgemm_run(&g) == 0)
        return now() - t0
    }
    func blas() -> Double {
        let t0 = now()
        cblas_sgemm(
            CblasRowMajor, aTrans ? CblasTrans : CblasNoTrans, CblasNoTrans,
            blasint(m), blasint(4 * ch), 1024, 1, c.a.p, blasint(s.lda), c.b.p, blasint(4 * ch),
            0, c.c2.p, blasint(4 * ch))
        for i in 0..<rows {
            for j in 0..<w {
                let row = c.c2.p + (i * w + j) * 4 * ch
                for a in 0..<2 {
                    for b in 0..<2 {
                        let out = img2.p + ((2 * i + a + 1) * pw + 2 * j + b + 1) * ch
                        sam3neck_bias_gelu(row + (2 * a + b) * ch, c.bias.p, out, ch)
                    }
                }
            }
        }
        return now() - t0
    }
    for (kc, nc) in configs { _ = ours(kc, nc) }
    _ = blas()
    var to = [[Double]](repeating: [], count: configs.count), tb = [Double]()
    for r in 0..<reps {
        if r % 2 == 1 { tb.append(blas()) }
        for (i, (kc, nc)) in configs.enumerated() { to[i].append(ours(kc, nc)) }
        if r % 2 == 0 { tb.append(blas()) }
    }
    var md: Float = 0
    for y in 1..<(ph - 1) {
        for x in 1..<(pw - 1) {
            for o in 0..<ch {
                let at = (y * pw + x) * ch + o
                md = max(md, abs(img1.p[at] - img2.p[at]))
            }
        }
    }
    return (to.map { median($0) * 1e3 }, median(tb) * 1e3, Double(md))
}

let stageCases = [(4, true), (4, false), (36, true), (36, false)]
if argv.count > 1 && argv[1] == "tune-scatter" {
    let reps = argv.count > 2 ? Int(argv[2]) ?? 15 : 15
    let configs = [(512, 512), (1024, 512), (512, 256), (1024, 256), (512, 1024), (1024, 4096)]
    print("level 0 first stage, ours under (kc, nc) vs OpenBLAS + scatter, medians of \(reps) ms, interleaved")
    print(pad("input", 18) + pad("m", 6) + configs.map { pad("\($0.0),\($0.1)", 11) }.joined() + pad("BLAS", 9))
    for (rows, aTrans) in stageCases {
        let r = fusedStage(rows: rows, aTrans: aTrans, kernel: Int32(SAM3NECK_SGEMM_AUTO), reps: reps, configs: configs)
        print(
            pad(aTrans ? "NCHW (A^T)" : "channels-last", 18) + pad("\(rows * 72)", 6)
                + r.ours.map { pad(f2($0), 11) }.joined() + pad(f2(r.blas), 9))
    }
    exit(0)
}

let reps = argv.count > 1 ? max(1, Int(argv[1]) ?? 15) : 15
// "amx": the default mode's bf16×3 AMX products (not a float32 kernel, so not a kernel name).
let kernel =
    argv.count > 2 && argv[2] == "amx"
    ? Int32(SAM3NECK_SGEMM_AMX_BF16X3)
    : argv.count > 2 && argv[2] != "auto" ? sam3neck_sgemm_kernel_named(argv[2]) : Int32(SAM3NECK_SGEMM_AUTO)
guard kernel >= 0, sam3neck_sgemm_kernel_supported(kernel == 0 ? sam3neck_sgemm_auto_kernel() : kernel) != 0 else {
    print("sam3neck-gemm-bench: kernel \(argv.count > 2 ? argv[2] : "?") is not supported here"); exit(2)
}
let workers = argv.count > 3 ? max(1, Int(argv[3]) ?? 1) : 1
let resolved = kernel == 0 ? sam3neck_sgemm_auto_kernel() : kernel
let kname = ["auto", "generic", "avx2", "avx512", "amx bf16x3"][Int(resolved)]

var shapes = [Shape]()
for m in [288, 2592] {
    for (n, what) in [(2048, "L0 dconv0"), (1024, "L1 dconv+1x1"), (256, "L2/3 1x1")] {
        shapes.append(Shape(name: "\(what) A^T", m: m, n: n, k: 1024, aTrans: true, lda: pixels))
        shapes.append(Shape(name: "\(what) A", m: m, n: n, k: 1024, aTrans: false, lda: 1024))
    }
}
shapes.append(Shape(name: "Winograd", m: 324, n: 256, k: 256, aTrans: false, lda: 256))
shapes.append(Shape(name: "Winograd", m: 1296, n: 256, k: 256, aTrans: false, lda: 256))
shapes.append(Shape(name: "L0 Winograd", m: 108, n: 256, k: 512, aTrans: false, lda: 512))

print(
    "packed SGEMM (\(kname)) vs OpenBLAS \(String(cString: openblas_get_corename())) cblas_sgemm (1 OpenBLAS thread), \(workers) worker(s) of m rows each, median of \(reps), interleaved"
)
print(
    "A^T: A read transposed from k x \(pixels) (NCHW); A: row-major. +GELU: bias + exact GELU epilogue (OpenBLAS: cblas_sgemm then sam3neck_bias_gelu per row)"
)
let head = [
    "shape", "m", "n", "k", "ours ms", "BLAS ms", "ours GF/s", "BLAS GF/s", "ratio", "+GELU ours", "+GELU BLAS",
    "ratio", "rel diff",
]
let widths = [18, 5, 5, 5, 8, 8, 10, 10, 6, 11, 11, 6, 9]
print(zip(head, widths).map { pad($0, $1) }.joined(separator: " "))
for s in shapes {
    let c = Case(s, kernel: kernel, workers: workers)
    _ = c.ours(); _ = c.blas()  // warm-up (pages, caches)
    var to = [Double](), tb = [Double](), tog = [Double](), tbg = [Double]()
    for r in 0..<reps {
        if r % 2 == 0 { to.append(c.ours()); tb.append(c.blas()) } else { tb.append(c.blas()); to.append(c.ours()) }
    }
    let d = c.diff()
    for r in 0..<reps {
        if r % 2 == 0 {
            tog.append(c.ours(gelu: true)); tbg.append(c.blas(gelu: true))
        } else {
            tbg.append(c.blas(gelu: true)); tog.append(c.ours(gelu: true))
        }
    }
    let mo = median(to), mb = median(tb)
    let row = [
        s.name, "\(s.m)", "\(s.n)", "\(s.k)", f2(mo * 1e3), f2(mb * 1e3), f1(c.gflop / mo), f1(c.gflop / mb),
        f2(mb / mo), f2(median(tog) * 1e3), f2(median(tbg) * 1e3), f2(median(tbg) / median(tog)), fmt("%.1e", d),
    ]
    print(zip(row, widths).map { pad($0, $1) }.joined(separator: " "))
}

print("")
print("Level 0 first stage (dconv_2x2_0 + bias + GELU + phase scatter into a framed 144-wide image), 1 worker")
let head2 = ["input", "m", "ours ms", "BLAS+scatter ms", "ratio", "max diff"]
let widths2 = [18, 5, 8, 16, 6, 9]
print(zip(head2, widths2).map { pad($0, $1) }.joined(separator: " "))
for (rows, aTrans) in stageCases {
    let r = fusedStage(rows: rows, aTrans: aTrans, kernel: kernel, reps: reps, configs: [(0, 0)])
    let row = [
        aTrans ? "NCHW (A^T)" : "channels-last", "\(rows * 72)", f2(r.ours[0]), f2(r.blas), f2(r.blas / r.ours[0]),
        fmt("%.1e", r.diff),
    ]
    print(zip(row, widths2).map { pad($0, $1) }.joined(separator: " "))
}
