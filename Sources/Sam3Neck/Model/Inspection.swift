/// What a checkpoint holds for the neck, for a user unsure of a file: every neck found (both
/// kinds, every naming scheme and known prefix), its tensors with dtypes and shapes, what is
/// missing, the configuration they imply or why they would not load, and NaN/±Inf counts (such
/// weights still load; this is where a user learns about them). Reads the neck's tensors only.
package enum Inspection {
    /// The report as JSON:
    /// `{"path", "format", "tensor_count", "necks": [{"neck", "scheme", "prefix", "complete",
    /// "missing": [names], "trunk_dim", "d_model" | "error", "tensors": [{"name", "dtype", "shape",
    /// "nan", "inf" | "error"}]}]}` (`nan`/`inf` absent for tensors whose dtype the neck cannot
    /// read; `error` instead when the tensor's data cannot be read).
    package static func report(path: String) throws -> JSONValue {
        let archive = try Checkpoint.open(path: path)
        let format: String
        switch archive {
        case is TorchCheckpoint: format = "pytorch-zip"
        case is ShardedSafetensors: format = "sharded-safetensors"
        default: format = "safetensors"
        }
        var necks: [JSONValue] = []
        for kind in NeckKind.allCases {
            for location in NeckNaming.candidates(names: archive.names, kind: kind) {
                necks.append(try describe(location, in: archive))
            }
        }
        return .object([
            ("path", .string(path)),
            ("format", .string(format)),
            ("tensor_count", .number(String(archive.names.count))),
            ("necks", .array(necks)),
        ])
    }

    private static func describe(_ location: NeckLocation, in archive: TensorArchive) throws -> JSONValue {
        var tensors: [JSONValue] = []
        var missing: [JSONValue] = []
        var present: [(name: String, info: TensorInfo)] = []
        for tensor in NeckNaming.tensors {
            let name = location.name(tensor)
            guard let info = try archive.info(name) else {
                missing.append(.string(name))
                continue
            }
            present.append((name, info))
        }
        // The data is read only for a neck within the loader's size limit, so that a file
        // claiming several huge necks cannot make inspection read gigabytes.
        var parameters = 0, tooLarge = false
        for (_, info) in present {
            let (sum, overflow) = parameters.addingReportingOverflow(elementCount(info.shape) ?? Int.max)
            tooLarge = tooLarge || overflow || sum > NeckWeights.maxParameters
            parameters = overflow ? Int.max : sum
        }
        for (name, info) in present {
            var fields: [(key: String, value: JSONValue)] = [
                ("name", .string(name)),
                ("dtype", .string(info.dtypeName)),
                ("shape", .array(info.shape.map { .number(String($0)) })),
            ]
            if info.dtype?.isLoadable == true, tooLarge {
                fields.append(
                    (
                        "error",
                        .string(
                            "not read: this neck's tensors hold more than \(NeckWeights.maxParameters) parameters (the limit)"
                        )
                    ))
            } else if info.dtype?.isLoadable == true {
                // A tensor that cannot be read (past a limit, truncated) is reported, not fatal.
                do {
                    let values = try archive.readFloat32(name).data
                    fields.append(("nan", .number(String(values.lazy.filter { $0.isNaN }.count))))
                    fields.append(("inf", .number(String(values.lazy.filter { $0.isInfinite }.count))))
                } catch let e as NeckError {
                    fields.append(("error", .string(e.message)))
                }
            }
            tensors.append(.object(fields))
        }
        var fields: [(key: String, value: JSONValue)] = [
            ("neck", .string(location.kind.rawValue)),
            ("scheme", .string(location.scheme.rawValue)),
            ("prefix", .string(location.prefix)),
            ("complete", .bool(missing.isEmpty)),
            ("missing", .array(missing)),
        ]
        // The loader's verdict on exactly this neck: its configuration, or its first complaint.
        do {
            let w = try NeckWeights.load(Only(archive, location), kind: location.kind, prefix: location.prefix)
            fields.append(("trunk_dim", .number(String(w.trunkDim))))
            fields.append(("d_model", .number(String(w.dModel))))
        } catch let e as NeckError {
            fields.append(("error", .string(e.message)))
        }
        fields.append(("tensors", .array(tensors)))
        return .object(fields)
    }

    /// The archive seen through one location's names, so that loading it cannot pick another
    /// scheme under the same prefix.
    private struct Only: TensorArchive {
        let base: TensorArchive
        let names: [String]
        var description: String { base.description }

        init(_ base: TensorArchive, _ location: NeckLocation) {
            self.base = base
            let group = location.prefix + location.scheme.group(location.kind) + "."
            names = base.names.filter { $0.hasPrefix(group) }
        }

        func info(_ name: String) throws -> TensorInfo? { try base.info(name) }
        func readFloat32(_ name: String) throws -> Tensor { try base.readFloat32(name) }
    }
}
