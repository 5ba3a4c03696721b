import CKernels
import Foundation
import Testing

/// The bfloat16 products of the fast mode (Sources/CKernels/sgemm_bf16.c): both kernels in their
/// emulated builds on every CPU, natively where the CPU has the instructions, against a naive loop
/// in double over the operands rounded to bfloat16.
///
/// Tolerance: with both operands rounded to bfloat16 first, each product a'·b' is exact in float32
/// (8 + 8 significant bits), so the kernel's only errors are the float32 roundings of its sums: one
/// per step of VDPBF16PS / TDPBF16PS (one per k), one per k block added to the block accumulator,
/// one for the bias: at most (k + 3)·u·(Σ|a'·b'| + |bias|), u = 2⁻²⁴, per element and rigorous (as
/// in SgemmKernelTests). The rounding to bfloat16 itself is checked separately: a kernel that
/// rounded differently (truncation, another pair order) would miss the reference by ~2⁻⁹ relative,
/// hundreds of times the bound.
@Suite struct BF16KernelTests {
    static let kernels: [Int32] = [
        Int32(SAM3NECK_SGEMM_AVX512_BF16_EMULATED), Int32(SAM3NECK_SGEMM_AMX_BF16_EMULATED),
        Int32(SAM3NECK_SGEMM_AVX512_BF16), Int32(SAM3NECK_SGEMM_AMX_BF16),
    ]
    typealias Problem = SgemmKernelTests.Problem

    static func rounded(_ x: [Float]) -> [Float] { x.map { sam3neck_bf16_to_f32(sam3neck_bf16_operand($0)) } }

    static func packedBF16(_ p: Problem) -> SgemmKernelTests.AlignedBuffer {
        let f32 = p.packed()
        let out = SgemmKernelTests.AlignedBuffer(sam3neck_sgemm_bf16_b_floats(p.k, p.n))
        sam3neck_sgemm_pack_b_bf16(p.k, p.n, f32, out.p)
        return out
    }

    /// Runs `kernel` into C with row stride `rs` and column stride `cs` (NaN before), `small`
    /// blocking to cross mc, kc and nc blocks: (status, C).
    static func run(
        _ p: Problem, kernel: Int32, bias: Bool, gelu: Bool, rs: Int, cs: Int, cCount: Int,
        small: Bool = false
    ) -> (Int32, [Float]) {
        let b = packedBF16(p)
        var c = [Float](repeating: .nan, count: cCount)
        var g = sam3neck_sgemm_args()
        g.kernel = kernel; g.m = p.m; g.n = p.n; g.k = p.k; g.lda = p.lda; g.a_trans = p.aTrans ? 1 : 0
        g.gelu = gelu ? 1 : 0
        if small { g.nc = 32; g.mc = 24; g.kc = 16 }
        var ws = [Float](repeating: .nan, count: sam3neck_sgemm_workspace_floats(&g))
        let rc = p.a.withUnsafeBufferPointer { a in
            p.bias.withUnsafeBufferPointer { bb in
                c.withUnsafeMutableBufferPointer { cb in
                    ws.withUnsafeMutableBufferPointer { w in
                        g.a = a.baseAddress; g.packed_b = UnsafePointer(b.p)
                        g.bias = bias ? bb.baseAddress : nil
                        (g.c, g.rs_c, g.cs_c, g.workspace) = (cb.baseAddress, rs, cs, w.baseAddress)
                        return sam3neck_sgemm_run(&g)
                    }
                }
            }
        }
        return (rc, c)
    }

    static let sizes: [(Int, Int, Int)] = [
        (1, 1, 1), (7, 13, 65), (13, 7, 31), (40, 70, 33), (17, 33, 64), (33, 96, 100),
        (5, 9, 0),  // k = 0: C = epilogue(bias)
        (30, 40, 1100),  // k past the AVX-512 kernel's kc (512 values): two k blocks
    ]

    @Test(arguments: kernels)
    func productMatchesDoubleLoopOnRoundedOperands(kernel: Int32) {
        if sam3neck_sgemm_kernel_supported(kernel) == 0 { return }  // the emulated kernels always run
        for (index, (m, n, k)) in Self.sizes.enumerated() {
            for aTrans in [false, true] {
                let p = Problem(m: m, n: n, k: k, aTrans: aTrans, seed: UInt64(300 + index * 10 + (aTrans ? 1 : 0)))
                let exact = Problem(p, a: Self.rounded(p.a), b: Self.rounded(p.b))
                for epilogue in 0..<3 {  // none, bias, bias + GELU
                    let ldc = n + 5
                    let (rc, c) = Self.run(
                        p, kernel: kernel, bias: epilogue > 0, gelu: epilogue == 2, rs: ldc, cs: 1, cCount: m * ldc)
                    #expect(rc == 0)
                    _ = exact.check(
                        { c[$0 * ldc + $1] }, bias: epilogue > 0, gelu: epilogue == 2,
                        "kernel \(kernel) epilogue \(epilogue)", roundings: k + 3)
                    for i in 0..<m { for j in n..<ldc { #expect(c[i * ldc + j].isNaN) } }
                }
            }
        }
    }

    /// NCHW strides (through the tile buffer and the strided store) and a small blocking (several
    /// row, column and k blocks through the block accumulator; the AMX driver ignores it).
    @Test(arguments: kernels)
    func stridedStoreAndSmallBlocks(kernel: Int32) {
        if sam3neck_sgemm_kernel_supported(kernel) == 0 { return }
        let p = Problem(m: 45, n: 83, k: 70, aTrans: true, seed: 77)
        let exact = Problem(p, a: Self.rounded(p.a), b: Self.rounded(p.b))
        for small in [false, true] {
            let (rc, c) = Self.run(
                p, kernel: kernel, bias: true, gelu: true, rs: 1, cs: p.m, cCount: p.m * p.n, small: small)
            #expect(rc == 0)
            _ = exact.check(
                { c[$1 * p.m + $0] }, bias: true, gelu: true, "kernel \(kernel) nchw small \(small)", roundings: p.k + 3
            )
        }
    }

    /// Where the CPU has the instructions, the native kernels against their emulation: bit for bit
    /// for VDPBF16PS (checked on Zen 4, which follows Intel's pseudo-code exactly, denormals and
    /// NaN included). AMX's accumulation inside one tile product is not specified to the bit by
    /// anything but that pseudo-code, so there the two are held to the sums' bound above.
    @Test func nativeBF16MatchesEmulation() {
        let pairs: [(native: Int32, emulated: Int32, exact: Bool)] = [
            (Int32(SAM3NECK_SGEMM_AVX512_BF16), Int32(SAM3NECK_SGEMM_AVX512_BF16_EMULATED), true),
            (Int32(SAM3NECK_SGEMM_AMX_BF16), Int32(SAM3NECK_SGEMM_AMX_BF16_EMULATED), false),
        ]
        for pair in pairs where sam3neck_sgemm_kernel_supported(pair.native) != 0 {
            for (index, (m, n, k)) in [(40, 70, 33), (33, 96, 100), (30, 40, 1100)].enumerated() {
                for aTrans in [false, true] {
                    var p = Problem(m: m, n: n, k: k, aTrans: aTrans, seed: UInt64(500 + index))
                    // Special values: denormals (flushed), NaN, Inf, a bfloat16 tie.
                    var a = p.a
                    a[0] = 1e-40; a[1] = .nan; a[2] = -.infinity; a[3] = Float(bitPattern: 0x3F80_8000)
                    p = Problem(p, a: a)
                    let (r0, native) = Self.run(
                        p, kernel: pair.native, bias: true, gelu: false, rs: n, cs: 1, cCount: m * n)
                    let (r1, emulated) = Self.run(
                        p, kernel: pair.emulated, bias: true, gelu: false, rs: n, cs: 1, cCount: m * n)
                    #expect(r0 == 0 && r1 == 0)
                    if pair.exact {
                        #expect(
                            zip(native, emulated).allSatisfy {
                                $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN)
                            },
                            "kernel \(pair.native) m=\(m) n=\(n) k=\(k)")
                    } else {
                        let exact = Problem(p, a: Self.rounded(p.a), b: Self.rounded(p.b))
                        _ = exact.check(
                            { native[$0 * n + $1] }, bias: true, gelu: false, "kernel \(pair.native)", roundings: k + 3)
                    }
                }
            }
        }
    }

    /// The operand rounding: nearest even, NaN quieted (never Inf), denormals to signed zero,
    /// overflow to Inf; and one dot step.
    @Test func operandRoundingAndDotStep() {
        #expect(sam3neck_bf16_operand(1.0) == 0x3F80)
        #expect(sam3neck_bf16_operand(Float(bitPattern: 0x3F80_8000)) == 0x3F80)  // tie: to even
        #expect(sam3neck_bf16_operand(Float(bitPattern: 0x3F81_8000)) == 0x3F82)  // tie: to even (up)
        #expect(sam3neck_bf16_operand(Float(bitPattern: 0x3F80_8001)) == 0x3F81)
        #expect(sam3neck_bf16_operand(-1e-40) == 0x8000)
        #expect(sam3neck_bf16_operand(Float(bitPattern: 0x7F80_0001)) == 0x7FC0)  // signalling NaN: quiet, not Inf
        #expect(sam3neck_bf16_operand(.greatestFiniteMagnitude) == 0x7F80)
        #expect(sam3neck_bf16_dot_step(1, 0x3F80, 0x4000) == 3)
        #expect(sam3neck_bf16_dot_step(1e-40, 0, 0) == 0)  // a denormal accumulator reads as zero
    }

    /// The packed bfloat16 B holds each B(kk, j) rounded, in its pair, zero past k and n; a B
    /// converted a band of 32 rows at a time equals the whole B converted at once.
    @Test func bandConversionEqualsWhole() {
        let k = 100, n = 70
        let p = Problem(m: 1, n: n, k: k, aTrans: false, seed: 9)
        let whole = Self.packedBF16(p)
        let floats = sam3neck_sgemm_bf16_b_floats(k, n), kpp = 64  // pairs per panel: k rounded to 32, halved
        #expect(floats == 8 * 16 * kpp)  // panels in groups of 4: 128 columns
        let pairs = UnsafeRawPointer(whole.p).assumingMemoryBound(to: UInt32.self)
        var wrong = 0
        for panel in 0..<8 {
            for q in 0..<kpp {
                for j in 0..<16 {
                    let col = 16 * panel + j
                    func want(_ kk: Int) -> UInt32 {
                        kk < k && col < n ? UInt32(sam3neck_bf16_operand(p.b[kk * n + col])) : 0
                    }
                    if pairs[(panel * kpp + q) * 16 + j] != want(2 * q) | want(2 * q + 1) << 16 { wrong += 1 }
                }
            }
        }
        #expect(wrong == 0)
        let bands = SgemmKernelTests.AlignedBuffer(floats)
        for k0 in stride(from: 0, to: k, by: 32) {
            let rows = min(32, k - k0)
            var band = [Float](repeating: .nan, count: sam3neck_sgemm_packed_b_floats(rows, n))
            Array(p.b[(k0 * n)..<((k0 + rows) * n)]).withUnsafeBufferPointer {
                sam3neck_sgemm_pack_b(rows, n, $0.baseAddress, n, 0, &band)
            }
            #expect(sam3neck_sgemm_pack_b_bf16_rows(k, n, k0, rows, band, bands.p) == 0)
        }
        #expect((0..<floats).allSatisfy { whole.p[$0].bitPattern == bands.p[$0].bitPattern })
        #expect(sam3neck_sgemm_pack_b_bf16_rows(k, n, 16, 32, [Float](repeating: 0, count: 32 * 64), bands.p) == -1)
    }
}

extension SgemmKernelTests.Problem {
    /// p with other A and B (the same shapes).
    init(_ p: Self, a: [Float], b: [Float]) {
        (m, n, k, aTrans, lda, bias) = (p.m, p.n, p.k, p.aTrans, p.lda, p.bias)
        self.a = a
        self.b = b
    }
}
