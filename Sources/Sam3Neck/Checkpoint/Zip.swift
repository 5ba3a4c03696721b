/// The directory of a zip archive, as `torch.save` writes them: stored (uncompressed) entries,
/// zip64 records once the archive passes 4 GB. Reads only the end records and the central
/// directory; an entry's bytes are located on request (its local header read then), so an archive
/// of several GB costs the entries one asks for.
struct ZipDirectory {
    struct Entry {
        let name: String
        let method: UInt16
        let flags: UInt16
        let compressedSize: Int
        let uncompressedSize: Int
        let localHeaderOffset: Int
    }

    /// Central directories larger than this are refused (sam3.pt's is about 150 KB).
    static let maxDirectoryBytes = 32 << 20

    let source: ByteSource
    let entries: [String: Entry]
    /// Entry names in directory order.
    let names: [String]
    private let label: String

    init(source: ByteSource, label: String) throws {
        self.source = source
        self.label = label
        let size = source.size
        // End of central directory: 22 bytes + a comment of up to 65,535, at the very end.
        guard size >= 22 else { throw NeckError(.format, "\(label): \(size) bytes is too short for a zip archive") }
        // Most archives (torch's included) have no comment: try the last 22 bytes before
        // scanning the last 64 KB, so opening reads almost nothing beyond the directory.
        let eocd: Int
        if try source.withBytes(at: size - 22, count: 22, { $0.u32(0) == 0x0605_4B50 && $0.u16(20) == 0 }) {
            eocd = size - 22
        } else {
            let tailCount = min(size, 22 + 65_535)
            let tailStart = size - tailCount
            eocd = try source.withBytes(at: tailStart, count: tailCount) { tail in
                var i = tailCount - 22
                while i >= 0 {
                    if tail.u32(i) == 0x0605_4B50, i + 22 + Int(tail.u16(i + 20)) <= tailCount { return tailStart + i }
                    i -= 1
                }
                throw NeckError(
                    .format, "\(label): no zip end-of-central-directory record (truncated or not a zip archive)")
            }
        }
        var (count, dirSize, dirOffset) = try source.withBytes(at: eocd, count: 22) { b in
            (Int(b.u16(10)), Int(b.u32(12)), Int(b.u32(16)))
        }
        if count == 0xFFFF || dirSize == 0xFFFF_FFFF || dirOffset == 0xFFFF_FFFF {
            // Zip64: a locator just before the end record points at the zip64 end record.
            guard eocd >= 20 else { throw NeckError(.format, "\(label): zip64 fields without a zip64 locator") }
            let recordOffset = try source.withBytes(at: eocd - 20, count: 20) { b -> Int in
                guard b.u32(0) == 0x0706_4B50 else {
                    throw NeckError(.format, "\(label): zip64 fields without a zip64 locator")
                }
                return try checkedInt(b.u64(8), label)
            }
            (count, dirSize, dirOffset) = try source.withBytes(at: recordOffset, count: 56) { b in
                guard b.u32(0) == 0x0606_4B50 else {
                    throw NeckError(
                        .format,
                        "\(label): the zip64 locator points at byte \(recordOffset), where there is no zip64 end record"
                    )
                }
                return (
                    try checkedInt(b.u64(32), label), try checkedInt(b.u64(40), label), try checkedInt(b.u64(48), label)
                )
            }
        }
        guard dirSize <= ZipDirectory.maxDirectoryBytes else {
            throw NeckError(
                .format,
                "\(label): central directory of \(dirSize) bytes exceeds the \(ZipDirectory.maxDirectoryBytes)-byte limit"
            )
        }
        guard dirOffset <= size, dirSize <= size - dirOffset, count <= dirSize / 46 else {
            throw NeckError(
                .format,
                "\(label): central directory (\(count) entries, \(dirSize) bytes at \(dirOffset)) does not fit the \(size)-byte archive"
            )
        }
        var entries: [String: Entry] = [:]
        var names: [String] = []
        try source.withBytes(at: dirOffset, count: dirSize) { d in
            var p = 0
            for k in 0..<count {
                guard p + 46 <= dirSize, d.u32(p) == 0x0201_4B50 else {
                    throw NeckError(.format, "\(label): central directory entry \(k) is malformed")
                }
                let nameLength = Int(d.u16(p + 28)), extraLength = Int(d.u16(p + 30)),
                    commentLength = Int(d.u16(p + 32))
                let end = p + 46 + nameLength + extraLength + commentLength
                guard end <= dirSize else {
                    throw NeckError(.format, "\(label): central directory entry \(k) runs past the directory")
                }
                guard
                    let name = String(
                        validating: UnsafeRawBufferPointer(rebasing: d[(p + 46)..<(p + 46 + nameLength)]), as: UTF8.self
                    )
                else {
                    throw NeckError(.format, "\(label): central directory entry \(k) has a name that is not UTF-8")
                }
                var compressed = Int(d.u32(p + 20)), uncompressed = Int(d.u32(p + 24)), offset = Int(d.u32(p + 42))
                // Zip64 extended information: 64-bit values for the fields saturated above, in order.
                var e = p + 46 + nameLength
                let extraEnd = e + extraLength
                while e + 4 <= extraEnd {
                    let id = d.u16(e), length = Int(d.u16(e + 2))
                    guard e + 4 + length <= extraEnd else {
                        throw NeckError(.format, "\(label): entry '\(name)' has a malformed extra field")
                    }
                    if id == 0x0001 {
                        var q = e + 4
                        func next() throws -> Int {
                            guard q + 8 <= e + 4 + length else {
                                throw NeckError(.format, "\(label): entry '\(name)' has a short zip64 extra field")
                            }
                            defer { q += 8 }
                            return try checkedInt(d.u64(q), label)
                        }
                        if uncompressed == 0xFFFF_FFFF { uncompressed = try next() }
                        if compressed == 0xFFFF_FFFF { compressed = try next() }
                        if offset == 0xFFFF_FFFF { offset = try next() }
                    }
                    e += 4 + length
                }
                guard entries[name] == nil else { throw NeckError(.format, "\(label): entry '\(name)' appears twice") }
                entries[name] = Entry(
                    name: name, method: d.u16(p + 10), flags: d.u16(p + 8), compressedSize: compressed,
                    uncompressedSize: uncompressed, localHeaderOffset: offset)
                names.append(name)
                p = end
            }
        }
        self.entries = entries
        self.names = names
    }

    /// Where `entry`'s bytes lie in the source. Only stored, unencrypted entries can be read in place.
    func dataRange(_ entry: Entry) throws -> Range<Int> {
        guard entry.flags & 1 == 0 else { throw NeckError(.format, "\(label): entry '\(entry.name)' is encrypted") }
        guard entry.method == 0 else {
            throw NeckError(
                .format,
                "\(label): entry '\(entry.name)' is compressed (method \(entry.method)); torch.save stores entries uncompressed — re-save the checkpoint with torch.save"
            )
        }
        guard entry.compressedSize == entry.uncompressedSize else {
            throw NeckError(
                .format,
                "\(label): stored entry '\(entry.name)' has sizes \(entry.compressedSize) and \(entry.uncompressedSize)"
            )
        }
        let o = entry.localHeaderOffset
        let start = try source.withBytes(at: o, count: 30) { b -> Int in
            guard b.u32(0) == 0x0403_4B50 else {
                throw NeckError(.format, "\(label): no local header for entry '\(entry.name)' at byte \(o)")
            }
            return o + 30 + Int(b.u16(26)) + Int(b.u16(28))
        }
        guard start <= source.size, entry.uncompressedSize <= source.size - start else {
            throw NeckError(
                .format,
                "\(label): entry '\(entry.name)' (\(entry.uncompressedSize) bytes at \(start)) runs past the end of the archive (\(source.size) bytes; truncated?)"
            )
        }
        return start..<(start + entry.uncompressedSize)
    }
}

private func checkedInt(_ v: UInt64, _ label: String) throws -> Int {
    guard v <= UInt64(Int.max / 2) else { throw NeckError(.format, "\(label): zip64 value \(v) is out of range") }
    return Int(v)
}

extension UnsafeRawBufferPointer {
    /// Little-endian reads at byte offsets; callers check bounds first.
    func u16(_ at: Int) -> UInt16 { UInt16(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt16.self)) }
    func u32(_ at: Int) -> UInt32 { UInt32(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
    func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
}
