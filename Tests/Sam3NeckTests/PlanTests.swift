import CKernels
import Sam3NeckABI
import Foundation
import Testing
@testable import Sam3Neck

/// The whole compiled plan against the naive neck: every level, both layouts, odd grids, batches.
@Suite struct PlanTests {
    /// Normalised max error bound: the strict mode's documented bound (include/sam3_neck.h). f32 sums over at most
    /// 9·d or C terms give ~1e-7–1e-6 here; 1e-5 leaves room without hiding a wrong index.
    static let tolerance = 1e-5
    /// For plans that take the default mode's bf16×3 AMX products (terms within 3·2⁻¹⁷ ≈ 2.3e-5
    /// relative; measured ≤ 2.1e-5 on these necks): 5e-5, half the default mode's bound.
    static let amxTolerance = 5e-5

    /// The fast mode's bound (`SAM3_NECK_BOUND_FAST`), against which its plans are held; and the
    /// least error they must show, so that a plan that silently fell back to float32 products
    /// fails: bfloat16 operands (8 significant bits) give ~1e-3 here, float32 ones < 1e-5.
    static let fastTolerance = SAM3_NECK_BOUND_FAST, fastLeast = 1e-4

    /// `amx`: let the default mode take the AMX products (where the CPU has them). `fast`: a fast
    /// plan on that bfloat16 product code instead.
    func check(
        c: Int, d: Int, batch: Int, h: Int, w: Int, layout: CompileOptions.Layout, mask: UInt32, threads: Int = 2,
        gemm: GemmBackend = .preferred, bandTileRows: Int = 12, amx: Bool = GemmBackend.bf16x3Preferred,
        fast: Int32? = nil
    ) throws {
        let weights = Naive.weights(c: c, d: d, seed: UInt64(c * 31 + h * 7 + w))
        let neck = Neck(weights: weights)
        var options = CompileOptions(
            batch: batch, height: h, width: w, layout: layout, levelsMask: mask, threads: threads)
        options.gemm = gemm
        options.level0BandTileRows = bandTileRows
        options.bf16x3Products = amx
        if let fast { (options.precision, options.bf16Kernel) = (.fast, fast) }
        let plan = try neck.compile(options)
        #expect(plan.options.fastKernel == fast)
        let onAMX = !plan.bf16x3Levels.isEmpty || plan.level0ComposedBF16x3 || !plan.convBF16x3Levels.isEmpty
        var rng = Naive.RNG(state: 99)
        let images: [Naive.Image] = (0..<batch).map { _ in
            var x = Naive.Image(c: c, h: h, w: w)
            x.v = rng.floats(c * h * w, scale: 2).map(Double.init)
            return x
        }
        var input = [Float]()
        for x in images {
            if layout == .nchw {
                input += x.v.map(Float.init)
            } else {
                for y in 0..<h { for xx in 0..<w { for ch in 0..<c { input.append(Float(x[ch, y, xx])) } } }
            }
        }
        #expect(input.count == plan.inputCount)
        var outputs: [[Float]] = (0..<4).map {
            plan.outputCount(level: $0).map { [Float](repeating: .nan, count: $0) } ?? []
        }
        // Run twice: the second run must not depend on what the first left in the workspace.
        for _ in 0..<2 {
            let pointers = (0..<4).map {
                outputs[$0].isEmpty ? nil : UnsafeMutablePointer<Float>.allocate(capacity: outputs[$0].count)
            }
            input.withUnsafeBufferPointer { plan.run(input: $0.baseAddress!, outputs: pointers) }
            for l in 0..<4 {
                if let p = pointers[l] {
                    outputs[l] = Array(UnsafeBufferPointer(start: p, count: outputs[l].count))
                    p.deallocate()
                }
            }
        }
        for level in 0..<4 where mask & (1 << UInt32(level)) != 0 {
            let want = images.flatMap { Naive.neck(weights, $0, level: level).v }
            let err = Naive.normalisedError(outputs[level], want)
            let bound = fast != nil ? Self.fastTolerance : onAMX ? Self.amxTolerance : Self.tolerance
            #expect(
                err <= bound,
                "level \(level) c=\(c) d=\(d) \(h)×\(w) \(layout) batch \(batch) \(gemm) AMX \(onAMX) fast \(String(describing: fast)): error \(err)"
            )
            if fast != nil {
                #expect(err >= Self.fastLeast, "level \(level): error \(err), as if float32 products ran")
            }
            let g = CompileOptions.levelGrid(level, height: h, width: w)
            #expect(plan.levelShapes[level]! == [batch, d, g.h, g.w])
        }
    }

    /// The default mode's bf16×3 AMX products, on a neck wide enough for them (c = 512: level 0's
    /// first product has n = 1024; the other phase-1 products stay float32; every Winograd conv
    /// takes them at any width): every level within the default mode's bound (1e-4) of the naive
    /// neck, and really taken — each differs from the same plan without them; strict plans
    /// never take them.
    @Test(
        .enabled(if: GemmBackend.bf16x3Preferred, "no AMX-BF16 here (or SAM3NECK_SGEMM_KERNEL is set)"),
        arguments: [CompileOptions.Layout.nchw, .nhwc])
    func amxProductsOnlyInTheDefaultMode(layout: CompileOptions.Layout) throws {
        let c = 512, d = 16, h = 5, w = 6
        let weights = Naive.weights(c: c, d: d, seed: 4)
        let neck = Neck(weights: weights)
        var rng = Naive.RNG(state: 7)
        var x = Naive.Image(c: c, h: h, w: w)
        x.v = rng.floats(c * h * w, scale: 2).map(Double.init)
        var input = [Float]()
        if layout == .nchw {
            input = x.v.map(Float.init)
        } else {
            for y in 0..<h { for xx in 0..<w { for ch in 0..<c { input.append(Float(x[ch, y, xx])) } } }
        }
        func outputs(amx: Bool, precision: CompileOptions.Precision = .default) throws -> (
            Set<Int>, Bool, Set<Int>, [[Float]]
        ) {
            var options = CompileOptions(
                batch: 1, height: h, width: w, layout: layout, levelsMask: 0xF, threads: 2, precision: precision)
            options.bf16x3Products = amx
            let plan = try neck.compile(options)
            var out: [[Float]] = (0..<4).map { [Float](repeating: .nan, count: plan.outputCount(level: $0)!) }
            let pointers: [UnsafeMutablePointer<Float>?] = (0..<4).map {
                UnsafeMutablePointer<Float>.allocate(capacity: out[$0].count)
            }
            input.withUnsafeBufferPointer { plan.run(input: $0.baseAddress!, outputs: pointers) }
            for l in 0..<4 {
                out[l] = Array(UnsafeBufferPointer(start: pointers[l], count: out[l].count))
                pointers[l]!.deallocate()
            }
            return (plan.bf16x3Levels, plan.level0ComposedBF16x3, plan.convBF16x3Levels, out)
        }
        let (levels, composed, convs, withAMX) = try outputs(amx: true)
        let (none, composedWithout, convsWithout, without) = try outputs(amx: false)
        #expect(levels == [0] && none.isEmpty)
        #expect(composed && !composedWithout)
        #expect(convs == [1, 2, 3] && convsWithout.isEmpty)
        let strict = try outputs(amx: true, precision: .strict)
        #expect(strict.0.isEmpty && !strict.1 && strict.2.isEmpty)
        for l in 0..<4 {
            #expect(withAMX[l] != without[l], "level \(l)")
            let err = Naive.normalisedError(withAMX[l], Naive.neck(weights, x, level: l).v)
            #expect(err <= SAM3_NECK_BOUND_DEFAULT, "level \(l) with AMX: error \(err)")
        }
    }

    @Test(arguments: [CompileOptions.Layout.nchw, .nhwc])
    func allLevelsOddGrid(layout: CompileOptions.Layout) throws {
        try check(c: 16, d: 8, batch: 2, h: 5, w: 3, layout: layout, mask: 0xF)
    }

    /// Every product code the CPU runs, whichever the plan prefers here: OpenBLAS and each
    /// packed micro-kernel (the portable one always) in float32, and the AMX products where the
    /// CPU has them, with several row blocks per level.
    @Test(arguments: [CompileOptions.Layout.nchw, .nhwc])
    func everyProductCode(layout: CompileOptions.Layout) throws {
        var backends: [(GemmBackend, Bool)] = [(.openBLAS, false)]
        for k in [SAM3NECK_SGEMM_GENERIC, SAM3NECK_SGEMM_AVX2, SAM3NECK_SGEMM_AVX512]
        where sam3neck_sgemm_kernel_supported(Int32(k)) != 0 {
            backends.append((.packed(kernel: Int32(k)), false))
        }
        if GemmBackend.amxAvailable { backends.append((.packed(kernel: Int32(SAM3NECK_SGEMM_AVX512)), true)) }
        for (gemm, amx) in backends {
            try check(c: 16, d: 8, batch: 2, h: 5, w: 3, layout: layout, mask: 0xF, gemm: gemm, amx: amx)
            try check(c: 8, d: 4, batch: 1, h: 30, w: 40, layout: layout, mask: 0xF, gemm: gemm, amx: amx)
        }
    }

    /// The fast mode on each bfloat16 product code, emulated on every CPU and native where the CPU
    /// has it (odd grids, both layouts, a batch, level 0 in bands; a grid wide enough for several
    /// row blocks of the AMX driver and the 12-row micro-panels): every level within its bound,
    /// and really in bfloat16.
    @Test(arguments: [
        Int32(SAM3NECK_SGEMM_AVX512_BF16_EMULATED), Int32(SAM3NECK_SGEMM_AMX_BF16_EMULATED),
        Int32(SAM3NECK_SGEMM_AVX512_BF16), Int32(SAM3NECK_SGEMM_AMX_BF16),
    ])
    func fastModeOnEachBF16Code(kernel: Int32) throws {
        if sam3neck_sgemm_kernel_supported(kernel) == 0 { return }
        for layout in [CompileOptions.Layout.nchw, .nhwc] {
            try check(c: 48, d: 16, batch: 2, h: 5, w: 3, layout: layout, mask: 0xF, bandTileRows: 2, fast: kernel)
        }
        try check(c: 40, d: 8, batch: 1, h: 12, w: 30, layout: .nchw, mask: 0xF, gemm: .openBLAS, fast: kernel)
    }

    /// A thread count past the online cores runs, and sizes its scratch, as the cores: 1024 on a
    /// 5×7 grid reserved 12 GB of workspace when scratch followed the count asked for.
    @Test func threadsPastTheCoresReserveNothingMore() throws {
        let neck = Neck(weights: Naive.weights(c: 64, d: 32, seed: 5))
        let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let all = try neck.compile(CompileOptions(height: 5, width: 7, threads: 0))
        let many = try neck.compile(CompileOptions(height: 5, width: 7, threads: 1024))
        #expect(all.threads == cores && many.threads == cores && many.options.threads == 1024)
        #expect(many.workspaceBytes == all.workspaceBytes, "\(many.workspaceBytes) against \(all.workspaceBytes) bytes")
        #expect(try neck.compile(CompileOptions(height: 5, width: 7, threads: 1)).threads == 1)
    }

    /// Where the CPU has no bfloat16 products, the fast mode is the default mode's arithmetic.
    @Test func fastWithoutBF16IsDefault() throws {
        var options = CompileOptions(precision: .fast)
        options.bf16Kernel = nil
        #expect(options.fastKernel == nil && options.arithmetic == .default)
        #expect(NeckPlan.winogradTile(options).tile == NeckPlan.winogradTile(CompileOptions(precision: .default)).tile)
        options.bf16Kernel = Int32(SAM3NECK_SGEMM_AVX512_BF16_EMULATED)
        #expect(
            options.arithmetic == .fast && NeckPlan.winogradTile(options) == (.f2, false)
                && NeckPlan.upsampleTile(options) == (.f3r2, false))
        #expect(CompileOptions(precision: .strict).fastKernel == nil)
    }

    /// Level 0 in bands of 1, 2 and 5 tile rows (G 22 × 18: 6 tile rows, so bands of every kind:
    /// first, inner, last, uneven), each recomputing the input rows it shares with its neighbours.
    @Test(arguments: [1, 2, 5])
    func levelZeroInBands(tileRows: Int) throws {
        try check(c: 16, d: 8, batch: 2, h: 11, w: 9, layout: .nchw, mask: 0x1, bandTileRows: tileRows)
    }

    /// The bands cover every tile row once, and each computes every G row its tiles read.
    @Test func bandsCoverWhatTheirTilesRead() {
        let weights = Naive.weights(c: 8, d: 4, seed: 3)
        let packed = PackedWeights(weights)
        for tile in [WinogradTile.f4r2, .f3r2] {
            let up = UpsampleConv3x3(up: packed.up4Second, conv: packed.conv3x3[0], tile: tile)
            for h in [1, 2, 3, 5, 8, 11, 36] {
                for perBand in [1, 2, 3, 12] {
                    let bands = up.bands(height: 2 * h, tileRowsPerBand: perBand)
                    let tilesY = (2 * h + tile.m - 1) / tile.m
                    #expect(bands.flatMap { Array($0.tiles) } == Array(0..<tilesY), "h \(h), \(perBand) per band")
                    for band in bands {
                        // Tile ty, row phase a reads stored rows m·ty + a ..< m·ty + a + α.
                        for ty in band.tiles {
                            for a in 0..<2 {
                                for stored in (tile.m * ty + a)..<(tile.m * ty + a + tile.alpha) {
                                    #expect(
                                        band.stored.contains(stored), "h \(h): stored row \(stored) of tile row \(ty)")
                                    let gRow = stored - 1  // zero frame outside 0 ..< 2h
                                    if gRow >= 0 && gRow < 2 * h {
                                        #expect(band.input.contains(gRow / 2), "h \(h): G row \(gRow) not computed")
                                    }
                                }
                            }
                        }
                        #expect(band.input.lowerBound >= 0 && band.input.upperBound <= h)
                        #expect(
                            band.stored.contains(2 * band.input.lowerBound + 1)
                                && band.stored.contains(2 * band.input.upperBound))
                    }
                }
            }
        }
    }

    /// The plan's choice of product code: the AVX-512 micro-kernels where the CPU has them; with
    /// AVX2 only, OpenBLAS when its kernels for the CPU are AVX2 ones and the AVX2 micro-kernels when
    /// OpenBLAS fell back to older ones; OpenBLAS without AVX2; an explicit choice always.
    /// `productKernel` (what sam3_neck_kernel_name reports) names the code each choice runs on:
    /// the float32 backends, the fast mode's bfloat16 code, and the default mode again where the
    /// fast mode has none; the names are distinct.
    @Test func productKernelNames() throws {
        let neck = Neck(weights: Naive.weights(c: 16, d: 8, seed: 3))
        var o = CompileOptions(batch: 1, height: 4, width: 4, precision: .strict)
        o.bf16x3Products = false
        o.gemm = .openBLAS
        #expect(try neck.compile(o).productKernel == "openblas")
        o.gemm = .packed(kernel: Int32(SAM3NECK_SGEMM_GENERIC))
        #expect(try neck.compile(o).productKernel == "generic")
        o.precision = .fast
        o.bf16Kernel = Int32(SAM3NECK_SGEMM_AVX512_BF16_EMULATED)
        #expect(try neck.compile(o).productKernel == "avx512_bf16_emulated")
        o.bf16Kernel = nil
        #expect(try neck.compile(o).productKernel == "generic")
        #expect(Set(GemmBackend.codeNames).count == GemmBackend.codeNames.count)
        #expect(GemmBackend.codeName(Int32(SAM3NECK_SGEMM_AMX_BF16X3)) == "amx_bf16x3")
    }

    @Test func productCodeChoice() {
        let avx512 = Int32(SAM3NECK_SGEMM_AVX512), avx2 = Int32(SAM3NECK_SGEMM_AVX2),
            generic = Int32(SAM3NECK_SGEMM_GENERIC)
        #expect(
            GemmBackend.choose(kernel: avx512, explicit: false, openBLASCore: "SkylakeX") == .packed(kernel: avx512))
        #expect(
            GemmBackend.choose(kernel: avx512, explicit: false, openBLASCore: "Prescott") == .packed(kernel: avx512))
        #expect(GemmBackend.choose(kernel: avx2, explicit: false, openBLASCore: "Haswell") == .openBLAS)
        #expect(GemmBackend.choose(kernel: avx2, explicit: false, openBLASCore: "Zen") == .openBLAS)
        #expect(GemmBackend.choose(kernel: avx2, explicit: false, openBLASCore: "Prescott") == .packed(kernel: avx2))
        #expect(GemmBackend.choose(kernel: avx2, explicit: false, openBLASCore: "Sandybridge") == .packed(kernel: avx2))
        #expect(GemmBackend.choose(kernel: avx2, explicit: true, openBLASCore: "Haswell") == .packed(kernel: avx2))
        #expect(GemmBackend.choose(kernel: generic, explicit: false, openBLASCore: "Prescott") == .openBLAS)
        #expect(
            GemmBackend.choose(kernel: generic, explicit: true, openBLASCore: "Haswell") == .packed(kernel: generic))
    }

    @Test func squareGridSingleThread() throws {
        try check(c: 8, d: 4, batch: 1, h: 4, w: 4, layout: .nchw, mask: 0xF, threads: 1)
    }

    @Test(arguments: [UInt32(0x1), 0x2, 0x4, 0x8, 0x5, 0xA])
    func levelSubsets(mask: UInt32) throws {
        try check(c: 12, d: 6, batch: 1, h: 3, w: 6, layout: .nhwc, mask: mask)
    }

    @Test func oneByOneGridWithoutLevelThree() throws {
        try check(c: 8, d: 4, batch: 1, h: 1, w: 1, layout: .nchw, mask: 0x7)
    }

    @Test func compileRejectsBadOptions() throws {
        let neck = Neck(weights: Naive.weights(c: 8, d: 4, seed: 1))
        let bad: [(CompileOptions, NeckError.Kind)] = [
            (CompileOptions(batch: 0), .invalidArgument),
            (CompileOptions(height: 0), .invalidArgument),
            (CompileOptions(width: -3), .invalidArgument),
            (CompileOptions(levelsMask: 0), .invalidArgument),
            (CompileOptions(levelsMask: 0x10), .invalidArgument),
            (CompileOptions(threads: -1), .invalidArgument),
            (CompileOptions(height: 1, width: 5, levelsMask: 0x8), .shape),
        ]
        for (options, kind) in bad {
            #expect { _ = try neck.compile(options) } throws: { ($0 as? NeckError)?.kind == kind }
        }
    }

    @Test func hugeGridIsRefusedBeforeAllocating() throws {
        let neck = Neck(weights: Naive.weights(c: 8, d: 4, seed: 1))
        #expect { _ = try neck.compile(CompileOptions(batch: 1, height: 30000, width: 30000)) } throws: { e in
            guard let e = e as? NeckError else { return false }
            return e.kind == .outOfMemory
        }
    }
}
