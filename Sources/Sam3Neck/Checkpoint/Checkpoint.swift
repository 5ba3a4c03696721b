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
            throw NeckError(
                .format,
                "\(source.name): a bare pickle, the legacy PyTorch format (before 1.6, or saved with _use_new_zipfile_serialization=False), which sam3neck does not read; re-save it with torch.save(state_dict, path) from any recent PyTorch"
            )
        }
        // (An unreadable head falls through: the safetensors reader reports the I/O error.)
        let shown = min(source.size, 16)
        if !looksLikeSafetensors(source), let head = try? source.withBytes(at: 0, count: shown, { Array($0) }) {
            let what =
                head.isEmpty
                ? "the file is empty" : "first bytes \"\(escaped(head))\"\(source.size > shown ? "..." : "")"
            throw NeckError(
                .format, "\(source.name): not a recognised checkpoint (neither safetensors nor a PyTorch zip; \(what))")
        }
        return try SafetensorsFile(source: source)
    }

    /// Whether `source` is plausibly a safetensors file, so that a damaged one still gets the
    /// safetensors reader's precise message: its JSON header opens with '{' right after the
    /// 8-byte length (whatever the length says, so a truncated file counts), or the length at
    /// least fits the file. A text file or random bytes are neither (their first 8 bytes read as
    /// a length of exabytes) and get "not a recognised checkpoint" instead.
    static func looksLikeSafetensors(_ source: ByteSource) -> Bool {
        guard source.size >= 8 else { return false }
        if source.size >= 9, let brace = try? source.withBytes(at: 8, count: 1, { $0[0] }), brace == UInt8(ascii: "{") {
            return true
        }
        guard
            let length = try? source.withBytes(
                at: 0, count: 8, { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) })
        else {
            return false
        }
        return length <= UInt64(source.size - 8)
    }

    /// Bytes as printable text: ASCII as it is, \n \r \t \\ \" escaped, the rest as \xNN.
    static func escaped(_ bytes: [UInt8]) -> String {
        let hex = Array("0123456789abcdef")
        var out = ""
        for b in bytes {
            switch b {
            case UInt8(ascii: "\n"): out += "\\n"
            case UInt8(ascii: "\r"): out += "\\r"
            case UInt8(ascii: "\t"): out += "\\t"
            case UInt8(ascii: "\\"): out += "\\\\"
            case UInt8(ascii: "\""): out += "\\\""
            case 0x20...0x7E: out.append(Character(Unicode.Scalar(b)))
            default: out += "\\x" + String(hex[Int(b >> 4)]) + String(hex[Int(b & 15)])
            }
        }
        return out
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
