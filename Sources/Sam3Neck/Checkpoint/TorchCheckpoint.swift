/// A PyTorch checkpoint in the zip format of `torch.save` (PyTorch ≥ 1.6, e.g. the official
/// `sam3.pt`): `<archive>/data.pkl` pickles the state dict, each storage is the stored entry
/// `<archive>/data/<key>`, little-endian.
///
/// Opening reads the zip directory and `data.pkl` (restricted unpickler: nothing is executed);
/// a tensor's storage is read only when that tensor is, and only the span the tensor covers, so
/// the neck's ~31 MB are what a 3.4 GB checkpoint costs. A `{"model": state_dict}` (or
/// `"state_dict"`) wrapper is looked through; strided views and storages shared between
/// tensors are handled; tensors of other dtypes (complex64 `freqs_cis`) are listed but never read.
package struct TorchCheckpoint: TensorArchive {
    /// `data.pkl` larger than this is refused (sam3.pt's is a few hundred KB).
    package static let maxPickleBytes = 64 << 20

    package let description: String
    package let names: [String]
    private let tensors: [String: TorchTensor]
    private let zip: ZipDirectory
    private let root: String

    /// Whether `source` starts like a zip archive (a local file header, or the end record of an
    /// empty archive).
    package static func looksLikeZip(_ source: ByteSource) -> Bool {
        guard source.size >= 4, let magic = try? source.withBytes(at: 0, count: 4, { $0.u32(0) }) else { return false }
        return magic == 0x0403_4B50 || magic == 0x0605_4B50
    }

    package init(source: ByteSource) throws {
        let label = "PyTorch checkpoint '\(source.name)'"
        description = label
        zip = try ZipDirectory(source: source, label: label)
        // The pickle sits at "<archive name>/data.pkl"; the archive name is free (torch uses the
        // file's stem), so find it rather than guess it.
        let pickles = zip.names.filter { $0.hasSuffix("/data.pkl") && $0.dropLast(9).firstIndex(of: "/") == nil }
        guard pickles.count == 1 else {
            let listed = zip.names.prefix(5).map { "'\($0)'" }.joined(separator: ", ")
            throw NeckError(
                .format,
                pickles.isEmpty
                    ? "\(label): a zip archive without '<name>/data.pkl', so not a torch.save checkpoint (entries: \(listed)\(zip.names.count > 5 ? ", …" : ""))"
                    : "\(label): several pickles (\(pickles.map { "'\($0)'" }.joined(separator: ", "))); expected one '<name>/data.pkl'"
            )
        }
        root = String(pickles[0].dropLast(9))
        if let order = zip.entries["\(root)/byteorder"] {
            let r = try zip.dataRange(order)
            let text = try source.withBytes(at: r.lowerBound, count: min(r.count, 16)) {
                String(decoding: $0, as: UTF8.self)
            }
            guard text == "little" else {
                throw NeckError(
                    .format, "\(label): byte order '\(text)' is not supported (only little-endian checkpoints)")
            }
        }
        let pickleRange = try zip.dataRange(zip.entries[pickles[0]]!)
        guard pickleRange.count <= TorchCheckpoint.maxPickleBytes else {
            throw NeckError(
                .format,
                "\(label): data.pkl of \(pickleRange.count) bytes exceeds the \(TorchCheckpoint.maxPickleBytes)-byte limit"
            )
        }
        let top = try source.withBytes(at: pickleRange.lowerBound, count: pickleRange.count) {
            try Unpickler(label: label).load($0)
        }
        let stateDict = try TorchCheckpoint.stateDict(top, label: label)
        var tensors: [String: TorchTensor] = [:]
        var names: [String] = []
        for (key, value) in stateDict.items {
            guard case let .tensor(t) = value, let name = key.string else { continue }
            guard tensors[name] == nil else { throw NeckError(.format, "\(label): tensor '\(name)' appears twice") }
            tensors[name] = t
            names.append(name)
        }
        self.tensors = tensors
        self.names = names
    }

    /// The dict that holds the tensors: the top value, or the dict under "model" / "state_dict"
    /// when the top holds no tensors itself.
    private static func stateDict(_ top: PickleValue, label: String) throws -> PickleDict {
        guard case let .dict(d) = top else {
            throw NeckError(.format, "\(label): the pickle holds a \(top.kindName), not a dict of tensors")
        }
        func holdsTensors(_ d: PickleDict) -> Bool {
            d.items.contains { if case .tensor = $0.value { return true } else { return false } }
        }
        if holdsTensors(d) { return d }
        for key in ["model", "state_dict", "module"] {
            if case let .dict(inner)? = d[key], holdsTensors(inner) { return inner }
        }
        let keys = d.items.prefix(8).map { $0.key.string.map { "'\($0)'" } ?? $0.key.kindName }.joined(separator: ", ")
        throw NeckError(
            .missingTensor,
            "\(label): no tensors at the top level nor under 'model' or 'state_dict' (top-level keys: \(keys)\(d.items.count > 8 ? ", …" : ""))"
        )
    }

    package func info(_ name: String) throws -> TensorInfo? {
        tensors[name].map { TensorInfo(dtype: $0.storage.dtype, dtypeName: $0.storage.dtypeName, shape: $0.shape) }
    }

    /// A view may claim at most this many times the elements of its storage (stride-0, expanded
    /// views): so a small file cannot make the reader set aside memory its bytes do not justify.
    static let maxViewExpansion = 64

    package func readFloat32(_ name: String) throws -> Tensor {
        let info = try loadableInfo(name)
        let t = tensors[name]!
        let dtype = info.dtype!
        let what = "\(description): tensor '\(name)'"
        guard let count = elementCount(t.shape) else {
            throw NeckError(.format, "\(what) has shape \(describe(shape: t.shape)), which overflows")
        }
        guard let entry = zip.entries["\(root)/data/\(t.storage.key)"] else {
            throw NeckError(
                .format, "\(description): storage '\(t.storage.key)' of tensor '\(name)' is not in the archive")
        }
        let range = try zip.dataRange(entry)
        let (storageBytes, overflow) = t.storage.count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow, storageBytes <= range.count else {
            throw NeckError(
                .format,
                "\(description): storage '\(t.storage.key)' should hold \(t.storage.count) \(info.dtypeName) elements but its entry has \(range.count) bytes"
            )
        }
        if count == 0 { return Tensor(shape: t.shape, data: []) }
        // A size-1 axis never steps, so its stride means nothing (PyTorch ignores it too).
        let strides = Swift.zip(t.shape, t.strides).map { $0 <= 1 ? 0 : $1 }
        // The span of storage elements the view touches: offset … offset + Σ (size−1)·stride,
        // every step checked; past it, no offset the gather computes can overflow.
        var last = t.offset
        for (size, stride) in Swift.zip(t.shape, strides) {
            let (step, o1) = (size - 1).multipliedReportingOverflow(by: stride)
            let (sum, o2) = last.addingReportingOverflow(step)
            guard !o1, !o2 else {
                throw NeckError(.format, "\(what) has strides \(describe(shape: t.strides)) that overflow")
            }
            last = sum
        }
        guard last < t.storage.count else {
            throw NeckError(
                .format,
                "\(what) (shape \(describe(shape: t.shape)), strides \(describe(shape: t.strides)), offset \(t.offset)) reaches element \(last) of a storage of \(t.storage.count)"
            )
        }
        let span = last - t.offset + 1
        guard span <= Tensor.maxElements else {
            throw NeckError(
                .format,
                "\(what) spans \(span) elements of its storage, more than the limit of \(Tensor.maxElements) for one tensor"
            )
        }
        // Expanded views (stride 0) may repeat storage elements, but only so far.
        guard count / TorchCheckpoint.maxViewExpansion <= span else {
            throw NeckError(
                .format,
                "\(what) claims \(count) elements from \(span) stored ones, more than the limit of \(TorchCheckpoint.maxViewExpansion) times its storage (an expanded view?)"
            )
        }
        var data = try Tensor.storage(count: count, for: name, in: description)
        // In bytes, all within the entry (checked above): offset·size ≤ storage bytes ≤ range.count.
        let firstByte = range.lowerBound + t.offset * dtype.byteSize
        try zip.source.withBytes(at: firstByte, count: span * dtype.byteSize) { raw in
            if span == count && isRowMajor(shape: t.shape, strides: strides) {
                data.withUnsafeMutableBufferPointer { dtype.convert(raw, count: count, into: $0) }
                return
            }
            // A strided view: convert the span, then gather in row-major order.
            var dense = try Tensor.storage(count: span, for: name, in: description)
            dense.withUnsafeMutableBufferPointer { dtype.convert(raw, count: span, into: $0) }
            gather(dense, shape: t.shape, strides: strides, into: &data)
        }
        return Tensor(shape: t.shape, data: data)
    }
}

/// `out[k] = dense[offset of k]` in row-major order of `shape`; every offset lies in `dense`
/// (the caller has checked that Σ (size−1)·stride < dense.count).
private func gather(_ dense: [Float], shape: [Int], strides: [Int], into out: inout [Float]) {
    var index = [Int](repeating: 0, count: shape.count)
    var source = 0
    for k in 0..<out.count {
        out[k] = dense[source]
        // Odometer over the shape, last axis fastest; an axis that wraps gives back its steps
        // before the next one advances, so `source` never leaves the checked span.
        var axis = shape.count - 1
        while axis >= 0 {
            if index[axis] + 1 < shape[axis] {
                index[axis] += 1
                source += strides[axis]
                break
            }
            source -= strides[axis] * index[axis]
            index[axis] = 0
            axis -= 1
        }
    }
}

/// Whether `strides` are the row-major (contiguous) strides of `shape` (size-1 axes ignored).
private func isRowMajor(shape: [Int], strides: [Int]) -> Bool {
    var expected = 1
    for axis in stride(from: shape.count - 1, through: 0, by: -1) where shape[axis] != 1 {
        if strides[axis] != expected { return false }
        expected *= shape[axis]
    }
    return true
}
