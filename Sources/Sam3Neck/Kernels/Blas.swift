import COpenBLAS

/// The matrix products of the neck, all through OpenBLAS's `cblas_sgemm` (row-major).
///
/// The plan's own workers own the parallelism: each calls single-threaded products on its block.
/// OpenBLAS's thread count is process-wide, so it is set to one when a neck is loaded and kept
/// there (`useOneThread`), never saved and restored per run: a restore by one run could hand
/// another handle's concurrent run a multi-threaded OpenBLAS.
package enum Blas {
    /// C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C, row-major, leading dimensions in elements.
    @inlinable
    package static func sgemm(transA: Bool = false, transB: Bool = false,
                             m: Int, n: Int, k: Int,
                             alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k),
                    alpha, a, blasint(lda), b, blasint(ldb),
                    beta, c, blasint(ldc))
    }

    /// The core OpenBLAS chose kernels for ("Haswell", "SkylakeX", "Prescott", ...).
    package static var coreName: String { openblas_get_corename().map { String(cString: $0) } ?? "" }

    /// Sets OpenBLAS to one thread if it is not already (every caller sets the same value, so
    /// concurrent calls cannot disagree).
    package static func useOneThread() {
        if openblas_get_num_threads() != 1 { openblas_set_num_threads(1) }
    }

}
