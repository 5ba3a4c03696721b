import CKernels

/// The element types the kernels read and write (the C kernels' `SAM3NECK_DTYPE_*` codes): float32
/// inside, and the half-precision forms inputs and outputs may take at the edges.
package enum ElementType: Int32, Sendable {
    case float32 = 0, float16 = 1, bfloat16 = 2

    /// Bytes per element.
    package var size: Int { self == .float32 ? 4 : 2 }
    /// The C kernels' code for it.
    var code: Int32 { rawValue }
}
