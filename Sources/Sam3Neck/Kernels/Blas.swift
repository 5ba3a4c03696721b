import CKernels
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
    package static func sgemm(
        transA: Bool = false, transB: Bool = false,
        m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(
            CblasRowMajor,
            transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k),
            alpha, a, blasint(lda), b, blasint(ldb),
            beta, c, blasint(ldc))
    }

    /// The core OpenBLAS chose kernels for ("Haswell", "SkylakeX", "Prescott", ...).
    package static var coreName: String { openblas_get_corename().map { String(cString: $0) } ?? "" }

    /// Sets OpenBLAS to one thread if it is not already (every caller sets the same value, so
    /// concurrent calls cannot disagree); the first time, it also stops OpenBLAS's idle workers.
    package static func useOneThread() {
        guard openblas_get_num_threads() != 1 else { return }
        openblas_set_num_threads(1)
        _ = idleWorkersStopped
    }

    /// Why stop them: OpenBLAS starts its workers when it is loaded, and each spins on
    /// `sched_yield` for about 2^28 cycles before it sleeps, whether or not work comes. With one
    /// thread set, none ever comes, but for the first ~0.1 s of the process they take a core from
    /// the plan's workers: on 2 cores the first compile measured 90–166 ms with them spinning,
    /// 70–84 ms without (`OPENBLAS_NUM_THREADS=1`). `blas_thread_shutdown_` (exported by OpenBLAS's
    /// pthreads build, for its fork handler) joins them. It is looked up in the library that holds
    /// `openblas_set_num_threads`, which may have been loaded with local symbols (Python's ctypes);
    /// a build without it is left as it is. Once per process, at the first neck's load: later the
    /// workers may be the application's (a multi-threaded call starts them again), and they sleep
    /// when idle.
    private static let idleWorkersStopped: Void = {
        let known: @convention(c) (Int32) -> Void = openblas_set_num_threads
        _ = sam3neck_call_in_library_of(unsafeBitCast(known, to: UnsafeRawPointer.self), "blas_thread_shutdown_")
    }()

}
