import LowBit

/// Reads a 2-D little-endian float32 `.npy` file (what `numpy.save` writes for float32 arrays).
func readNPY(_ path: String) throws -> (values: [Float], rows: Int, cols: Int) {
    let bytes = try FileIO.read(path)
    func bad(_ why: String) -> CLIError { CLIError("\(path): not a 2-D float32 .npy file: \(why)") }
    guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1..<6]) == Array("NUMPY".utf8) else { throw bad("bad magic") }
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
    guard headerStart + headerLength <= bytes.count else { throw bad("truncated header") }
    let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
    guard header.contains("'descr': '<f4'") else { throw bad("dtype is not little-endian float32 ('<f4')") }
    guard header.contains("'fortran_order': False") else { throw bad("Fortran order is not supported") }
    let marker = "'shape': ("
    guard let at = header.indices.first(where: { header[$0...].hasPrefix(marker) }) else { throw bad("no shape") }
    let from = header.index(at, offsetBy: marker.count)
    guard let close = header[from...].firstIndex(of: ")") else { throw bad("no shape") }
    let dims = header[from..<close].split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
    guard dims.count == 2, let rows = Int(dims[0]), let cols = Int(dims[1]), rows > 0, cols > 0 else { throw bad("shape is not 2-D") }
    let dataStart = headerStart + headerLength
    let (count, overflow) = rows.multipliedReportingOverflow(by: cols)
    guard !overflow, bytes.count - dataStart == count * 4 else { throw bad("data is \(bytes.count - dataStart) bytes, shape needs \(count * 4)") }
    let values = bytes[dataStart...].withUnsafeBytes { raw in (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) } }
    return (values, rows, cols)
}

extension Substring {
    func trimmingSpaces() -> String { String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()) }
}
