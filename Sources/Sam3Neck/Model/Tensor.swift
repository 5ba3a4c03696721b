/// A dense float32 tensor in row-major order: the currency between the checkpoint readers and the
/// model. Shapes follow PyTorch's conventions of the file it came from.
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "shape \(shape) does not match \(data.count) elements")
        self.shape = shape
        self.data = data
    }

    public var count: Int { data.count }
}

/// "[1024, 512, 2, 2]": how shapes appear in messages.
@usableFromInline
func describe(shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }
