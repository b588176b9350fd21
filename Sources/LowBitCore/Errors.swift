/// Status codes shared with the C header (`lowbit_status`). Values are stable and append-only.
public enum LowBitStatus: Int32, Sendable {
    case ok = 0
    case nullPointer = 1
    case invalidArgument = 2
    case unsupported = 3
    case sizeMismatch = 4
    case overflow = 5
    case outOfMemory = 6
    case io = 7
    case badFormat = 8
    case `internal` = 9

    public var summary: String {
        switch self {
        case .ok: return "ok"
        case .nullPointer: return "a required pointer is NULL"
        case .invalidArgument: return "invalid argument"
        case .unsupported: return "unsupported option"
        case .sizeMismatch: return "buffer size or shape mismatch"
        case .overflow: return "size computation overflows"
        case .outOfMemory: return "out of memory"
        case .io: return "file input/output failed"
        case .badFormat: return "malformed or corrupt file"
        case .internal: return "internal error"
        }
    }
}

/// The one error type of the core: a status for programs and a message for people.
public struct LowBitError: Error, CustomStringConvertible, Sendable {
    public let status: LowBitStatus
    public let message: String
    public init(_ status: LowBitStatus, _ message: String) {
        self.status = status
        self.message = message
    }
    public var description: String { message }
}

/// Multiplies sizes, failing with a clear error instead of trapping on overflow.
@inlinable
public func checkedProduct(_ values: Int..., what: String) throws -> Int {
    var result = 1
    for v in values {
        let (p, overflow) = result.multipliedReportingOverflow(by: v)
        if overflow {
            throw LowBitError(.overflow, "\(what): size \(values.map(String.init).joined(separator: " x ")) overflows")
        }
        result = p
    }
    return result
}
