#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whole-file reads and atomic writes on the C library (the core does not link Foundation,
/// which would add tens of megabytes to a statically linked liblowbit.so).
public enum FileIO {
    static func describeErrno() -> String { String(cString: strerror(errno)) }

    public static func read(_ path: String) throws -> [UInt8] {
        guard let f = fopen(path, "rb") else { throw LowBitError(.io, "cannot open '\(path)': \(describeErrno())") }
        defer { fclose(f) }
        var st = stat()
        guard fstat(fileno(f), &st) == 0 else { throw LowBitError(.io, "cannot stat '\(path)': \(describeErrno())") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw LowBitError(.io, "'\(path)' is not a regular file") }
        // Read to end of file rather than trusting st_size, which is 0 for /proc files.
        var bytes = [UInt8](repeating: 0, count: max(Int(st.st_size), 4096))
        var count = 0
        while true {
            if count == bytes.count { bytes.append(contentsOf: [UInt8](repeating: 0, count: bytes.count)) }
            let got = bytes.withUnsafeMutableBytes { fread($0.baseAddress! + count, 1, $0.count - count, f) }
            count += got
            if got == 0 { break }
        }
        guard ferror(f) == 0 else { throw LowBitError(.io, "cannot read '\(path)': \(describeErrno())") }
        bytes.removeSubrange(count...)
        return bytes
    }

    /// Writes to a temporary file beside `path`, then renames it over `path`: readers never see
    /// a half-written file, and a failed write leaves any existing file as it was.
    public static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let temporary = "\(path).tmp-\(getpid())"
        guard let f = fopen(temporary, "wb") else { throw LowBitError(.io, "cannot create '\(temporary)': \(describeErrno())") }
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
