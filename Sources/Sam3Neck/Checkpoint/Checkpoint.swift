/// Opens a checkpoint in whichever supported format it is, recognised by content, not name:
/// a PyTorch zip archive (`torch.save`), a safetensors file, a sharded safetensors index (or the
/// folder holding one).
package enum Checkpoint {
    package static func open(path: String) throws -> TensorArchive {
        if path.hasSuffix(".json") || isDirectory(path) {
            return try ShardedSafetensors(path: path)
        }
        return try open(FileSource(path: path))
    }

    /// A checkpoint image in memory (safetensors or PyTorch zip); the bytes must outlive the
    /// archive, which the loader guarantees by reading what it keeps before returning.
    package static func open(_ source: ByteSource) throws -> TensorArchive {
        // Only a safetensors file whose header is exactly 67,324,752 bytes long starts with "PK\3\4"
        // followed by four zero bytes; such a file would be read as a (broken) zip.
        if TorchCheckpoint.looksLikeZip(source) { return try TorchCheckpoint(source: source) }
        // The legacy format opens with a pickled magic number: PROTO 2, LONG1 of 10 bytes. (As a
        // safetensors length these bytes would be far past the header limit, so no file is lost.)
        if source.size >= 4, let head = try? source.withBytes(at: 0, count: 4, { $0.u32(0) }), head == 0x0A8A_0280 {
            throw NeckError(.format, "\(source.name): a bare pickle, the legacy PyTorch format (before 1.6, or saved with _use_new_zipfile_serialization=False), which sam3neck does not read; re-save it with torch.save(state_dict, path) from any recent PyTorch")
        }
        return try SafetensorsFile(source: source)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private func isDirectory(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
}
