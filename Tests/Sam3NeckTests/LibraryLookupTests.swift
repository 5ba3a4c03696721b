import CKernels
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `sam3neck_call_in_library_of`, which reaches OpenBLAS's `blas_thread_shutdown_` (`Blas`):
/// found through a neighbouring function of the same library, called, its result returned.
struct LibraryLookupTests {
    @Test func callsTheNamedFunctionOfTheLibraryThatHoldsTheKnownOne() {
        let known: @convention(c) () -> pid_t = getpid  // libc's
        let address = unsafeBitCast(known, to: UnsafeRawPointer.self)
        #expect(sam3neck_call_in_library_of(address, "getpid") == getpid())
        #expect(sam3neck_call_in_library_of(address, "sam3neck_no_such_function") == -1)
        #expect(sam3neck_call_in_library_of(nil, "getpid") == -1)
        #expect(sam3neck_call_in_library_of(address, nil) == -1)
    }
}
