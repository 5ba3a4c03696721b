import CKernels

/// The float32 products of compile time — folding a transposed conv and a 1×1 conv into one
/// layer, composing level 0's last layers — on the packed micro-kernels where the CPU has AVX2
/// (OpenBLAS's sgemm elsewhere).
///
/// Why float32 and not double: double products went through OpenBLAS's dgemm, whose speed depends
/// on its CPU table (0.3.21 runs its SSE3 "Prescott" kernels on CPUs it does not know, e.g. some
/// Xeons of this machine kind) and made a first compile as long as a run. Each product here sums
/// at most 512 float terms in the micro-kernels' FMA chains (a relative error of a few 1e-7 per
/// weight); sums over several products and every transform after them stay in double, and the
/// tests hold both precision modes to their bounds against the float64 reference.
enum WeightProducts {
    /// `C[m×n] = A[m×k] · B` (row-major, leading dimensions lda and ldc), with B given as its
    /// transpose `Bᵀ[n×k]` at `bT` (leading dimension ldbT): the layout every weight product of
    /// the neck has (PyTorch stores a conv's weight as [out][in]). Single-threaded: callers run
    /// independent products on the cores.
    static func multiply(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, bT: UnsafePointer<Float>, ldbT: Int,
                         c: UnsafeMutablePointer<Float>, ldc: Int) {
        let kernel = sam3neck_sgemm_auto_kernel()
        guard kernel != Int32(SAM3NECK_SGEMM_GENERIC) else {
            // Without AVX2 OpenBLAS is several times the portable kernel.
            Blas.sgemm(transB: true, m: m, n: n, k: k, a: a, lda: lda, b: bT, ldb: ldbT, c: c, ldc: ldc)
            return
        }
        let packed = UnsafeMutablePointer<Float>.allocate(capacity: sam3neck_sgemm_packed_b_floats(k, n))
        defer { packed.deallocate() }
        sam3neck_sgemm_pack_b(k, n, bT, ldbT, 1, packed)
        var args = sam3neck_sgemm_args()
        (args.m, args.n, args.k) = (m, n, k)
        let workspace = UnsafeMutablePointer<Float>.allocate(capacity: sam3neck_sgemm_workspace_floats(&args))
        defer { workspace.deallocate() }
        let status = sam3neck_sgemm(kernel, m, n, k, a, lda, 0, packed, nil, 0, c, ldc, workspace)
        precondition(status == 0, "sam3neck_sgemm: \(status)")  // sizes are the weights' own, checked at load
    }
}
