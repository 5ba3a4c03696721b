import COpenBLAS

/// The matrix products of the neck, all through OpenBLAS's `cblas_sgemm` (row-major).
///
/// OpenBLAS owns the parallelism of the products; its thread count is process-wide, so a plan
/// sets it at the start of each run (`setThreads`) and runs its own element-wise passes between
/// the products, never at the same time as them.
public enum Blas {
    /// C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C, row-major, leading dimensions in elements.
    @inlinable
    public static func sgemm(transA: Bool = false, transB: Bool = false,
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

    /// Double-precision product, used at compile time to fold layers without adding rounding.
    public static func dgemm(transA: Bool = false, transB: Bool = false,
                             m: Int, n: Int, k: Int,
                             a: UnsafePointer<Double>, lda: Int,
                             b: UnsafePointer<Double>, ldb: Int,
                             c: UnsafeMutablePointer<Double>, ldc: Int) {
        cblas_dgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k),
                    1, a, blasint(lda), b, blasint(ldb),
                    0, c, blasint(ldc))
    }

    public static func setThreads(_ n: Int) {
        if Int(openblas_get_num_threads()) != n { openblas_set_num_threads(Int32(n)) }
    }

    public static var threads: Int { Int(openblas_get_num_threads()) }
}
