import CKernels
import Dispatch
import Foundation
import Synchronization
import Testing

/// The packed SGEMM of Sources/CKernels/sgemm.c (every kernel family this CPU runs, the portable
/// one always) against a naive loop in double.
///
/// Tolerance: the inputs are floats, so the double reference Σ a·b (+ bias) is exact to ~1e-16
/// relative, and the kernel's float32 sum of k products (FMA or not, in any order) plus the bias
/// is off by at most γ = (k + 1)·u·(Σ|a·b| + |bias|), u = 2⁻²⁴ (the standard bound for a
/// recursive or blocked sum: each term passes through at most k + 1 roundings). Computed per
/// element from the same operands, the bound is rigorous, not statistical; a wrong index, panel
/// or row gives errors of the order of Σ|a·b| itself, ~k times larger. With GELU on top:
/// |GELU'| ≤ 1.13 carries γ through, plus the GELU kernel's own bound from KernelTests
/// (|GELU(x)|·(8 + 4z²)·u, z = x/√2).
@Suite struct SgemmKernelTests {
    static let kernels: [Int32] = [
        Int32(SAM3NECK_SGEMM_GENERIC), Int32(SAM3NECK_SGEMM_AVX2), Int32(SAM3NECK_SGEMM_AVX512),
    ]
    static let u = 0x1p-24

    /// Deterministic values in [-1, 1), both signs (so that sums cancel).
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var s = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
        return (0..<count).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int32(truncatingIfNeeded: s >> 32)) / 2147483648
        }
    }

    struct Problem {
        let m: Int, n: Int, k: Int
        let aTrans: Bool
        let lda: Int
        let a: [Float]  // A(i, kk) = a[aTrans ? kk*lda + i : i*lda + kk]
        let b: [Float]  // k x n row-major
        let bias: [Float]
        init(m: Int, n: Int, k: Int, aTrans: Bool, seed: UInt64) {
            self.m = m; self.n = n; self.k = k; self.aTrans = aTrans
            lda = (aTrans ? m : k) + 3  // a leading dimension larger than the row
            a = SgemmKernelTests.values(max(1, (aTrans ? k : m) * lda), seed: seed)
            b = SgemmKernelTests.values(max(1, k * n), seed: seed + 1)
            bias = SgemmKernelTests.values(n, seed: seed + 2)
        }
        /// p with another A (the same shape).
        init(_ p: Problem, a: [Float]) {
            (m, n, k, aTrans, lda, b, bias) = (p.m, p.n, p.k, p.aTrans, p.lda, p.b, p.bias)
            self.a = a
        }
        func aAt(_ i: Int, _ kk: Int) -> Float { aTrans ? a[kk * lda + i] : a[i * lda + kk] }
        /// (Σ a·b + bias, Σ|a·b| + |bias|) in double.
        func reference(_ i: Int, _ j: Int, bias useBias: Bool) -> (Double, Double) {
            var s = 0.0, sa = 0.0
            for kk in 0..<k {
                let p = Double(aAt(i, kk)) * Double(b[kk * n + j])
                s += p; sa += abs(p)
            }
            if useBias { s += Double(bias[j]); sa += abs(Double(bias[j])) }
            return (s, sa)
        }
        /// Runs `kernel` on this problem into a row-major C of leading dimension `ldc` (NaN
        /// before), B packed (and split for the AMX kernel; `floatB` false: the AMX kernel gets
        /// only the split B, packed_b NULL): (status, C).
        func run(kernel: Int32, bias useBias: Bool, gelu: Bool, ldc: Int? = nil, floatB: Bool = true) -> (
            Int32, [Float]
        ) {
            let ldc = ldc ?? n, packed = packed()
            let split = SgemmKernelTests.AlignedBuffer(sam3neck_sgemm_bf16x3_b_floats(k, n))
            if SgemmKernelTests.amxKernels.contains(kernel) {
                #expect(sam3neck_sgemm_pack_b_bf16x3(k, n, packed, split.p) == 0)
            }
            var c = [Float](repeating: .nan, count: m * ldc)
            var g = sam3neck_sgemm_args()
            g.kernel = kernel; g.m = m; g.n = n; g.k = k; g.lda = lda; g.a_trans = aTrans ? 1 : 0
            g.gelu = gelu ? 1 : 0
            var ws = [Float](repeating: .nan, count: sam3neck_sgemm_workspace_floats(&g))
            let rc = a.withUnsafeBufferPointer { a in
                packed.withUnsafeBufferPointer { pb in
                    bias.withUnsafeBufferPointer { bb in
                        c.withUnsafeMutableBufferPointer { cb in
                            ws.withUnsafeMutableBufferPointer { w in
                                g.a = a.baseAddress; g.packed_b = floatB ? pb.baseAddress : nil
                                g.packed_b_bf16x3 = UnsafePointer(split.p)
                                g.bias = useBias ? bb.baseAddress : nil
                                (g.c, g.rs_c, g.cs_c, g.workspace) = (cb.baseAddress, ldc, 1, w.baseAddress)
                                return sam3neck_sgemm_run(&g)
                            }
                        }
                    }
                }
            }
            return (rc, c)
        }
        func packed() -> [Float] {
            var p = [Float](repeating: .nan, count: sam3neck_sgemm_packed_b_floats(k, n))
            sam3neck_sgemm_pack_b(k, n, b, max(n, 1), 0, &p)
            return p
        }
        /// Checks got (C(i, j) = got[i*ldc + j]) against the reference; returns the worst error / bound.
        /// `termError`, `roundings`: a kernel whose terms a·b carry a relative error of their own
        /// (bf16×3) and whose sums pass through more roundings (default: exact terms, k + 1).
        func check(
            _ got: (Int, Int) -> Float, bias useBias: Bool, gelu: Bool, _ what: String,
            termError: Double = 0, roundings: Int? = nil
        ) -> Double {
            var worst = 0.0
            var failures = 0
            for i in 0..<m {
                for j in 0..<n {
                    let (x, sa) = reference(i, j, bias: useBias)
                    let e = (Double(roundings ?? k + 1) * SgemmKernelTests.u + termError) * sa
                    var want = x, bound = e
                    if gelu {
                        let z = x / 2.0.squareRoot()
                        want = 0.5 * x * erfc(-z)
                        let zz = abs(z) + e
                        bound = 1.13 * e + (abs(want) + 1.13 * e) * (8 + 4 * zz * zz) * SgemmKernelTests.u
                    }
                    bound += 1e-37
                    let err = abs(Double(got(i, j)) - want)
                    worst = max(worst, err / bound)
                    if !(err <= bound) {  // NaN fails too
                        failures += 1
                        if failures <= 3 {
                            Issue.record(
                                "\(what) m=\(m) n=\(n) k=\(k) aTrans=\(aTrans): C(\(i), \(j)) = \(got(i, j)), want \(want), bound \(bound)"
                            )
                        }
                    }
                }
            }
            return worst
        }
    }

    static let sizes: [(Int, Int, Int)] = [
        (1, 1, 1), (1, 7, 13), (7, 13, 65), (13, 7, 257), (65, 257, 13), (257, 65, 7), (1, 257, 65),
        (257, 1, 13), (65, 65, 1), (13, 65, 257),
        (5, 9, 0),  // k = 0: C = epilogue(bias)
        (130, 70, 600),  // k > the kernels' kc (accumulation over k blocks), m > mc (several row blocks)
    ]

    @Test(arguments: kernels)
    func productMatchesDoubleLoop(kernel: Int32) throws {
        if sam3neck_sgemm_kernel_supported(kernel) == 0 { return }  // this CPU lacks it (the generic one is always run)
        for (index, (m, n, k)) in Self.sizes.enumerated() {
            for aTrans in [false, true] {
                let p = Problem(m: m, n: n, k: k, aTrans: aTrans, seed: UInt64(index * 10 + (aTrans ? 1 : 0)))
                for epilogue in 0..<3 {  // none, bias, bias + GELU
                    let ldc = n + 5
                    let (rc, c) = p.run(kernel: kernel, bias: epilogue > 0, gelu: epilogue == 2, ldc: ldc)
                    #expect(rc == 0)
                    _ = p.check(
                        { c[$0 * ldc + $1] }, bias: epilogue > 0, gelu: epilogue == 2,
                        "kernel \(kernel) epilogue \(epilogue)")
                    // Padding columns of C (ldc > n) are not written.
                    for i in 0..<m { for j in n..<ldc { #expect(c[i * ldc + j].isNaN) } }
                }
            }
        }
    }

    /// The other stores: NCHW (rs_c = 1, cs_c = m), and the callback (each element exactly once),
    /// with a small blocking (several column, row and k blocks through the block accumulator) and
    /// the default one (one pass over k for the 16-row kernels; through the tile buffer).
    @Test(arguments: kernels)
    func stridedAndCallbackStores(kernel: Int32) throws {
        if sam3neck_sgemm_kernel_supported(kernel) == 0 { return }
        let p = Problem(m: 45, n: 83, k: 300, aTrans: true, seed: 99)
        let packed = p.packed()
        final class Collector {
            var c: [Float]
            var writes: [Int]
            let n: Int
            init(m: Int, n: Int) {
                c = [Float](repeating: .nan, count: m * n); writes = [Int](repeating: 0, count: m * n); self.n = n
            }
        }
        for (form, small) in [("nchw", true), ("callback", true), ("nchw", false), ("callback", false)] {
            var nchw = [Float](repeating: .nan, count: p.m * p.n)
            let col = Collector(m: p.m, n: p.n)
            var g = sam3neck_sgemm_args()
            g.kernel = kernel; g.m = p.m; g.n = p.n; g.k = p.k; g.lda = p.lda; g.a_trans = 1
            g.gelu = 1
            if small { g.nc = 32; g.mc = 20; g.kc = 128 }
            var ws = [Float](repeating: .nan, count: sam3neck_sgemm_workspace_floats(&g))
            let rc = p.a.withUnsafeBufferPointer { a in
                packed.withUnsafeBufferPointer { pb in
                    p.bias.withUnsafeBufferPointer { bias in
                        nchw.withUnsafeMutableBufferPointer { cb in
                            ws.withUnsafeMutableBufferPointer { w in
                                g.a = a.baseAddress; g.packed_b = pb.baseAddress; g.bias = bias.baseAddress
                                g.workspace = w.baseAddress
                                if form == "nchw" {
                                    g.c = cb.baseAddress; g.rs_c = 1; g.cs_c = p.m
                                } else {
                                    g.store = { ctx, row0, col0, rows, cols, tile, ldt in
                                        let col = Unmanaged<Collector>.fromOpaque(ctx!).takeUnretainedValue()
                                        for r in 0..<rows {
                                            for c in 0..<cols {
                                                let at = (row0 + r) * col.n + col0 + c
                                                col.c[at] = tile![r * ldt + c]
                                                col.writes[at] += 1
                                            }
                                        }
                                    }
                                    g.store_ctx = Unmanaged.passUnretained(col).toOpaque()
                                }
                                return sam3neck_sgemm_run(&g)
                            }
                        }
                    }
                }
            }
            #expect(rc == 0)
            if form == "nchw" {
                _ = p.check({ nchw[$1 * p.m + $0] }, bias: true, gelu: true, "kernel \(kernel) NCHW store")
            } else {
                #expect(col.writes.allSatisfy { $0 == 1 })
                _ = p.check({ col.c[$0 * p.n + $1] }, bias: true, gelu: true, "kernel \(kernel) callback store")
            }
        }
    }

    /// The phase scatter store: side 2, the transposed conv's output pixels, channels-last in a
    /// framed image, n = 24 channels per tap, so tiles of 16 and 32 columns straddle taps; side 1,
    /// a plain product's rows into the framed image's interior (levels 2 and 3), n = 40.
    @Test(arguments: kernels)
    func phaseScatterStore(kernel: Int32) throws {
        if sam3neck_sgemm_kernel_supported(kernel) == 0 { return }
        let h = 3, w = 5
        for (aTrans, side) in [(false, 2), (true, 2), (false, 1), (true, 1)] {
            let ch = side == 2 ? 24 : 40
            let p = Problem(m: h * w, n: side * side * ch, k: 70, aTrans: aTrans, seed: 7)
            let packed = p.packed()
            let pw = side * w + 2, ph = side * h + 2  // one pixel of frame on each side
            var image = [Float](repeating: .nan, count: ph * pw * ch)
            let rc = image.withUnsafeMutableBufferPointer { img in
                var scatter = sam3neck_phase_scatter(
                    out: img.baseAddress! + (pw + 1) * ch, width: w, channels: ch,
                    row_stride: pw * ch, pixel_stride: ch, side: side)
                var g = sam3neck_sgemm_args()
                g.kernel = kernel; g.m = p.m; g.n = p.n; g.k = p.k; g.lda = p.lda; g.a_trans = aTrans ? 1 : 0
                g.gelu = 1
                var ws = [Float](repeating: .nan, count: sam3neck_sgemm_workspace_floats(&g))
                return withUnsafeMutablePointer(to: &scatter) { sp in
                    p.a.withUnsafeBufferPointer { a in
                        packed.withUnsafeBufferPointer { pb in
                            p.bias.withUnsafeBufferPointer { bias in
                                ws.withUnsafeMutableBufferPointer { wsb in
                                    g.a = a.baseAddress; g.packed_b = pb.baseAddress; g.bias = bias.baseAddress
                                    g.workspace = wsb.baseAddress
                                    g.store = sam3neck_sgemm_store_phase_scatter
                                    g.store_ctx = UnsafeMutableRawPointer(sp)
                                    return sam3neck_sgemm_run(&g)
                                }
                            }
                        }
                    }
                }
            }
            #expect(rc == 0)
            // C(p, (side·a + b)·ch + o) sits at framed pixel (side·i + a + 1, side·j + b + 1), channel o.
            _ = p.check(
                { row, col in
                    let i = row / w, j = row % w, tap = col / ch, o = col % ch
                    return image[((side * i + tap / side + 1) * pw + side * j + tap % side + 1) * ch + o]
                }, bias: true, gelu: true, "kernel \(kernel) phase scatter, side \(side)")
            // The frame is untouched.
            for y in 0..<ph {
                for x in 0..<pw where y == 0 || y == ph - 1 || x == 0 || x == pw - 1 {
                    #expect((0..<ch).allSatisfy { image[(y * pw + x) * ch + $0].isNaN })
                }
            }
        }
    }

    /// No shared state: workers running at once on their own row blocks, sharing one packed B,
    /// give bit for bit what one call gives for the whole (the rows of a tile do not interact).
    @Test func concurrentWorkersShareThePackedB() {
        let kernel = sam3neck_sgemm_auto_kernel()
        let m = 4 * 36, n = 96, k = 200, workers = 4
        let p = Problem(m: m, n: n, k: k, aTrans: true, seed: 5)
        let packed = p.packed()
        var whole = [Float](repeating: .nan, count: m * n)
        var g = sam3neck_sgemm_args()
        g.kernel = kernel; g.m = m / workers; g.n = n; g.k = k
        let wsFloats = sam3neck_sgemm_workspace_floats(&g) + 64
        var ws = [Float](repeating: 0, count: workers * wsFloats)
        #expect(sam3neck_sgemm(kernel, m, n, k, p.a, p.lda, 1, packed, p.bias, 1, &whole, n, &ws) == 0)
        var parts = [Float](repeating: .nan, count: m * n)
        let failures = p.a.withUnsafeBufferPointer { a in
            packed.withUnsafeBufferPointer { pb in
                p.bias.withUnsafeBufferPointer { bias in
                    parts.withUnsafeMutableBufferPointer { c in
                        ws.withUnsafeMutableBufferPointer { w in
                            nonisolated(unsafe) let a = a.baseAddress!, pb = pb.baseAddress!, bias = bias.baseAddress!
                            nonisolated(unsafe) let c = c.baseAddress!, w = w.baseAddress!
                            let rows = m / workers, lda = p.lda
                            let bad = Mutex(0)
                            DispatchQueue.concurrentPerform(iterations: workers) { i in
                                // A^T: worker i's rows are columns i*rows ..< (i+1)*rows of the k x lda array.
                                let rc = sam3neck_sgemm(
                                    kernel, rows, n, k, a + i * rows, lda, 1, pb, bias, 1,
                                    c + i * rows * n, n, w + i * wsFloats)
                                if rc != 0 { bad.withLock { $0 += 1 } }
                            }
                            return bad.withLock { $0 }
                        }
                    }
                }
            }
        }
        #expect(failures == 0)
        #expect(parts == whole)
    }

    /// The packed layout the header documents, both source layouts of B.
    @Test func packedLayout() {
        for (k, n) in [(1, 1), (5, 17), (3, 64), (4, 65), (2, 130)] {
            let b = Self.values(k * n, seed: UInt64(k * 1000 + n))
            let count = sam3neck_sgemm_packed_b_floats(k, n)
            #expect(count == (n + 63) / 64 * 64 * k)
            var p = [Float](repeating: .nan, count: count)
            sam3neck_sgemm_pack_b(k, n, b, n, 0, &p)
            // B^T (n x k, leading dimension k + 2) packs to the same.
            var bt = [Float](repeating: .nan, count: n * (k + 2))
            for kk in 0..<k { for j in 0..<n { bt[j * (k + 2) + kk] = b[kk * n + j] } }
            var pt = [Float](repeating: .nan, count: count)
            sam3neck_sgemm_pack_b(k, n, bt, k + 2, 1, &pt)
            for panel in 0..<(count / (16 * k)) {
                for kk in 0..<k {
                    for j in 0..<16 {
                        let col = panel * 16 + j
                        let want: Float = col < n ? b[kk * n + col] : 0
                        #expect(p[panel * 16 * k + kk * 16 + j] == want)
                        #expect(pt[panel * 16 * k + kk * 16 + j] == want)
                    }
                }
            }
        }
    }

    // ---- bf16×3 on AMX (sgemm_amx.c) -------------------------------------------------------

    static let amx = sam3neck_sgemm_kernel_supported(Int32(SAM3NECK_SGEMM_AMX_BF16X3)) != 0
    /// The bf16×3 codes: the native one where the CPU has AMX, and its build on the emulation of
    /// the AMX instructions everywhere (the same driver, splits with the same bits).
    static let amxKernels = [Int32(SAM3NECK_SGEMM_AMX_BF16X3), Int32(SAM3NECK_SGEMM_AMX_BF16X3_EMULATED)]
    static var amxKernelsHere: [Int32] { amxKernels.filter { sam3neck_sgemm_kernel_supported($0) != 0 } }
    /// The float32 kernel a bf16×3 call falls back to: AVX-512 natively, the best one here emulated.
    static func fallbackKernel(_ amx: Int32) -> Int32 {
        amx == Int32(SAM3NECK_SGEMM_AMX_BF16X3) ? Int32(SAM3NECK_SGEMM_AVX512) : sam3neck_sgemm_pick_kernel(nil)
    }

    final class AlignedBuffer {
        let p: UnsafeMutablePointer<Float>
        init(_ count: Int) {
            p = UnsafeMutableRawPointer.allocate(byteCount: max(64, count * 4), alignment: 64).bindMemory(
                to: Float.self, capacity: max(16, count))
        }
        deinit { p.deallocate() }
    }

    /// The bound of the header: each term a·b is off by at most 2⁻¹⁷ (a's split) + 2⁻¹⁷ (b's)
    /// + 2⁻¹⁸ (the dropped a_lo·b_lo) relative, < 3·2⁻¹⁷ with the second-order terms, and the
    /// float32 sums of three tile products per k pass through at most 3k + 1 roundings. A wrong
    /// tile, pair order or row gives errors of the order of Σ|a·b|, ~10⁴× the bound.
    @Test(arguments: amxKernelsHere)
    func amxBf16x3MatchesDoubleLoop(kernel: Int32) throws {
        // m > 256 (several blocks of A), k not a multiple of 32, n not of 32, tiny shapes; smaller
        // for the emulation (each tile product is 8192 scalar steps there).
        let emulated = kernel != Int32(SAM3NECK_SGEMM_AMX_BF16X3)
        let sizes =
            emulated
            ? [(1, 1, 1), (7, 13, 65), (17, 33, 31), (300, 40, 70), (33, 64, 130), (40, 64, 33)]
            : [(1, 1, 1), (7, 13, 65), (17, 33, 31), (300, 70, 600), (33, 96, 1024), (513, 64, 33)]
        for (index, (m, n, k)) in sizes.enumerated() {
            for aTrans in [false, true] {
                let p = Problem(m: m, n: n, k: k, aTrans: aTrans, seed: UInt64(500 + index * 10 + (aTrans ? 1 : 0)))
                // Epilogues: none (whole tiles stored straight from the tile registers, into C of
                // leading dimension n, then n + 7), bias, bias + GELU (through the tile buffer).
                for (epilogue, ldc) in [(0, n), (0, n + 7), (1, n), (2, n)] {
                    let (rc, c) = p.run(kernel: kernel, bias: epilogue > 0, gelu: epilogue == 2, ldc: ldc)
                    #expect(rc == 0)
                    _ = p.check(
                        { c[$0 * ldc + $1] }, bias: epilogue > 0, gelu: epilogue == 2,
                        "amx epilogue \(epilogue) ldc \(ldc)",
                        termError: 3 * 0x1p-17, roundings: 3 * k + 1)
                    if ldc > n {  // the padding columns untouched (NaN before)
                        #expect((0..<m).allSatisfy { i in (n..<ldc).allSatisfy { c[i * ldc + $0].isNaN } })
                    }
                }
            }
        }
    }

    /// Values that do not split: ±Inf; NaNs, the quiet one and those whose payload would carry
    /// through the rounding bias into the sign or wrap to zero (0x7FFFFFFF, 0xFFFFFFFF: once
    /// split to ±0, which made B holding them pass as finite) or round to Inf (0x7F800001);
    /// magnitudes whose bfloat16 rounding overflows (0x7F7F8000 the smallest).
    static let unsplittable: [Float] = [
        .infinity, -.infinity, .nan, Float(bitPattern: 0x7FFF_FFFF), Float(bitPattern: 0xFFFF_FFFF),
        Float(bitPattern: 0x7F80_0001), 3.4e38, Float(bitPattern: 0x7F7F_8000),
    ]

    /// With the split B alone (packed_b NULL, as the Winograd convs keep their blocks), a row of
    /// A holding a value that does not split gives NaN in every output of the row, so the
    /// Winograd conv sees a non-finite tile and recomputes it directly; the other rows are the
    /// bytes the same call gives on the original A (rows are independent).
    @Test(arguments: amxKernelsHere)
    func amxWithoutFloatBGivesNaNRows(kernel: Int32) throws {
        for aTrans in [false, true] {
            let clean = Problem(m: 70, n: 70, k: 90, aTrans: aTrans, seed: 78)
            let (rc0, c0) = clean.run(kernel: kernel, bias: true, gelu: true, floatB: false)
            #expect(rc0 == 0)
            for bad in Self.unsplittable {
                var a = clean.a
                a[aTrans ? 5 * clean.lda + 33 : 33 * clean.lda + 5] = bad  // A(33, 5): in a pair of tile rows
                let p = Problem(clean, a: a)
                let (rc, c) = p.run(kernel: kernel, bias: true, gelu: true, floatB: false)
                #expect(rc == 0)
                #expect(
                    (0..<p.n).allSatisfy { c[33 * p.n + $0].isNaN },
                    "A(33, 5) = \(bad), aTrans \(aTrans): a finite output in its row")
                let others = (0..<p.m).filter { $0 != 33 }.allSatisfy { i in
                    (0..<p.n).allSatisfy { c[i * p.n + $0].bitPattern == c0[i * p.n + $0].bitPattern }
                }
                #expect(others, "A(33, 5) = \(bad), aTrans \(aTrans): another row changed")
            }
        }
    }

    /// Inf, NaN, or a value past bfloat16's range in A: the call runs the AVX-512 kernel instead
    /// (the best float32 kernel here, emulated; bit for bit its result, so Inf and NaN reach the
    /// outputs float32 gives); in B: the split is refused.
    @Test(arguments: amxKernelsHere)
    func amxNonFiniteGoesToFloat32(kernel: Int32) throws {
        for aTrans in [false, true] {
            // Float(bitPattern: 0x7F7F8000): the smallest magnitude whose bfloat16 rounding overflows.
            for bad in Self.unsplittable {
                var p = Problem(m: 40, n: 70, k: 90, aTrans: aTrans, seed: 77)
                var a = p.a
                a[aTrans ? 5 * p.lda + 33 : 33 * p.lda + 5] = bad  // A(33, 5), in the second tile row
                p = Problem(p, a: a)
                let (rc, c) = p.run(kernel: kernel, bias: true, gelu: true)
                let (rc32, c32) = p.run(kernel: Self.fallbackKernel(kernel), bias: true, gelu: true)
                #expect(rc == 0 && rc32 == 0)
                // bit for bit, NaN included
                let same = c.withUnsafeBytes { Array($0) } == c32.withUnsafeBytes { Array($0) }
                #expect(same, "A holding \(bad), aTrans \(aTrans): not the float32 kernel's bytes")
                #expect(c32[33 * p.n].isNaN || c32[33 * p.n].isInfinite || bad.isFinite)
            }
        }
        for bad in Self.unsplittable + [-3.4e38] {
            var b = Self.values(64 * 48, seed: 3)
            b[700] = bad
            var packed = [Float](repeating: 0, count: sam3neck_sgemm_packed_b_floats(64, 48))
            sam3neck_sgemm_pack_b(64, 48, b, 48, 0, &packed)
            let split = AlignedBuffer(sam3neck_sgemm_bf16x3_b_floats(64, 48))
            #expect(sam3neck_sgemm_pack_b_bf16x3(64, 48, packed, split.p) == 1, "B holding \(bad)")
        }
    }

    /// A B split a band of rows at a time (each band packed on its own, as the Winograd weight
    /// transform makes them) is the whole B's split, byte for byte; bands that break the rules
    /// are refused before anything is written, and a band with a value that does not split says so.
    @Test func bf16x3SplitOfBands() throws {
        for (k, n, band) in [(70, 130, 32), (64, 48, 64), (96, 17, 32), (20, 5, 32), (200, 64, 64)] {
            let b = Self.values(k * n, seed: UInt64(k + n))
            var packed = [Float](repeating: 0, count: sam3neck_sgemm_packed_b_floats(k, n))
            sam3neck_sgemm_pack_b(k, n, b, n, 0, &packed)
            let floats = sam3neck_sgemm_bf16x3_b_floats(k, n)
            let whole = AlignedBuffer(floats), banded = AlignedBuffer(floats)
            banded.p.initialize(repeating: .nan, count: floats)
            #expect(sam3neck_sgemm_pack_b_bf16x3(k, n, packed, whole.p) == 0)
            for k0 in stride(from: 0, to: k, by: band) {
                let rows = min(band, k - k0)
                var part = [Float](repeating: 0, count: sam3neck_sgemm_packed_b_floats(rows, n))
                b.withUnsafeBufferPointer { sam3neck_sgemm_pack_b(rows, n, $0.baseAddress! + k0 * n, n, 0, &part) }
                #expect(sam3neck_sgemm_pack_b_bf16x3_rows(k, n, k0, rows, part, banded.p) == 0)
            }
            let same = memcmp(whole.p, banded.p, floats * 4) == 0
            #expect(same, "k \(k) n \(n) in bands of \(band): not the whole split")
        }
        // Refused, nothing written: a start off the tiles' rows, a short band that does not end B,
        // a band past B's end.
        let part = [Float](repeating: 1, count: sam3neck_sgemm_packed_b_floats(64, 64))
        let out = AlignedBuffer(sam3neck_sgemm_bf16x3_b_floats(100, 64))
        out.p.initialize(repeating: 7, count: sam3neck_sgemm_bf16x3_b_floats(100, 64))
        for (k0, rows) in [(16, 32), (0, 40), (64, 40), (96, 8)] {
            #expect(
                sam3neck_sgemm_pack_b_bf16x3_rows(100, 64, k0, rows, part, out.p) == -1, "rows \(k0) + \(rows) of 100")
        }
        #expect((0..<sam3neck_sgemm_bf16x3_b_floats(100, 64)).allSatisfy { out.p[$0] == 7 })
        #expect(sam3neck_sgemm_pack_b_bf16x3_rows(100, 64, 96, 4, part, out.p) == 0)  // the last, short band
        for bad in Self.unsplittable {
            var b = part
            b[100] = bad
            #expect(sam3neck_sgemm_pack_b_bf16x3_rows(100, 64, 32, 64, b, out.p) == 1, "band holding \(bad)")
        }
    }

    /// The split layout the header documents: per 32 columns and 32 k-rows, tiles hi(0-15),
    /// lo(0-15), hi(16-31), lo(16-31), pairs of k interleaved; hi = bf16(x) and lo = bf16(x − hi),
    /// both rounded to nearest even (checked against a scalar rounding here), zero padding.
    @Test func bf16x3SplitLayout() throws {
        func bf16(_ x: Float) -> UInt16 {  // round to nearest even, finite x
            let u = x.bitPattern
            return UInt16((u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
        }
        func widen(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }
        for (k, n) in [(1, 1), (33, 17), (64, 65), (70, 130)] {
            var b = Self.values(k * n, seed: UInt64(k * 100 + n))
            b[0] = 1 + 0x1p-8  // a tie of the hi rounding (to even: 1)
            var packed = [Float](repeating: 0, count: sam3neck_sgemm_packed_b_floats(k, n))
            sam3neck_sgemm_pack_b(k, n, b, n, 0, &packed)
            let floats = sam3neck_sgemm_bf16x3_b_floats(k, n)
            let kb = (k + 31) / 32, jbs = (n + 63) / 64 * 2
            #expect(floats == jbs * kb * 1024)
            let split = AlignedBuffer(floats)
            #expect(sam3neck_sgemm_pack_b_bf16x3(k, n, packed, split.p) == 0)
            let h16 = UnsafeRawPointer(split.p).bindMemory(to: UInt16.self, capacity: 2 * floats)
            for jb in 0..<jbs {
                for kbi in 0..<kb {
                    for q in 0..<4 {
                        for pr in 0..<16 {
                            for j in 0..<16 {
                                for e in 0..<2 {
                                    let kk = 32 * kbi + 2 * pr + e, col = 32 * jb + 16 * (q / 2) + j
                                    let x: Float = kk < k && col < n ? b[kk * n + col] : 0
                                    let hi = bf16(x), lo = bf16(x - widen(hi))
                                    let got = h16[((jb * kb + kbi) * 4 + q) * 512 + pr * 32 + j * 2 + e]
                                    #expect(got == (q % 2 == 0 ? hi : lo), "k \(k) n \(n): B(\(kk), \(col)) part \(q)")
                                    if q % 2 == 1 {
                                        #expect(
                                            abs(Double(x) - Double(widen(hi)) - Double(widen(lo))) <= 0x1p-17
                                                * Double(abs(x)))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            #expect(h16[0] == 0x3F80)  // 1 + 2⁻⁸ rounds to 1
        }
    }

    /// Dispatch: the environment override, unknown names, unsupported and invalid kernels.
    @Test func dispatchAndOverride() {
        #expect(sam3neck_sgemm_kernel_supported(Int32(SAM3NECK_SGEMM_GENERIC)) == 1)
        #expect(sam3neck_sgemm_kernel_named("avx512") == Int32(SAM3NECK_SGEMM_AVX512))
        #expect(sam3neck_sgemm_kernel_named("AVX2") == -1)
        #expect(sam3neck_sgemm_kernel_named(nil) == -1)
        let best: Int32 =
            sam3neck_cpu_has_avx512f() != 0 && sam3neck_cpu_has_avx2_fma() != 0
            ? Int32(SAM3NECK_SGEMM_AVX512)
            : sam3neck_cpu_has_avx2_fma() != 0 ? Int32(SAM3NECK_SGEMM_AVX2) : Int32(SAM3NECK_SGEMM_GENERIC)
        // The override, through the pure function sam3neck_sgemm_auto_kernel applies to
        // $SAM3NECK_SGEMM_KERNEL (a test must not setenv while other suites may read the environment).
        #expect(sam3neck_sgemm_pick_kernel(nil) == best)
        #expect(sam3neck_sgemm_pick_kernel("generic") == Int32(SAM3NECK_SGEMM_GENERIC))
        #expect(
            sam3neck_sgemm_pick_kernel("avx2") == (sam3neck_cpu_has_avx2_fma() != 0 ? Int32(SAM3NECK_SGEMM_AVX2) : best)
        )
        #expect(sam3neck_sgemm_pick_kernel("avx512") == best)  // the best when supported, else the fallback
        #expect(sam3neck_sgemm_pick_kernel("no-such-kernel") == best)
        let env = getenv("SAM3NECK_SGEMM_KERNEL").map { String(cString: $0) }
        #expect(sam3neck_sgemm_auto_kernel() == sam3neck_sgemm_pick_kernel(env))

        var a: Float = 1, c: Float = 0
        var packed = [Float](repeating: 0, count: sam3neck_sgemm_packed_b_floats(1, 1))
        sam3neck_sgemm_pack_b(1, 1, [Float(2)], 1, 0, &packed)
        var ws = [Float](repeating: 0, count: 1 << 16)
        #expect(sam3neck_sgemm(99, 1, 1, 1, &a, 1, 0, packed, nil, 0, &c, 1, &ws) == -1)
        // lda below the row: refused, C untouched.
        var c2: [Float] = [7, 7]
        var a2: [Float] = [1, 1]
        #expect(sam3neck_sgemm(Int32(SAM3NECK_SGEMM_GENERIC), 1, 1, 2, &a2, 1, 0, packed, nil, 0, &c2, 1, &ws) == -4)
        #expect(sam3neck_sgemm(Int32(SAM3NECK_SGEMM_GENERIC), 2, 1, 1, &a2, 1, 1, packed, nil, 0, &c2, 1, &ws) == -4)
        #expect(c2 == [7, 7])
        // One row with ldc = 1 < n: a valid layout (row stride unused), stored through the strided path.
        #expect(sam3neck_sgemm(Int32(SAM3NECK_SGEMM_GENERIC), 1, 2, 1, &a2, 1, 0, packed, nil, 0, &c2, 1, &ws) == 0)
        #expect(c2 == [2, 0])  // B's second column is the packing's zero padding
        #expect(sam3neck_sgemm(Int32(SAM3NECK_SGEMM_GENERIC), 1, 1, 1, &a, 1, 0, packed, nil, 0, &c, 1, nil) == -3)
        for kernel in Self.kernels where sam3neck_sgemm_kernel_supported(kernel) == 0 {
            #expect(sam3neck_sgemm(kernel, 1, 1, 1, &a, 1, 0, packed, nil, 0, &c, 1, &ws) == -1)
        }
        #expect(sam3neck_sgemm(Int32(SAM3NECK_SGEMM_AUTO), 1, 1, 1, &a, 1, 0, packed, nil, 0, &c, 1, &ws) == 0)
        #expect(c == 2)
    }

    /// A handed over already packed (`a_packed`, the layout the Winograd input transform writes)
    /// gives C bit for bit as the same A packed by the driver: the kernels' chunked form does the
    /// same arithmetic in the same order. Partial micro-panels (m not a multiple of mr, rows past
    /// m zero), k not a multiple of 16, several k blocks (kc 32), C in place and transposed
    /// (through the strided store); kernels without the form refuse it (-5).
    @Test(arguments: [(29, 40, 37), (12, 64, 512), (7, 33, 70), (25, 96, 16)])
    func prepackedAMatchesPackingBitForBit(m: Int, n: Int, k: Int) {
        let p = Problem(m: m, n: n, k: k, aTrans: false, seed: UInt64(m * 1000 + k))
        let packed = p.packed()
        for kernel in Self.kernels where sam3neck_sgemm_kernel_supported(kernel) != 0 {
            let mr = sam3neck_sgemm_a_panel_rows(kernel, 0)
            #expect(mr > 0)
            let panels = (m + mr - 1) / mr
            var ap = [Float](repeating: 0, count: panels * mr * ((k + 15) / 16 * 16))
            for i in 0..<m { for kk in 0..<k { ap[sam3neck_sgemm_a_packed_index(mr, k, i, kk)] = p.aAt(i, kk) } }
            for kc in [0, 32] {
                for transposed in [false, true] {
                    let (rs, cs) = transposed ? (1, m) : (n + 5, 1)
                    var outs = [[Float]]()
                    for prepacked in [false, true] {
                        var g = sam3neck_sgemm_args()
                        (g.kernel, g.m, g.n, g.k, g.lda, g.kc) = (kernel, m, n, k, p.lda, kc)
                        var ws = [Float](repeating: .nan, count: sam3neck_sgemm_workspace_floats(&g))
                        var c = [Float](repeating: .nan, count: m * (n + 5))
                        let rc = p.a.withUnsafeBufferPointer { a in
                            ap.withUnsafeBufferPointer { apb in
                                packed.withUnsafeBufferPointer { pb in
                                    c.withUnsafeMutableBufferPointer { cb in
                                        ws.withUnsafeMutableBufferPointer { w in
                                            if prepacked { g.a_packed = apb.baseAddress } else { g.a = a.baseAddress }
                                            g.packed_b = pb.baseAddress
                                            (g.c, g.rs_c, g.cs_c, g.workspace) = (cb.baseAddress, rs, cs, w.baseAddress)
                                            return sam3neck_sgemm_run(&g)
                                        }
                                    }
                                }
                            }
                        }
                        #expect(rc == 0)
                        outs.append(c)
                    }
                    let differ = zip(outs[0], outs[1]).filter { $0.bitPattern != $1.bitPattern }.count
                    #expect(differ == 0, "kernel \(kernel) m \(m) n \(n) k \(k) kc \(kc) transposed C \(transposed)")
                    let worst = p.check({ outs[1][$0 * rs + $1 * cs] }, bias: false, gelu: false, "prepacked \(kernel)")
                    #expect(worst <= 1)
                }
            }
        }
        // The bfloat16 and AMX kernels, and alternative tiles, do not read it.
        for kernel in [SAM3NECK_SGEMM_AVX512_BF16_EMULATED, SAM3NECK_SGEMM_AMX_BF16X3_EMULATED].map(Int32.init) {
            #expect(sam3neck_sgemm_a_panel_rows(kernel, 0) == 0)
            var g = sam3neck_sgemm_args()
            var one: Float = 1, c: Float = 0
            var ws = [Float](repeating: 0, count: 1 << 16)
            (g.kernel, g.m, g.n, g.k) = (kernel, 1, 1, 1)
            let rc = withUnsafePointer(to: &one) { a in
                g.a_packed = a; g.a = a; g.packed_b = a; g.packed_b_bf16x3 = a;
                g.c = withUnsafeMutablePointer(to: &c) { $0 }
                return ws.withUnsafeMutableBufferPointer { w in
                    g.workspace = w.baseAddress
                    return sam3neck_sgemm_run(&g)
                }
            }
            #expect(rc == -5)
        }
        #expect(sam3neck_sgemm_a_panel_rows(Int32(SAM3NECK_SGEMM_AVX512), 1) == 0)
    }
}
