import LowBit

/// `--name value` options and bare words, with typed getters that fail with a usage message.
struct Arguments {
    var words: [String] = []
    var options: [String: String] = [:]
    var flags: Set<String> = []

    /// Options that take no value.
    static let booleanFlags: Set<String> = ["json", "help", "version", "symmetric", "full", "verify", "chat",
                                            "with-output", "type-errors", "raw-sensitivity", "contention"]

    init(_ args: ArraySlice<String>) throws {
        var i = args.startIndex
        while i < args.endIndex {
            let a = args[i]
            if a == "-n", i + 1 < args.endIndex {  // the llama.cpp spelling of --n
                options["n"] = args[i + 1]
                i += 2
                continue
            }
            if a.hasPrefix("--") {
                let name = String(a.dropFirst(2))
                if let eq = name.firstIndex(of: "=") {
                    options[String(name[..<eq])] = String(name[name.index(after: eq)...])
                } else if Arguments.booleanFlags.contains(name) {
                    flags.insert(name)
                } else {
                    guard i + 1 < args.endIndex else { throw CLIError("option --\(name) needs a value") }
                    options[name] = args[i + 1]
                    i += 1
                }
            } else {
                words.append(a)
            }
            i += 1
        }
    }

    func int(_ name: String, default value: Int) throws -> Int {
        guard let s = options[name] else { return value }
        guard let v = Int(s) else { throw CLIError("--\(name) expects an integer, got '\(s)'") }
        return v
    }

    func ints(_ name: String, default value: [Int]) throws -> [Int] {
        guard let s = options[name] else { return value }
        return try s.split(separator: ",").map {
            guard let v = Int($0) else { throw CLIError("--\(name) expects integers separated by commas, got '\(s)'") }
            return v
        }
    }

    func strings(_ name: String, default value: [String]) -> [String] {
        options[name].map { $0.split(separator: ",").map(String.init) } ?? value
    }

    /// Rejects options this command does not know, so typos do not pass silently.
    func allow(_ known: Set<String>) throws {
        for name in Set(options.keys).union(flags) where !known.contains(name) {
            throw CLIError("unknown option --\(name)")
        }
    }
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Parses a weight type name: 1, 2, 3, 4 or ternary.
func parseWeightType(_ s: String) throws -> WeightType {
    if s == "ternary" || s == "1.58" { return .ternary }
    if s == "mixed3" || s == "mixed4" { return .mixed(bits: s == "mixed3" ? 3 : 4) }
    guard let b = Int32(s), (1...4).contains(b) else { throw CLIError("unknown bit width '\(s)': use 1, 2, 3, 4, ternary, mixed3 or mixed4") }
    return try WeightType(code: b)
}

extension String {
    /// Left-aligned in a column of `width` characters.
    func padded(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
