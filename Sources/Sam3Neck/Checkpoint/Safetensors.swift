/// The safetensors format: an 8-byte little-endian header length N, N bytes of JSON
/// `{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`, then the data,
/// with offsets relative to the first byte after the header.
///
/// `open` reads only the header; tensors are read one by one on request, so loading the neck from
/// a checkpoint of several GB touches only the neck's bytes.
package struct SafetensorsFile: TensorArchive {
    package struct Entry: Sendable {
        package let name: String
        package let dtype: DType?
        package let dtypeName: String
        package let shape: [Int]
        /// Absolute byte range in the source.
        package let byteRange: Range<Int>
    }

    /// Headers larger than this are refused before being read (the format's own limit is 100 MB).
    package static let maxHeaderBytes = 100_000_000

    package let source: ByteSource
    package let entries: [String: Entry]
    /// Tensor names in header order.
    package let names: [String]
    package let metadata: [String: String]

    package init(source: ByteSource) throws {
        self.source = source
        let where_ = "safetensors '\(source.name)'"
        guard source.size >= 8 else {
            throw NeckError(.format, "\(where_): file is \(source.size) bytes, too short for the 8-byte header length")
        }
        let headerLength = try source.withBytes(at: 0, count: 8) {
            UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))
        }
        guard headerLength <= UInt64(SafetensorsFile.maxHeaderBytes) else {
            throw NeckError(
                .format,
                "\(where_): header length \(headerLength) exceeds the \(SafetensorsFile.maxHeaderBytes)-byte limit (not a safetensors file?)"
            )
        }
        guard headerLength <= UInt64(source.size - 8) else {
            throw NeckError(
                .format,
                "\(where_): header length \(headerLength) runs past the end of the file (\(source.size) bytes; truncated?)"
            )
        }
        let dataStart = 8 + Int(headerLength)
        let json: JSONValue
        do {
            json = try source.withBytes(at: 8, count: Int(headerLength)) { try JSONParser.parse($0) }
        } catch let e as NeckError {
            throw e.context(where_ + " header")
        }
        guard case let .object(members) = json else {
            throw NeckError(.format, "\(where_): header is not a JSON object")
        }
        var entries: [String: Entry] = [:]
        var names: [String] = []
        var metadata: [String: String] = [:]
        let dataSize = source.size - dataStart
        for (name, value) in members {
            if name == "__metadata__" {
                guard case let .object(meta) = value else {
                    throw NeckError(.format, "\(where_): __metadata__ is not an object")
                }
                for (k, v) in meta { if let s = v.string { metadata[k] = s } }
                continue
            }
            guard let dtypeName = value["dtype"]?.string else {
                throw NeckError(.format, "\(where_): tensor '\(name)' has no dtype string")
            }
            guard let shapeValues = value["shape"]?.array else {
                throw NeckError(.format, "\(where_): tensor '\(name)' has no shape array")
            }
            var shape: [Int] = []
            var elements = 1
            for dim in shapeValues {
                guard let d = dim.int64, d >= 0, d <= Int64(Int32.max) else {
                    throw NeckError(.format, "\(where_): tensor '\(name)' has an invalid dimension \(dim)")
                }
                shape.append(Int(d))
                let (product, overflow) = elements.multipliedReportingOverflow(by: Int(d))
                guard !overflow else {
                    throw NeckError(.format, "\(where_): tensor '\(name)' shape \(describe(shape: shape)) overflows")
                }
                elements = product
            }
            guard let offsets = value["data_offsets"]?.array, offsets.count == 2,
                let begin = offsets[0].int64, let end = offsets[1].int64,
                begin >= 0, begin <= end, end <= Int64(dataSize)
            else {
                throw NeckError(
                    .format,
                    "\(where_): tensor '\(name)' has data_offsets \(value["data_offsets"].map { "\($0)" } ?? "missing") outside the \(dataSize) data bytes"
                )
            }
            let dtype = DType(rawValue: dtypeName)
            if let dtype {
                let (bytes, overflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
                guard !overflow, Int64(bytes) == end - begin else {
                    throw NeckError(
                        .format,
                        "\(where_): tensor '\(name)' (\(dtypeName) \(describe(shape: shape))) needs \(overflow ? "too many" : String(bytes)) bytes but data_offsets give \(end - begin)"
                    )
                }
            }
            entries[name] = Entry(
                name: name, dtype: dtype, dtypeName: dtypeName, shape: shape,
                byteRange: (dataStart + Int(begin))..<(dataStart + Int(end)))
            names.append(name)
        }
        // Data ranges may not overlap (the format lays tensors out one after another).
        let sorted = entries.values.filter { !$0.byteRange.isEmpty }.sorted {
            $0.byteRange.lowerBound < $1.byteRange.lowerBound
        }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.byteRange.lowerBound < a.byteRange.upperBound {
            throw NeckError(
                .format,
                "\(where_): tensors '\(a.name)' (data_offsets \(a.byteRange.lowerBound - dataStart)..<\(a.byteRange.upperBound - dataStart)) and '\(b.name)' (\(b.byteRange.lowerBound - dataStart)..<\(b.byteRange.upperBound - dataStart)) overlap"
            )
        }
        self.entries = entries
        self.names = names
        self.metadata = metadata
    }

    package var description: String { "safetensors '\(source.name)'" }

    package func info(_ name: String) throws -> TensorInfo? {
        entries[name].map { TensorInfo(dtype: $0.dtype, dtypeName: $0.dtypeName, shape: $0.shape) }
    }

    /// Reads one tensor as float32 (F32, F16 and BF16 are converted).
    package func readFloat32(_ name: String) throws -> Tensor {
        let dtype = try loadableInfo(name).dtype!
        let e = entries[name]!
        let count = e.shape.reduce(1, *)  // checked against the data's bytes at open
        var data = try Tensor.storage(count: count, for: name, in: description)
        try source.withBytes(at: e.byteRange.lowerBound, count: e.byteRange.count) { raw in
            data.withUnsafeMutableBufferPointer { dtype.convert(raw, count: count, into: $0) }
        }
        return Tensor(shape: e.shape, data: data)
    }
}
