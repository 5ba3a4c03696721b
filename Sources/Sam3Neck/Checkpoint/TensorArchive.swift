/// What every checkpoint format offers the model layer: tensor names, each tensor's dtype and
/// shape without reading its data, and a float32 read of one tensor at a time.
///
/// Safetensors files, PyTorch zip archives and sharded safetensors all conform, so the neck's
/// naming, shape checks and loading are written once (`NeckWeights.load`).
package protocol TensorArchive {
    /// The format and where it came from, for messages: "safetensors 'm.safetensors'".
    var description: String { get }
    /// Every tensor name, in the file's order.
    var names: [String] { get }
    /// Dtype and shape of `name`, or nil when the archive has no such tensor. May read headers
    /// (a shard's), never tensor data.
    func info(_ name: String) throws -> TensorInfo?
    /// Reads one tensor as dense row-major float32 (F32, F16 and BF16 are converted exactly).
    func readFloat32(_ name: String) throws -> Tensor
}

package struct TensorInfo: Sendable, Equatable {
    /// nil when the format's dtype is one this library has no name for (kept in `dtypeName`).
    package let dtype: DType?
    /// The dtype as this library names it ("F32", "BF16", "C64", …) or as the file spelled it.
    package let dtypeName: String
    package let shape: [Int]

    package init(dtype: DType?, dtypeName: String, shape: [Int]) {
        self.dtype = dtype
        self.dtypeName = dtypeName
        self.shape = shape
    }
}

extension TensorArchive {
    /// `info(name)`, throwing `missingTensor` when it is absent and `dtype` when the neck cannot
    /// use its element type.
    package func loadableInfo(_ name: String) throws -> TensorInfo {
        guard let i = try info(name) else {
            throw NeckError(.missingTensor, "\(description): no tensor '\(name)'")
        }
        guard let dtype = i.dtype, dtype.isLoadable else {
            throw NeckError(
                .dtype, "\(description): tensor '\(name)' has dtype \(i.dtypeName); the neck needs F32, F16 or BF16")
        }
        return i
    }
}

/// Element count of `shape`, or nil on overflow or a negative dimension.
func elementCount(_ shape: [Int]) -> Int? {
    var n = 1
    for d in shape {
        guard d >= 0 else { return nil }
        let (p, o) = n.multipliedReportingOverflow(by: d)
        if o { return nil }
        n = p
    }
    return n
}
