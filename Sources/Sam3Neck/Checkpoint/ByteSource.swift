#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Random-access bytes of a checkpoint: a file read with `pread` (only the ranges asked for are
/// read, so a multi-GB checkpoint costs the bytes of the neck) or a caller's memory buffer.
package protocol ByteSource {
    /// Total size in bytes.
    var size: Int { get }
    /// Calls `body` with exactly `count` bytes starting at `offset`; throws if they are not there.
    func withBytes<R>(at offset: Int, count: Int, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R
    /// Name used in error messages (a path, or "<memory>").
    var name: String { get }
}

/// A file opened read-only. Closed on deinit.
package final class FileSource: ByteSource {
    package let name: String
    package let size: Int
    private let fd: Int32

    /// Opens `path` for reading if it is a regular file. The open does not block (O_NONBLOCK: a
    /// FIFO with no writer would otherwise wait forever); the type is then checked on the open
    /// descriptor, so what is read is what was checked.
    package init(path: String) throws {
        name = path
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        if fd < 0 {
            throw NeckError(.io, "cannot open '\(path)': \(String(cString: strerror(errno)))")
        }
        var st = stat()
        if fstat(fd, &st) != 0 {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw NeckError(.io, "cannot stat '\(path)': \(reason)")
        }
        let type = st.st_mode & S_IFMT
        guard type == S_IFREG else {
            close(fd)
            throw NeckError(
                .io, "'\(path)' is \(FileSource.describe(type: type)), not a regular file: only regular files are read")
        }
        size = Int(st.st_size)
    }

    /// "a FIFO", "a folder", …: what a non-regular file is, for messages.
    static func describe(type: mode_t) -> String {
        switch type {
        case S_IFDIR: return "a folder"
        case S_IFIFO: return "a FIFO (named pipe)"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        case S_IFLNK: return "a symbolic link"
        default: return "not a regular file (mode 0o\(String(type, radix: 8)))"
        }
    }

    deinit { close(fd) }

    package func withBytes<R>(at offset: Int, count: Int, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard offset >= 0, count >= 0, offset <= size, count <= size - offset else {
            throw NeckError(
                .format, "'\(name)': bytes \(offset)..<\(offset &+ count) lie outside the file (\(size) bytes)")
        }
        // malloc rather than Swift's allocate, whose failure would abort the process.
        guard let base = malloc(max(count, 1)) else {
            throw NeckError(.outOfMemory, "'\(name)': cannot allocate \(count) bytes to read at byte \(offset)")
        }
        defer { free(base) }
        let buffer = UnsafeMutableRawBufferPointer(start: base, count: count)
        var done = 0
        while done < count {
            let n = pread(fd, buffer.baseAddress! + done, count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw NeckError(
                    .io, "cannot read '\(name)' at byte \(offset + done): \(String(cString: strerror(errno)))")
            }
            if n == 0 {
                throw NeckError(
                    .io,
                    "'\(name)' ended at byte \(offset + done) while reading \(count) bytes at \(offset) (file truncated while open?)"
                )
            }
            done += n
        }
        return try body(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
    }
}

/// A caller's buffer, valid for as long as this value is used (the loader copies what it keeps).
package struct MemorySource: ByteSource {
    package let name = "<memory>"
    package let bytes: UnsafeRawBufferPointer
    package var size: Int { bytes.count }

    package init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    package func withBytes<R>(at offset: Int, count: Int, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard offset >= 0, count >= 0, offset <= size, count <= size - offset else {
            throw NeckError(
                .format, "\(name): bytes \(offset)..<\(offset &+ count) lie outside the buffer (\(size) bytes)")
        }
        return try body(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)]))
    }
}
