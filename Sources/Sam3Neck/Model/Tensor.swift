#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A dense float32 tensor in row-major order: the currency between the checkpoint readers and the
/// model. Shapes follow PyTorch's conventions of the file it came from.
package struct Tensor: Sendable, Equatable {
    package var shape: [Int]
    package var data: [Float]

    package init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "shape \(shape) does not match \(data.count) elements")
        self.shape = shape
        self.data = data
    }

    package var count: Int { data.count }

    /// The most elements one tensor read from a file may have: 2^27 (512 MiB as float32), 64 times
    /// the largest tensor of SAM 3's neck. Checked before any memory is set aside for it.
    static let maxElements = 1 << 27

    /// Zeroed storage for `count` elements of tensor `name`, refused past `maxElements` (a format
    /// error naming the number) and when the memory cannot be had: a failed Swift allocation
    /// aborts the process, so a large one (1 MiB or more) is first tried with malloc, and its
    /// failure is an out-of-memory error.
    static func storage(count: Int, for name: String, in file: String) throws -> [Float] {
        guard count <= maxElements else {
            throw NeckError(
                .format,
                "\(file): tensor '\(name)' has \(count) elements, more than the limit of \(maxElements) for one tensor")
        }
        let bytes = count * MemoryLayout<Float>.stride
        if bytes >= 1 << 20 {
            guard let probe = malloc(bytes) else {
                throw NeckError(.outOfMemory, "\(file): cannot allocate \(bytes) bytes for tensor '\(name)'")
            }
            free(probe)
        }
        return [Float](repeating: 0, count: count)
    }
}

/// "[1024, 512, 2, 2]": how shapes appear in messages.
@usableFromInline
func describe(shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }
