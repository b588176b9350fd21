import LowBit

/// `--name value` options and bare words, with typed getters that fail with a usage message.
/// `-h` is `--help`, `-n` is `--n` (llama.cpp's spelling) and `-o` is `--output`; any other single-dash word is kept
/// to be refused by `allow`, with the option it most likely meant.
struct Arguments {
    var words: [String] = []
    var options: [String: String] = [:]
    var flags: Set<String> = []
    var singleDash: [String] = []

    /// Options that take no value.
    static let booleanFlags: Set<String> = ["json", "help", "version", "symmetric", "full", "verify", "chat",
                                            "with-output", "type-errors", "raw-sensitivity", "contention", "elastic"]

    init(_ args: ArraySlice<String>) throws {
        var i = args.startIndex
        while i < args.endIndex {
            let a = args[i]
            if a == "-n" || a == "-o", i + 1 < args.endIndex {  // llama.cpp's spellings of --n and --output
                options[a == "-n" ? "n" : "output"] = args[i + 1]
                i += 2
                continue
            }
            if a == "-h" {
                flags.insert("help")
            } else if a.hasPrefix("-"), !a.hasPrefix("--"), a.count > 1, Double(a) == nil {
                singleDash.append(a)
            } else if a.hasPrefix("--") {
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

    /// A finite number within `range`.
    func float(_ name: String, default value: Float, in range: ClosedRange<Float>) throws -> Float {
        guard let s = options[name] else { return value }
        guard let v = Float(s), v.isFinite, range.contains(v) else {
            throw CLIError("--\(name) expects a number in \(range.lowerBound)...\(range.upperBound), got '\(s)'")
        }
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

    /// Rejects options this command does not know, so typos do not pass silently, naming the
    /// known option nearest to each.
    func allow(_ known: Set<String>) throws {
        for word in singleDash {
            let name = String(word.drop { $0 == "-" })
            throw CLIError("unknown option \(word): options take two dashes" + Arguments.hint(name, known))
        }
        for name in Set(options.keys).union(flags).sorted() where !known.contains(name) && name != "help" {
            throw CLIError("unknown option --\(name)" + Arguments.hint(name, known))
        }
    }

    /// " (did you mean --x?)" for the known option nearest to `name`, if any is near; for a
    /// single letter, the options it begins.
    static func hint(_ name: String, _ known: Set<String>) -> String {
        if name.count == 1 {
            let starting = known.filter { $0.hasPrefix(name) }.sorted().map { "--" + $0 }
            return starting.isEmpty ? "" : " (did you mean \(starting.joined(separator: " or "))?)"
        }
        let near = known.map { ($0, editDistance(name, $0)) }.filter { $0.1 <= max(1, name.count / 3) }
        guard let best = near.min(by: { ($0.1, $0.0) < ($1.1, $1.0) }) else { return "" }
        return " (did you mean --\(best.0)?)"
    }
}

/// Levenshtein distance: single-character insertions, deletions and substitutions.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var row = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var previous = row[0]
        row[0] = i
        for j in stride(from: 1, through: b.count, by: 1) {
            let substitution = previous + (a[i - 1] == b[j - 1] ? 0 : 1)
            previous = row[j]
            row[j] = min(substitution, row[j] + 1, row[j - 1] + 1)
        }
    }
    return a.isEmpty ? b.count : row[b.count]
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Parses a weight type name: 1, 2, 3, 4 or ternary.
func parseWeightType(_ s: String) throws -> WeightType {
    if s == "ternary" || s == "1.58" { return .ternary }
    if s == "mixed3" || s == "mixed4" { return .mixed(bits: s == "mixed3" ? 3 : 4) }
    guard let b = Int32(s), (1...4).contains(b) else {
        throw CLIError("unknown bit width '\(s)': use 1, 2, 3, 4, ternary, mixed3 or mixed4")
    }
    return try WeightType(code: b)
}

extension String {
    /// Left-aligned in a column of `width` characters.
    func padded(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
