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
    /// A right-hand side `B[k×n]` given as its transpose `Bᵀ[n×k]` (the layout every weight
    /// product of the neck has: PyTorch stores a conv's weight as [out][in]), packed once for the
    /// micro-kernels (or kept for OpenBLAS where the CPU lacks AVX2), so that products by it in
    /// bands of rows do not repack it each time.
    struct Right {
        let k: Int, n: Int
        /// The micro-kernel, or nil for OpenBLAS.
        let kernel: Int32?
        /// Packed B (micro-kernels) or Bᵀ row-major with leading dimension k (OpenBLAS).
        let b: [Float]

        init(k: Int, n: Int, bT: UnsafePointer<Float>, ldbT: Int) {
            (self.k, self.n) = (k, n)
            let kernel = sam3neck_sgemm_auto_kernel()
            guard kernel != Int32(SAM3NECK_SGEMM_GENERIC) else {
                // Without AVX2 OpenBLAS is several times the portable kernel.
                self.kernel = nil
                b = (0..<n).flatMap { j in UnsafeBufferPointer(start: bT + j * ldbT, count: k) }
                return
            }
            self.kernel = kernel
            b = [Float](unsafeUninitializedCapacity: sam3neck_sgemm_packed_b_floats(k, n)) { buffer, count in
                sam3neck_sgemm_pack_b(k, n, bT, ldbT, 1, buffer.baseAddress)
                count = buffer.count
            }
        }

        /// `C[m×n] = A[m×k] · B` (row-major, leading dimensions lda and ldc), single-threaded:
        /// callers run independent products on the cores.
        func multiply(m: Int, a: UnsafePointer<Float>, lda: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
            b.withUnsafeBufferPointer { b in
                guard let kernel else {
                    Blas.sgemm(
                        transB: true, m: m, n: n, k: k, a: a, lda: lda, b: b.baseAddress!, ldb: k, c: c, ldc: ldc)
                    return
                }
                var args = sam3neck_sgemm_args()
                (args.m, args.n, args.k) = (m, n, k)
                let workspace = UnsafeMutablePointer<Float>.allocate(capacity: sam3neck_sgemm_workspace_floats(&args))
                defer { workspace.deallocate() }
                let status = sam3neck_sgemm(kernel, m, n, k, a, lda, 0, b.baseAddress, nil, 0, c, ldc, workspace)
                precondition(status == 0, "sam3neck_sgemm: \(status)")  // sizes are the weights' own, checked at load
            }
        }
    }
}
