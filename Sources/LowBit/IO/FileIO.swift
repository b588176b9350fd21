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
        // One read of st_size + 1 bytes into memory that is not zeroed first (a model file is
        // ~100 MB); then to end of file in chunks, as st_size is 0 for /proc files.
        let capacity = max(Int(st.st_size) + 1, 4096)
        var bytes = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, initialized in
            initialized = fread(buffer.baseAddress!, 1, capacity, f)
        }
        if bytes.count == capacity {
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let got = chunk.withUnsafeMutableBytes { fread($0.baseAddress!, 1, $0.count, f) }
                if got == 0 { break }
                bytes.append(contentsOf: chunk[0..<got])
            }
        }
        guard ferror(f) == 0 else { throw LowBitError(.io, "cannot read '\(path)': \(describeErrno())") }
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
