import CKernels
import Sam3NeckABI
import Foundation
import Testing
@testable import Sam3Neck

/// GELU of one value through the portable kernel (libm's erfcf).
func gelu(_ x: Float) -> Float {
    var y: Float = 0, zero: Float = 0, v = x
    sam3neck_bias_gelu_generic(&v, &zero, &y, 1)
    return y
}

/// Each fast kernel against a naive loop in double (see NaiveNeck.swift).
@Suite struct KernelTests {
    @Test func geluIsTheExactErfForm() {
        for step in -800...800 {
            let xf = Float(step) / 100, x = Double(xf)
            // 0.5·x·(1 + erf(x/√2)), written with erfc so double itself does not cancel for x ≪ 0.
            let want = 0.5 * x * erfc(-x / 2.0.squareRoot())
            let got = Double(gelu(xf))
            // z = x/√2 in float carries up to one ulp (rounded constant and product), which erfc's
            // condition number 2z² amplifies: bound = a few ulps + 2z²·2ulp. For x ≥ 0, a few ulps.
            let z = x / 2.0.squareRoot()
            let bound = abs(want) * (8 + 4 * z * z) * 0x1p-24 + 1e-30
            #expect(abs(got - want) <= bound, "gelu(\(x)) = \(got), want \(want)")
        }
        // The tanh approximation differs from the erf form by ~1e-4 at x = 2 (ulp there is 1.2e-7).
        let x: Float = 2
        let tanhForm = 0.5 * x * (1 + tanh(0.797_884_560_8 * (x + 0.044715 * x * x * x)))
        #expect(abs(gelu(x) - tanhForm) > 5e-5)
    }

    /// The bias + GELU kernel, every version, against erfc in double with the bound above, over a
    /// dense grid and the whole float range's special values. Lengths that are not multiples of 8
    /// or 16 exercise the vector loops' tails. The AVX-512 version gives the AVX2 one's bits.
    @Test(arguments: ["generic", "avx2", "avx512"])
    func biasGeluKernel(version: String) throws {
        if version == "avx2" && sam3neck_cpu_has_avx2_fma() == 0 { return }  // not on this CPU
        if version == "avx512" && (sam3neck_cpu_has_avx2_fma() == 0 || sam3neck_cpu_has_avx512f() == 0) { return }
        let kernel =
            version == "avx512"
            ? sam3neck_bias_gelu_avx512
            : version == "avx2"
                ? sam3neck_bias_gelu_avx2
                : sam3neck_bias_gelu_generic
        var xs: [Float] = (-1600...1600).map { Float($0) / 100 }  // -16 ... 16, past the vector range
        xs += (-140_000...140_000).map { Float($0) * 0.000_1 + 0.000_03 }  // dense, off the grid above
        xs += [0, -0, .nan, .infinity, -.infinity, 12.99, -12.99, 13, -13, .leastNormalMagnitude]
        // Split each x into src + bias so the kernel's addition is exercised too (exact here).
        let bias = xs.indices.map { Float($0 % 7) * 0.25 }
        let src = zip(xs, bias).map { $0 - $1 }
        let sum = zip(src, bias).map { $0 + $1 }
        var out = [Float](repeating: 0, count: xs.count)
        kernel(src, bias, &out, xs.count)
        for (x, got) in zip(sum, out) {
            let xd = Double(x), z = xd / 2.0.squareRoot()
            let want = 0.5 * xd * erfc(-z)  // NaN for NaN and for −Inf (−Inf · 0), as in float
            if want.isNaN {
                #expect(got.isNaN, "gelu(\(x)) = \(got), want NaN")
                continue
            }
            if want.isInfinite || want == 0 { #expect(Double(got) == want || abs(got) < 1e-37); continue }
            let bound = abs(want) * (8 + 4 * z * z) * 0x1p-24 + 1e-37
            #expect(abs(Double(got) - want) <= bound, "\(version): gelu(\(x)) = \(got), want \(want)")
        }
        if version == "avx512" {
            var narrow = [Float](repeating: 0, count: xs.count)
            sam3neck_bias_gelu_avx2(src, bias, &narrow, xs.count)
            #expect(narrow.map(\.bitPattern) == out.map(\.bitPattern), "avx512 and avx2 differ")
        }
        // In place (out == src), and every length 0...33 for the tails.
        for length in 0...33 {
            var buffer = Array(src.prefix(length))
            let expected = Array(out.prefix(length))
            buffer.withUnsafeMutableBufferPointer { b in kernel(b.baseAddress, bias, b.baseAddress, length) }
            #expect(buffer.map(\.bitPattern) == expected.map(\.bitPattern), "length \(length)")
        }
    }

    @Test func halfToFloatMatchesFloat16ForEveryBitPattern() {
        for bits in 0...UInt16.max {
            let want = Float(Float16(bitPattern: bits))
            let got = Float(halfBits: bits)
            if want.isNaN {
                #expect(got.isNaN)
            } else {
                #expect(got.bitPattern == want.bitPattern, "half 0x\(String(bits, radix: 16))")
            }
        }
    }

    @Test(arguments: [(1, 1), (2, 2), (5, 7), (8, 3), (1, 9)])
    func positionEncodingFollowsTheSpec(h: Int, w: Int) {
        let d = 8, f = d / 2
        let pe = PositionEncoding(dModel: d, height: h, width: w).values
        for ch in 0..<d {
            let k = ch % f, isY = ch < f
            let dimT = pow(10_000.0, Double(2 * (k / 2)) / Double(f))
            for r in 0..<h {
                for c in 0..<w {
                    let n = isY ? h : w, pos = isY ? r : c
                    let v = Double(pos + 1) / (Double(n) + 1e-6) * 2 * Double.pi / dimT
                    let want = k % 2 == 0 ? sin(v) : cos(v)
                    #expect(abs(Double(pe[(ch * h + r) * w + c]) - want) <= 1e-6)
                }
            }
        }
    }

    /// Small grids, and wide ones whose rows and channels fill the vector loops and leave tails;
    /// NaN anywhere in a window, and ties of -0 and +0 (the first in reading order wins, as in
    /// PyTorch's loop): bit for bit against the naive pool, for the dispatched and portable code.
    @Test(arguments: [(4, 4, 3), (5, 7, 3), (7, 5, 3), (2, 3, 3), (3, 2, 3), (6, 37, 19), (4, 34, 8)], [false, true])
    func maxPoolBothLayoutsOnOddGridsWithNaN(shape: (Int, Int, Int), portable: Bool) {
        let (h, w, c) = shape
        var rng = Naive.RNG(state: 7)
        var x = Naive.Image(c: c, h: h, w: w)
        x.v = rng.floats(c * h * w).map(Double.init)
        x[1, 0, 1] = .nan  // a NaN inside the first window of channel 1
        if h >= 4 && w >= 4 { x[2, 3, 3] = .nan }
        if w >= 20 {  // zeros of both signs sharing windows, in both orders, deep in the vector part
            x[0, 0, 16] = -0.0; x[0, 0, 17] = 0.0; x[0, 1, 16] = -0.0; x[0, 1, 17] = -0.0
            x[0, 2, 18] = 0.0; x[0, 2, 19] = -0.0; x[0, 3, 18] = -0.0; x[0, 3, 19] = -0.0
            x[c - 1, h - 2, 2 * (w / 2) - 1] = .nan  // the last window of the last channel
        }
        let xs = x.v.map(Float.init)
        // The oracle: each window in reading order, kept unless a later value is greater or NaN.
        let oh = h / 2, ow = w / 2
        var want = [Float](repeating: 0, count: c * oh * ow)
        for ch in 0..<c {
            for i in 0..<oh {
                for j in 0..<ow {
                    var m = xs[(ch * h + 2 * i) * w + 2 * j]
                    for (dy, dx) in [(0, 1), (1, 0), (1, 1)] {
                        let v = xs[(ch * h + 2 * i + dy) * w + 2 * j + dx]
                        if v > m || v.isNaN { m = v }
                    }
                    want[(ch * oh + i) * ow + j] = m
                }
            }
        }
        var outCM = [Float](repeating: 0, count: want.count)
        xs.withUnsafeBufferPointer {
            maxPool2x2ChannelMajor(
                $0.baseAddress!, channels: c, height: h, width: w,
                into: outCM.withUnsafeMutableBufferPointer { $0.baseAddress! }, threads: 2, portable: portable)
        }
        // Channels-last input and output.
        var nhwc = [Float](repeating: 0, count: xs.count)
        for ch in 0..<c {
            for y in 0..<h { for xx in 0..<w { nhwc[(y * w + xx) * c + ch] = xs[(ch * h + y) * w + xx] } }
        }
        var outCL = [Float](repeating: 0, count: want.count)
        nhwc.withUnsafeBufferPointer {
            maxPool2x2ChannelsLast(
                $0.baseAddress!, channels: c, height: h, width: w,
                into: outCL.withUnsafeMutableBufferPointer { $0.baseAddress! }, threads: 1, portable: portable)
        }
        let p = oh * ow
        for ch in 0..<c {
            for q in 0..<p {
                let r = want[ch * p + q]
                for got in [outCM[ch * p + q], outCL[q * c + ch]] {
                    #expect(
                        got.bitPattern == r.bitPattern || (got.isNaN && r.isNaN),
                        "channel \(ch) window \(q): \(got) vs \(r)")
                }
            }
        }
        #expect(outCM[1 * p].isNaN)
        // The naive pool agrees in value (it does not know -0 from +0).
        let naive = Naive.maxPool(x)
        #expect(zip(outCM, naive.v).allSatisfy { $1.isNaN ? $0.isNaN : Double($0) == $1 })
    }

    /// The conv input frame filled with NaN, then framed and filled: a kernel that reads outside
    /// what `zeroBorder` clears would turn its output into NaN.
    static func framed(_ x: Naive.Image, _ body: (PaddedImage) -> Void) {
        let count = PaddedImage.floatCount(height: x.h, width: x.w, channels: x.c)
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { buffer.deallocate() }
        buffer.update(repeating: .nan, count: count)
        let img = PaddedImage(base: buffer, height: x.h, width: x.w, channels: x.c)
        img.zeroBorder()
        for c in 0..<x.c { for y in 0..<x.h { for xx in 0..<x.w { img.pixel(y, xx)[c] = Float(x[c, y, xx]) } } }
        body(img)
    }

    /// Runs a Winograd kernel on `x` in its frame with two workers' scratch; returns the output.
    static func runFramed(
        _ x: Naive.Image, outputCount: Int, scratchPerWorker: Int,
        _ run: (PaddedImage, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void
    ) -> [Float] {
        var out = [Float](repeating: .nan, count: outputCount)
        Blas.useOneThread()
        framed(x) { img in
            var scratch = [Float](repeating: 0, count: 2 * scratchPerWorker)
            scratch.withUnsafeMutableBufferPointer { s in
                out.withUnsafeMutableBufferPointer { run(img, $0.baseAddress!, s.baseAddress!) }
            }
        }
        return out
    }

    /// Expects NaN and ±Inf exactly where `want` has them; returns the worst error of the finite
    /// outputs, normalised by the largest finite reference value. With `foldedInf`, where the chain
    /// of layers meets Inf − Inf (NaN) the folded layers may give ±Inf instead: still non-finite
    /// at exactly the same outputs, but not necessarily NaN (see include/sam3_neck.h, Values).
    static func nonFiniteAwareError(_ out: [Float], _ want: [Double], foldedInf: Bool = false) -> Double {
        let scale = want.filter(\.isFinite).map(abs).max() ?? 1
        var worst = 0.0
        for (got, ref) in zip(out, want) {
            if foldedInf && ref.isNaN {
                #expect(!got.isFinite, "got \(got), want \(ref)")
                continue
            }
            #expect(got.isNaN == ref.isNaN && got.isInfinite == ref.isInfinite, "got \(got), want \(ref)")
            if ref.isFinite { worst = max(worst, abs(Double(got) - ref) / scale) }
        }
        return worst
    }

    /// OpenBLAS and every packed micro-kernel this CPU runs (the portable one always).
    static let productCodes: [GemmBackend] =
        [.openBLAS]
        + [SAM3NECK_SGEMM_GENERIC, SAM3NECK_SGEMM_AVX2, SAM3NECK_SGEMM_AVX512]
        .filter { sam3neck_sgemm_kernel_supported(Int32($0)) != 0 }.map { .packed(kernel: Int32($0)) }

    /// (h, w, cin, cout): (5, 6, 100, 70) has two bands of inputs in the weight transform (64 + 36)
    /// and padding columns in the packed blocks.
    static let convCases = [
        (1, 1, 3, 2), (3, 5, 4, 6), (6, 2, 5, 3), (40, 70, 2, 3), (9, 1, 3, 3), (13, 11, 16, 8), (5, 6, 100, 70),
    ]

    static func convCase(_ h: Int, _ w: Int, _ cin: Int, _ cout: Int) -> (NeckWeights.Layer, Naive.Image, Naive.Image) {
        var rng = Naive.RNG(state: UInt64(h * 1000 + w))
        let layer = NeckWeights.Layer(
            weight: Tensor(shape: [cout, cin, 3, 3], data: rng.floats(cout * cin * 9)),
            bias: Tensor(shape: [cout], data: rng.floats(cout)))
        var x = Naive.Image(c: cin, h: h, w: w)
        x.v = rng.floats(cin * h * w).map(Double.init)
        return (layer, x, Naive.conv(x, layer))
    }

    /// Winograd F(2×2) and F(4×4, 3×3), with blocks smaller than the tile count so several
    /// workers and a partial last block are exercised, and grids that are not multiples of 4.
    @Test(arguments: convCases, [WinogradTile.f2, .f4])
    func winogradMatchesNaiveLoop(shape: (Int, Int, Int, Int), tile: WinogradTile) {
        let (h, w, cin, cout) = shape
        let (layer, x, want) = Self.convCase(h, w, cin, cout)
        for (gemm, bf16x3) in Self.productCodes.map({ ($0, false) }) + (tile == .f2 ? Self.amxCode : []) {
            let conv = WinogradConv3x3(layer, tile: tile, blockTiles: 3, gemm: gemm, bf16x3: bf16x3)
            #expect(conv.u.bf16x3 == bf16x3)
            let out = Self.runFramed(x, outputCount: cout * h * w, scratchPerWorker: conv.scratchPerWorker) {
                conv.run($0, into: .channelMajor($1, channels: cout, height: h, width: w), scratch: $2, threads: 2)
            }
            // In float the transforms cost a few bits against direct summation: F(2×2) only adds and
            // halves (bound 2e-6 as for direct sums); F(4×4)'s constants up to 8 and 1/24 cost more
            // (bound 1e-5, a tenth of the default mode's 1e-4). bf16×3 products (terms within
            // 3·2⁻¹⁷ ≈ 2.3e-5 relative) with F(2×2), as the plan takes them: measured ≤ 1.3e-5 here
            // (bound 3e-5). (With F(4×4) they reach 2e-4 at 40 × 70: the plan never pairs them.)
            let bound = bf16x3 ? 3e-5 : (tile == .f2 ? 2e-6 : 1e-5)
            #expect(Naive.normalisedError(out, want.v) <= bound, "\(gemm) bf16x3 \(bf16x3)")
        }
    }

    /// The bf16×3 AMX products where the CPU has them (with the AVX-512 packing they split from).
    static let amxCode: [(GemmBackend, Bool)] =
        GemmBackend.amxAvailable ? [(.packed(kernel: Int32(SAM3NECK_SGEMM_AVX512)), true)] : []

    /// Weights with a value that does not split (in the second band of inputs, after the first
    /// was split) keep the float32 blocks: the conv is then the float32 one, byte for byte.
    @Test func weightsThatDoNotSplitStayFloat32() {
        guard let (gemm, _) = Self.amxCode.first else { return }
        for bad in [Float.infinity, .nan, 3.4e38] {
            var (layer, x, _) = Self.convCase(5, 6, 100, 70)
            var weight = layer.weight.data
            weight[(3 * 100 + 80) * 9] = bad  // kernel (3, 80), tap (0, 0): U_0 = g_00 (F(2×2) scales the others)
            layer = NeckWeights.Layer(weight: Tensor(shape: layer.weight.shape, data: weight), bias: layer.bias)
            x[1, 2, 2] = 0.5
            let outs = [true, false].map { bf16x3 -> [Float] in
                let conv = WinogradConv3x3(layer, tile: .f2, blockTiles: 3, gemm: gemm, bf16x3: bf16x3)
                #expect(!conv.u.bf16x3, "weight \(bad) split")
                let out = Self.runFramed(x, outputCount: 70 * 5 * 6, scratchPerWorker: conv.scratchPerWorker) {
                    conv.run($0, into: .channelMajor($1, channels: 70, height: 5, width: 6), scratch: $2, threads: 2)
                }
                return out
            }
            let same = outs[0].withUnsafeBytes { Array($0) } == outs[1].withUnsafeBytes { Array($0) }
            #expect(same, "weight \(bad): not the float32 conv's bytes")
        }
    }

    /// NaN and ±Inf reach exactly the outputs a direct conv lets them reach (PyTorch's behaviour),
    /// not the whole Winograd tile.
    @Test(arguments: [WinogradTile.f2, .f4])
    func winogradKeepsNonFiniteValuesLocal(tile: WinogradTile) {
        var (layer, x, _) = Self.convCase(13, 11, 16, 8)
        x[3, 5, 6] = .nan
        x[0, 0, 0] = .infinity
        x[7, 12, 10] = -.infinity
        let want = Naive.conv(x, layer)
        // OpenBLAS, and the AMX products (whose rows holding NaN or Inf come out NaN, so their
        // tiles are recomputed directly like any tile with a non-finite output).
        for (gemm, bf16x3) in [(GemmBackend.openBLAS, false)] + Self.amxCode {
            let conv = WinogradConv3x3(layer, tile: tile, blockTiles: 3, gemm: gemm, bf16x3: bf16x3)
            let out = Self.runFramed(x, outputCount: 8 * 13 * 11, scratchPerWorker: conv.scratchPerWorker) {
                conv.run($0, into: .channelMajor($1, channels: 8, height: 13, width: 11), scratch: $2, threads: 2)
            }
            // Finite outputs within the default mode's normalised bound.
            #expect(Self.nonFiniteAwareError(out, want.v) <= SAM3_NECK_BOUND_DEFAULT, "bf16x3 \(bf16x3)")
            let finite = want.v.filter(\.isFinite).count
            #expect(finite < out.count && finite > out.count / 2)
        }
    }

    /// Branch 0's tail as one composed Winograd F(m×m, 2×2) conv per output phase, against the
    /// naive transposed conv → 1×1 → 3×3 chain, including NaN/Inf landing where the chain puts them.
    @Test(
        arguments: [
            (5, 7, false), (4, 4, false), (1, 3, false), (9, 6, true), (3, 2, true), (13, 7, false), (7, 13, true),
        ],
        [WinogradTile.f4r2, .f3r2])
    func upsampleConvMatchesTheNaiveChain(shape: (Int, Int, Bool), tile: WinogradTile) {
        let (h, w, nonFinite) = shape
        let c0 = 12, mid = 6, d = 5
        var rng = Naive.RNG(state: UInt64(h * 100 + w))
        func layer(_ shape: [Int], out: Int) -> NeckWeights.Layer {
            .init(
                weight: Tensor(shape: shape, data: rng.floats(shape.reduce(1, *), scale: 0.5)),
                bias: Tensor(shape: [out], data: rng.floats(out)))
        }
        let t = layer([c0, mid, 2, 2], out: mid), p = layer([d, mid, 1, 1], out: d), c3 = layer([d, d, 3, 3], out: d)
        var g = Naive.Image(c: c0, h: h, w: w)
        g.v = rng.floats(c0 * h * w).map(Double.init)
        if nonFinite {
            g[2, h / 2, w / 2] = .nan
            g[5, h - 1, 0] = .infinity
        }
        // (7, 13) puts the Inf where the chain's intermediate sums meet Inf − Inf.
        Self.checkUpsampleConv(g, t, p, c3, tile: tile, foldedInf: h == 7 && w == 13)
    }

    /// Level 0's composed conv of (t, p, c3) on `g` with every product code, and the bf16×3 AMX
    /// products where the CPU has them, against the naive transposed conv → 1×1 → 3×3 chain.
    static func checkUpsampleConv(
        _ g: Naive.Image, _ t: NeckWeights.Layer, _ p: NeckWeights.Layer, _ c3: NeckWeights.Layer,
        tile: WinogradTile, foldedInf: Bool = false
    ) {
        let (h, w, d) = (g.h, g.w, c3.weight.shape[0])
        let want = Naive.conv(Naive.conv(Naive.transposed(g, t), p), c3)
        for (gemm, bf16x3) in Self.productCodes.map({ ($0, false) }) + Self.amxCode {
            let conv = UpsampleConv3x3(
                up: PackedWeights.folded(t, p), conv: c3, tile: tile, blockTiles: 2, gemm: gemm, bf16x3: bf16x3)
            #expect(conv.bf16x3 == bf16x3)
            let out = Self.runFramed(g, outputCount: d * 4 * h * w, scratchPerWorker: conv.scratchPerWorker) {
                conv.run($0, into: .channelMajor($1, channels: d, height: 2 * h, width: 2 * w), scratch: $2, threads: 2)
            }
            // The composition is exact algebra; in float F(m×m, 2×2) costs about what direct sums do.
            // bf16×3 terms carry up to 3·2⁻¹⁷ ≈ 2.3e-5 relative error each (SgemmKernelTests), which
            // the transforms magnify a few-fold: measured ≤ 8.1e-6 with F(3×3, 2×2) (the plan's
            // choice; bound 2e-5) and ≤ 4.4e-5 with F(4×4, 2×2) (bound 1e-4, the default mode's); a
            // wrong block, band or tile gives errors of order 1. Non-finite tiles go through the NaN
            // rows of the split products to the direct recompute: NaN and Inf land as in float32.
            let bound = !bf16x3 ? 2e-6 : tile == .f3r2 ? 2e-5 : 1e-4
            #expect(Self.nonFiniteAwareError(out, want.v, foldedInf: foldedInf) <= bound, "\(gemm) bf16x3 \(bf16x3)")
        }
    }

    /// The composed conv with 200 inputs: its weights are made in bands of 96 inputs (96, 96, 8),
    /// each transformed (and split for AMX) 32 at a time, and d = 70 leaves padding columns.
    @Test(arguments: [WinogradTile.f4r2, .f3r2])
    func upsampleConvWithSeveralInputBands(tile: WinogradTile) {
        let (h, w, c0, mid, d) = (3, 4, 200, 8, 70)
        var rng = Naive.RNG(state: 4242)
        func layer(_ shape: [Int], out: Int, scale: Double) -> NeckWeights.Layer {
            .init(
                weight: Tensor(shape: shape, data: rng.floats(shape.reduce(1, *), scale: scale)),
                bias: Tensor(shape: [out], data: rng.floats(out)))
        }
        let t = layer([c0, mid, 2, 2], out: mid, scale: 0.1), p = layer([d, mid, 1, 1], out: d, scale: 0.5)
        let c3 = layer([d, d, 3, 3], out: d, scale: 0.1)
        var g = Naive.Image(c: c0, h: h, w: w)
        g.v = rng.floats(c0 * h * w).map(Double.init)
        Self.checkUpsampleConv(g, t, p, c3, tile: tile)
    }

    @Test func transposedScatterPutsTapsWhereTheSpecSays() {
        // One GEMM + scatter, against the naive transposed conv.
        let h = 3, w = 2, cin = 5, cout = 4
        var rng = Naive.RNG(state: 11)
        let layer = NeckWeights.Layer(
            weight: Tensor(shape: [cin, cout, 2, 2], data: rng.floats(cin * cout * 4)),
            bias: Tensor(shape: [cout], data: rng.floats(cout)))
        var x = Naive.Image(c: cin, h: h, w: w)
        x.v = rng.floats(cin * h * w).map(Double.init)
        let want = Naive.gelu(Naive.transposed(x, layer))
        let g = PackedWeights.transposed(layer)
        // Channels-last input rows.
        var xr = [Float](repeating: 0, count: h * w * cin)
        for c in 0..<cin { for y in 0..<h { for xx in 0..<w { xr[(y * w + xx) * cin + c] = Float(x[c, y, xx]) } } }
        var y = [Float](repeating: 0, count: h * w * g.n)
        var out = [Float](repeating: 0, count: 4 * h * w * cout)
        xr.withUnsafeBufferPointer { xp in
            g.b.withUnsafeBufferPointer { bp in
                y.withUnsafeMutableBufferPointer { yp in
                    Blas.sgemm(
                        m: h * w, n: g.n, k: cin, a: xp.baseAddress!, lda: cin, b: bp.baseAddress!, ldb: g.n,
                        c: yp.baseAddress!, ldc: g.n)
                }
            }
        }
        out.withUnsafeMutableBufferPointer { op in
            let img = PaddedImage(base: op.baseAddress!, height: 2 * h, width: 2 * w, channels: cout, pad: 0)
            y.withUnsafeBufferPointer { yp in
                g.bias.withUnsafeBufferPointer { bp in
                    scatterTransposed2x2(
                        yp.baseAddress!, height: h, width: w, channels: cout, bias: bp.baseAddress!, gelu: true,
                        into: img, threads: 2)
                }
            }
        }
        for o in 0..<cout {
            for yy in 0..<2 * h {
                for xx in 0..<2 * w {
                    #expect(abs(Double(out[(yy * 2 * w + xx) * cout + o]) - want[o, yy, xx]) <= 1e-5)
                }
            }
        }
    }

    /// The C Winograd transforms of one tile against Bᵀ d B and Aᵀ M A + bias computed in double
    /// from the matrices written out here (Lavin & Gray's F(2×2, 3×3) and F(4×4, 3×3), the
    /// F(4×4, 2×2) and F(3×3, 2×2) of the plan's composed conv), for the AVX2 and the portable
    /// code (which must agree bit for bit), with channel counts around the vector width, and
    /// the non-finite flag of the output transform.
    @Test(arguments: [WinogradTile.f2, .f4, .f4r2, .f3r2])
    func winogradTransformsAreTheMatrices(tile: WinogradTile) {
        let bt: [[Double]], at: [[Double]]
        switch tile {
        case .f2:
            bt = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
            at = [[1, 1, 1, 0], [0, 1, -1, -1]]
        case .f4:
            bt = [
                [4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1],
            ]
            at = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
        case .f4r2:
            bt = [
                [0.5, -1, -0.5, 1, 0], [0, -0.5, 0.5, 1, 0], [0, 0.5, -1.5, 1, 0], [0, -1, 0, 1, 0],
                [0, 0.5, -1, -0.5, 1],
            ]
            at = [[1, 1, 1, 1, 0], [0, 1, -1, 0.5, 0], [0, 1, 1, 0.25, 0], [0, 1, -1, 0.125, 1]]
        case .f3r2:
            bt = [[-1, 0, 1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, -1, 0, 1]]
            at = [[1, 1, 1, 0], [0, 1, -1, 0], [0, 1, 1, 1]]
        }
        let a = tile.alpha, m = tile.m
        var rng = Naive.RNG(state: 41)
        for c in [1, 7, 8, 9, 16, 21, 29, 40] {  // sixteen, eight and single channels, and their mixes
            // Input: α×α pixels of c channels in a frame 3 pixels wider than the tile.
            let rowStride = (a + 3) * c, src = rng.floats(a * rowStride, scale: 2)
            var got = [[Float]](repeating: [], count: 3)
            for portable in [0, 1, 2] {  // widest vectors, portable, AVX2 at most
                var v = [Float](repeating: .nan, count: a * a * (c + 2))
                sam3neck_winograd_input(tile.code, -1, src, rowStride, c, c, &v, c + 2, 16, Int32(portable))
                got[portable] = v
            }
            #expect(got[0].map(\.bitPattern) == got[1].map(\.bitPattern), "input c=\(c): vector and portable differ")
            #expect(got[2].map(\.bitPattern) == got[1].map(\.bitPattern), "input c=\(c): AVX2 and portable differ")
            // As row 3 of a micro-panel of 5 rows (chunks of 16 channels 80 floats apart), the packed
            // SGEMM's layout: the same values at sam3neck_sgemm_a_packed_index, nothing else written.
            let mr = 5, panel = mr * ((c + 15) / 16 * 16)
            for portable in [0, 1, 2] {
                var v = [Float](repeating: .nan, count: a * a * panel)
                v.withUnsafeMutableBufferPointer { v in
                    sam3neck_winograd_input(
                        tile.code, -1, src, rowStride, c, c,
                        v.baseAddress! + sam3neck_sgemm_a_packed_index(mr, c, 3, 0),
                        panel, 16 * mr, Int32(portable))
                }
                var want = [Float](repeating: .nan, count: a * a * panel)
                for xi in 0..<a * a {
                    for k in 0..<c {
                        want[xi * panel + sam3neck_sgemm_a_packed_index(mr, c, 3, k)] = got[1][xi * (c + 2) + k]
                    }
                }
                #expect(
                    v.map(\.bitPattern) == want.map(\.bitPattern), "input c=\(c) into a micro-panel, mode \(portable)")
            }
            // One row of V alone (row x's elements α floats·(c + 2) apart): those of the whole
            // transform, bit for bit; a row past α writes nothing.
            for portable in [0, 1, 2] {
                for x in 0...a {
                    var v = [Float](repeating: .nan, count: a * (c + 2))
                    sam3neck_winograd_input(tile.code, Int32(x), src, rowStride, c, c, &v, c + 2, 16, Int32(portable))
                    var want = [Float](repeating: .nan, count: a * (c + 2))
                    if x < a {
                        for y in 0..<a { for k in 0..<c { want[y * (c + 2) + k] = got[1][(x * a + y) * (c + 2) + k] } }
                    }
                    #expect(v.map(\.bitPattern) == want.map(\.bitPattern), "input c=\(c) row \(x), mode \(portable)")
                }
            }
            for xi in 0..<a * a {
                for k in 0..<c {
                    var want = 0.0, scale = 0.0
                    for p in 0..<a {
                        for q in 0..<a {
                            let term = bt[xi / a][p] * Double(src[p * rowStride + q * c + k]) * bt[xi % a][q]
                            want += term
                            scale += abs(term)
                        }
                    }
                    #expect(
                        abs(Double(got[1][xi * (c + 2) + k]) - want) <= 1e-6 * scale + 1e-30, "input ξ \(xi) c \(k)")
                }
            }
            // Output: α² products of c channels, one NaN-free and one with a NaN.
            let prod = rng.floats(a * a * (c + 1), scale: 2), bias = rng.floats(c)
            var outs = [[Float]](repeating: [], count: 3)
            for portable in [0, 1, 2] {
                var y = [Float](repeating: .nan, count: m * 2 * m * c)  // rows m apart by 2m pixels: strides
                let bad = sam3neck_winograd_output(tile.code, prod, c + 1, c, bias, &y, 2 * m * c, c, Int32(portable))
                #expect(bad == 0, "finite products flagged")
                outs[portable] = y
            }
            #expect(outs[0].map(\.bitPattern) == outs[1].map(\.bitPattern), "output c=\(c): vector and portable differ")
            #expect(outs[2].map(\.bitPattern) == outs[1].map(\.bitPattern), "output c=\(c): AVX2 and portable differ")
            for i in 0..<m {
                for j in 0..<m {
                    for k in 0..<c {
                        var want = Double(bias[k]), scale = abs(want)
                        for p in 0..<a {
                            for q in 0..<a {
                                let term = at[i][p] * Double(prod[(p * a + q) * (c + 1) + k]) * at[j][q]
                                want += term
                                scale += abs(term)
                            }
                        }
                        #expect(
                            abs(Double(outs[1][(i * 2 * m + j) * c + k]) - want) <= 1e-6 * scale + 1e-30,
                            "output (\(i), \(j)) c \(k)")
                    }
                }
                // Pixels between the written ones are untouched.
                for j in m..<2 * m { #expect(outs[1][(i * 2 * m + j) * c].isNaN) }
            }
            for portable in [0, 1, 2] {
                for channel in [0, c - 1] {  // the first channel (the widest vectors) and the last (their tail)
                    var withNaN = prod
                    withNaN[(a * a - 1) * (c + 1) + channel] = .nan  // in the last product
                    var y = [Float](repeating: 0, count: m * 2 * m * c)
                    #expect(
                        sam3neck_winograd_output(tile.code, withNaN, c + 1, c, bias, &y, 2 * m * c, c, Int32(portable))
                            != 0)
                }
            }
        }
    }

    /// The weight transform U = G k Gᵀ against the product computed here in double, for each
    /// tile, both layouts (row-major blocks and the micro-kernels' packed B), cout with and without
    /// whole groups of 16 and of 4, kernels read tap-major and in PyTorch's [o][i][q] order, in
    /// bands of inputs, into storage on 64-byte boundaries (streaming stores) and off them, the
    /// AVX2 + FMA and the portable code (at most one float ulp apart). Nothing outside the band's
    /// elements is written.
    @Test(arguments: [WinogradTile.f2, .f4, .f4r2, .f3r2])
    func winogradWeightTransformIsGkGt(tile: WinogradTile) {
        let a = tile.alpha, r = tile.r, r2 = r * r, g = tile.g
        var rng = Naive.RNG(state: 77)
        for (cin, cout) in [(3, 8), (5, 7), (2, 20), (4, 48), (3, 35)] {
            let pairs = cin * cout
            let kernels = rng.floats(pairs * r2, scale: 1).map(Double.init)  // [o][i][q]
            var taps = [Double](repeating: 0, count: r2 * pairs)  // [q][i][o]
            for o in 0..<cout {
                for i in 0..<cin {
                    for q in 0..<r2 { taps[q * pairs + i * cout + o] = kernels[(o * cin + i) * r2 + q] }
                }
            }
            for packed in [false, true] {
                let blockFloats = packed ? sam3neck_sgemm_packed_b_floats(cin, cout) : cin * cout
                let total = (a * a + 1) * blockFloats
                // Storage 64-byte aligned; `shift` floats into it (0: lines aligned, 4: not).
                let raw = UnsafeMutableRawPointer.allocate(byteCount: (total + 16) * 4, alignment: 64)
                defer { raw.deallocate() }
                let base = raw.bindMemory(to: Float.self, capacity: total + 16)
                var got: [[Float]] = []
                for flags in [0, SAM3NECK_WEIGHTS_PORTABLE, SAM3NECK_WEIGHTS_CACHED] {
                    for shift in [0, 4] {
                        for tapMajor in [true, false] {
                            base.initialize(repeating: .nan, count: total + 16)
                            let u = base + shift
                            // Two bands of inputs: [0, split) and [split, cin).
                            let split = cin / 2
                            for rows in [0..<split, split..<cin] where !rows.isEmpty {
                                taps.withUnsafeBufferPointer { t in
                                    kernels.withUnsafeBufferPointer { k in
                                        if tapMajor {
                                            sam3neck_winograd_weights(
                                                Int32(a), Int32(r), g.flatMap { $0 },
                                                t.baseAddress! + rows.lowerBound * cout,
                                                pairs, cout, 1, rows.lowerBound, rows.count, cin, cout, u, blockFloats,
                                                packed ? 1 : 0, 1, Int32(flags))
                                        } else {
                                            sam3neck_winograd_weights(
                                                Int32(a), Int32(r), g.flatMap { $0 },
                                                k.baseAddress! + rows.lowerBound * r2,
                                                1, r2, cin * r2, rows.lowerBound, rows.count, cin, cout, u, blockFloats,
                                                packed ? 1 : 0, 1, Int32(flags))
                                        }
                                    }
                                }
                            }
                            got.append(Array(UnsafeBufferPointer(start: u, count: total)))
                        }
                    }
                }
                var written = [Bool](repeating: false, count: total)
                for xi in 0..<a * a {
                    for o in 0..<cout {
                        for i in 0..<cin {
                            var want = 0.0
                            for m in 0..<r {
                                for n in 0..<r {
                                    want += g[xi / a][m] * kernels[(o * cin + i) * r2 + m * r + n] * g[xi % a][n]
                                }
                            }
                            let at =
                                (1 + xi) * blockFloats
                                + (packed ? sam3neck_sgemm_packed_index(cin, i, o) : i * cout + o)
                            written[at] = true
                            for u in got {
                                #expect(
                                    abs(Double(u[at]) - want) <= Double(Float(want).ulp) + 1e-12,
                                    "ξ \(xi) (\(i), \(o)) packed \(packed)")
                            }
                        }
                    }
                }
                // Block 0 (before `first`) and the packed layout's padding are not written.
                for u in got { #expect(zip(u, written).allSatisfy { $1 || $0.isNaN }) }
            }
        }
    }
}

extension OutputTarget {
    /// A float32 `[channels, height, width]` image at `p`.
    static func channelMajor(_ p: UnsafeMutablePointer<Float>, channels: Int, height: Int, width: Int) -> OutputTarget {
        OutputTarget(
            .nchw, dtype: .float32, base: UnsafeMutableRawPointer(p), image: 0, batch: 1,
            channels: channels, height: height, width: width)
    }
}
