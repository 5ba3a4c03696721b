#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A checkpoint split over several safetensors files, as Transformers' `save_pretrained` writes
/// big models: `model.safetensors.index.json` maps each tensor name to the shard that holds it
/// (`{"metadata": {…}, "weight_map": {name: "model-00001-of-00002.safetensors"}}`).
///
/// Shards are opened (header only) when a tensor in them is first asked for, so loading the neck
/// touches the shards that hold it and, in them, only its bytes.
///
/// A shard is read only if its resolved path (symbolic links followed) stays inside the index's
/// folder, so an index cannot reach other files through `..`, absolute names or links. One wider
/// root is admitted: in the Hugging Face hub cache, `models--ORG--NAME/snapshots/REV/` holds links
/// into `models--ORG--NAME/blobs/`, so for such a folder the enclosing `models--*` folder is the root.
package final class ShardedSafetensors: TensorArchive {
    /// Index files larger than this are refused.
    package static let maxIndexBytes = 64 << 20

    package let description: String
    package let names: [String]
    /// The folder the shard names are relative to.
    package let directory: String
    /// What every shard's resolved path must lie inside: the index's folder, resolved, or for a
    /// hub cache snapshot the enclosing `models--*` folder.
    let confinement: String
    private let shardOf: [String: String]
    private var shards: [String: SafetensorsFile] = [:]

    /// `path` is the index file or a folder holding exactly one `*.safetensors.index.json`.
    package init(path: String) throws {
        let index = try ShardedSafetensors.indexPath(path)
        let source = try FileSource(path: index)
        description = "sharded safetensors '\(index)'"
        directory = index.lastIndex(of: "/").map { String(index[..<$0]) } ?? "."
        guard source.size <= ShardedSafetensors.maxIndexBytes else {
            throw NeckError(
                .format,
                "\(description): index of \(source.size) bytes exceeds the \(ShardedSafetensors.maxIndexBytes)-byte limit"
            )
        }
        let json: JSONValue
        do {
            json = try source.withBytes(at: 0, count: source.size) { try JSONParser.parse($0) }
        } catch let e as NeckError {
            throw e.context(description)
        }
        guard case let .object(map)? = json["weight_map"] else {
            throw NeckError(.format, "\(description): no \"weight_map\" object (not a safetensors index?)")
        }
        var shardOf: [String: String] = [:]
        var names: [String] = []
        for (name, value) in map {
            guard let file = value.string else {
                throw NeckError(.format, "\(description): weight_map entry '\(name)' is \(value), not a file name")
            }
            // Shards live beside the index: no absolute paths, no way out of the folder.
            guard !file.isEmpty, !file.hasPrefix("/"), !file.split(separator: "/").contains("..") else {
                throw NeckError(
                    .format,
                    "\(description): shard name '\(file)' (for '\(name)') must be a relative path inside the index's folder"
                )
            }
            shardOf[name] = file
            names.append(name)
        }
        self.shardOf = shardOf
        self.names = names
        confinement = try ShardedSafetensors.confinement(of: directory, description: description)
    }

    /// The resolved folder shards must stay in (see the type's documentation).
    static func confinement(of directory: String, description: String) throws -> String {
        let folder = try resolve(directory, description)
        let parts = folder.split(separator: "/", omittingEmptySubsequences: true)
        if parts.count >= 3, parts[parts.count - 2] == "snapshots", parts[parts.count - 3].hasPrefix("models--") {
            return "/" + parts.dropLast(2).joined(separator: "/")
        }
        return folder
    }

    private static func resolve(_ path: String, _ description: String) throws -> String {
        guard let r = realpath(path, nil) else {
            throw NeckError(.io, "\(description): cannot resolve '\(path)': \(String(cString: strerror(errno)))")
        }
        defer { free(r) }
        return String(cString: r)
    }

    /// The shard's path with links resolved, refused unless it lies inside `confinement`.
    func resolvedPath(ofShard file: String) throws -> String {
        guard let r = realpath(directory + "/" + file, nil) else {
            throw NeckError(.io, "cannot open '\(directory)/\(file)': \(String(cString: strerror(errno)))")
        }
        let resolved = String(cString: r)
        free(r)
        let root = confinement == "/" ? "/" : confinement + "/"
        guard resolved.hasPrefix(root) else {
            throw NeckError(
                .format,
                "it resolves to '\(resolved)', outside the index's folder '\(confinement)' (symbolic links out of the folder are not followed)"
            )
        }
        return resolved
    }

    /// The index itself, or the one `*.safetensors.index.json` inside a folder.
    static func indexPath(_ path: String) throws -> String {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw NeckError(.io, "cannot open '\(path)': \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { return path }
        guard let dir = opendir(path) else {
            throw NeckError(.io, "cannot list folder '\(path)': \(String(cString: strerror(errno)))")
        }
        defer { closedir(dir) }
        var found: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(cString: $0.bindMemory(to: CChar.self).baseAddress!)
            }
            if name.hasSuffix(".safetensors.index.json") { found.append(name) }
        }
        guard found.count == 1 else {
            throw NeckError(
                found.isEmpty ? .io : .invalidArgument,
                found.isEmpty
                    ? "folder '\(path)' holds no '*.safetensors.index.json'; pass a checkpoint file or the folder of a sharded checkpoint"
                    : "folder '\(path)' holds several indexes (\(found.sorted().map { "'\($0)'" }.joined(separator: ", "))); pass one of them"
            )
        }
        return path.hasSuffix("/") ? path + found[0] : path + "/" + found[0]
    }

    private func shard(for name: String) throws -> SafetensorsFile? {
        guard let file = shardOf[name] else { return nil }
        if let s = shards[file] { return s }
        let s: SafetensorsFile
        do {
            s = try SafetensorsFile(source: FileSource(path: resolvedPath(ofShard: file)))
        } catch let e as NeckError {
            throw e.context("\(description): shard '\(file)' (holding '\(name)')")
        }
        shards[file] = s
        return s
    }

    package func info(_ name: String) throws -> TensorInfo? {
        guard let s = try shard(for: name) else { return nil }
        guard let i = try s.info(name) else {
            throw NeckError(
                .format, "\(description): the index puts '\(name)' in shard '\(shardOf[name]!)', which does not hold it"
            )
        }
        return i
    }

    package func readFloat32(_ name: String) throws -> Tensor {
        guard try info(name) != nil else { throw NeckError(.missingTensor, "\(description): no tensor '\(name)'") }
        return try shard(for: name)!.readFloat32(name)
    }
}
