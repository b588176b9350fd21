#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whole-file reads and atomic writes on the C library (the core does not link Foundation,
/// which would add tens of megabytes to a statically linked liblowbit.so).
public enum FileIO {
    static func describeErrno() -> String { String(cString: strerror(errno)) }

    /// The largest file `read` takes unless told otherwise: more than any model lowbit runs,
    /// small enough that a size field can never ask for an absurd allocation.
    public static let defaultReadLimit = 1 << 40

    /// Opens `path` for reading if it is a regular file, and returns the descriptor with the
    /// file's size. The open is non-blocking, so a FIFO or device never stalls it, and the type
    /// is checked on the opened descriptor, so the file cannot be swapped between check and use.
    public static func openRegular(_ path: String) throws -> (fd: Int32, size: Int) {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else { throw LowBitError(.io, "cannot open '\(path)': \(describeErrno())") }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let why = describeErrno()
            close(fd)
            throw LowBitError(.io, "cannot stat '\(path)': \(why)")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG, st.st_size >= 0 else {
            close(fd)
            throw LowBitError(.io, "'\(path)' is not a regular file")
        }
        // Regular files never block; clearing the flag keeps reads plain.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return (fd, Int(st.st_size))
    }

    /// Fills `buffer` from the file at `offset`; a file that ends first is an I/O error.
    public static func readFully(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int,
                                 path: String) throws {
        var done = 0
        while done < buffer.count {
            let got = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if got < 0, errno == EINTR { continue }
            guard got > 0 else {
                let why = got < 0 ? describeErrno() : "unexpected end of file"
                throw LowBitError(.io, "cannot read '\(path)' at \(offset + done): \(why)")
            }
            done += got
        }
    }

    /// The whole of a regular file, refused before any allocation when it is larger than
    /// `maxBytes`. Files that report size 0 (those of /proc) are read to their end in chunks.
    public static func read(_ path: String, maxBytes: Int = defaultReadLimit) throws -> [UInt8] {
        let (fd, size) = try openRegular(path)
        defer { close(fd) }
        guard size <= maxBytes else {
            throw LowBitError(.io, "'\(path)' is \(size) bytes, more than the \(maxBytes) this reader takes")
        }
        if size == 0 { return try readToEnd(fd, maxBytes: maxBytes, path: path) }
        var bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in initialized = size }
        try bytes.withUnsafeMutableBytes { try readFully(fd, into: $0, at: 0, path: path) }
        return bytes
    }

    /// A file of the kernel's /sys or /proc as text: these report a size (0, or a page) that is
    /// not their length, so they are read to their end, up to 64 KiB.
    public static func readSystemText(_ path: String) throws -> String {
        let (fd, _) = try openRegular(path)
        defer { close(fd) }
        return String(decoding: try readToEnd(fd, maxBytes: 1 << 16, path: path), as: UTF8.self)
    }

    static func readToEnd(_ fd: Int32, maxBytes: Int, path: String) throws -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let got = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, off_t(bytes.count)) }
            if got < 0, errno == EINTR { continue }
            guard got >= 0 else { throw LowBitError(.io, "cannot read '\(path)': \(describeErrno())") }
            if got == 0 { break }
            guard bytes.count + got <= maxBytes else {
                throw LowBitError(.io, "'\(path)' is more than the \(maxBytes) bytes this reader takes")
            }
            bytes.append(contentsOf: chunk[0..<got])
        }
        return bytes
    }

    /// Writes to a temporary file beside `path`, then renames it over `path`: readers never see
    /// a half-written file, and a failed write leaves any existing file as it was.
    public static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let temporary = "\(path).tmp-\(getpid())"
        guard let f = fopen(temporary, "wb") else {
            throw LowBitError(.io, "cannot create '\(temporary)': \(describeErrno())")
        }
        let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, bytes.count, f) }
        let flushed = fflush(f) == 0 && fsync(fileno(f)) == 0
        fclose(f)
        guard written == bytes.count, flushed else {
            unlink(temporary)
            throw LowBitError(.io, "cannot write '\(temporary)': \(describeErrno())")
        }
        guard rename(temporary, path) == 0 else {
            let why = describeErrno()
            unlink(temporary)
            throw LowBitError(.io, "cannot rename '\(temporary)' to '\(path)': \(why)")
        }
    }

    /// An environment variable, if set.
    public static func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
}
