/// A 2-D little-endian float32 `.npy` file, as `numpy.save` writes float32 arrays: magic
/// "\x93NUMPY", a version, a header length, a Python-literal header naming dtype, order and
/// shape, then the values row-major. Every size is checked against the file before use.
public enum NPYFile {
    public static func decode(_ bytes: [UInt8]) throws -> (values: [Float], rows: Int, cols: Int) {
        func bad(_ why: String) -> LowBitError { LowBitError(.badFormat, "not a 2-D float32 .npy file: \(why)") }
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1..<6]) == Array("NUMPY".utf8) else {
            throw bad("bad magic")
        }
        let major = bytes[6]
        let headerLength: Int, headerStart: Int
        if major == 1 {
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        } else if major == 2 || major == 3, bytes.count >= 12 {
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        } else {
            throw bad("unsupported version \(major)")
        }
        guard headerLength <= bytes.count - headerStart else { throw bad("truncated header") }
        let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        guard header.contains("'descr': '<f4'") else { throw bad("dtype is not little-endian float32 ('<f4')") }
        guard header.contains("'fortran_order': False") else { throw bad("Fortran order is not supported") }
        let marker = "'shape': ("
        guard let start = header.indices.first(where: { header[$0...].hasPrefix(marker) }),
              case let at = header.index(start, offsetBy: marker.count),
              let close = header[at...].firstIndex(of: ")") else { throw bad("no shape") }
        let dims = header[at..<close].split(separator: ",").map { $0.filter { $0 != " " } }.filter { !$0.isEmpty }
        guard dims.count == 2, let rows = Int(dims[0]), let cols = Int(dims[1]), rows > 0, cols > 0 else {
            throw bad("shape is not 2-D")
        }
        let dataStart = headerStart + headerLength
        let (count, overflow) = rows.multipliedReportingOverflow(by: cols)
        let (byteCount, byteOverflow) = count.multipliedReportingOverflow(by: 4)
        guard !overflow, !byteOverflow, bytes.count - dataStart == byteCount else {
            let needed = overflow || byteOverflow ? "more than memory holds" : "\(byteCount)"
            throw bad("data is \(bytes.count - dataStart) bytes, shape \(rows) x \(cols) needs \(needed)")
        }
        let values = bytes[dataStart...].withUnsafeBytes { raw in
            (0..<count).map { i in
                Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            }
        }
        return (values, rows, cols)
    }

    public static func load(_ path: String) throws -> (values: [Float], rows: Int, cols: Int) {
        do {
            return try decode(try FileIO.read(path))
        } catch let e as LowBitError where e.status == .badFormat {
            throw LowBitError(.badFormat, "\(path): \(e.message)")
        }
    }
}
