#if canImport(Glibc)
import Glibc
#endif
import LowBit

let usage = """
usage: lowbit <command> [options]

commands:
  info                 version, CPU features, kernel families and the tier each runs at
  demo                 quantize a random matrix at every bit width; error, size and time per family
                       [--rows 4096] [--cols 4096] [--group-size 128] [--threads T]
  bench                kernel benchmark against a memory-read baseline (see `lowbit bench --help`)
  stack                BitStack: build, inspect and run memory-elastic weights (see `lowbit stack`)
  gguf FILE            validate a GGUF file and list its metadata and tensors [--type-errors]
  run                  generate text: --model PATH --prompt TEXT [--chat] [-n N] [--temp T] [--top-p P]
  perplexity           --model PATH --text FILE [--ctx 512] [--chunks C]
  report               --model PATH --text FILE [--chunks 2] [--calibration-text FILE]
                       [--stack FILE.lbs --budgets A,B,C]: the table of perplexity, decode speed and
                       weight memory for every way of holding the weights
                       run and perplexity take --weights reference|q4_1 [--act-bits 8|16|32: q4_1's
                       activation precision; default 16 on dequant/auto, so it agrees with the
                       reference; 8 = int8 as llama.cpp], or --bits 1|2|3|4|ternary|mixed3|mixed4
                       [--group-size 64] [--kernel lut|bitserial|dequant|auto] [--calibration-text FILE
                       (calibrated: activation-aware scales and error feedback)], or --stack PATH
                       --budget SIZE
  --version            print the version

exit status: 0 success; 1 failure (a file missing, unreadable or malformed; out of memory);
2 a wrong request (unknown command or option, a value out of range or not supported)
"""

func printError(_ message: String) {
    fputs("lowbit: \(message)\n", stderr)
}

func run(_ argv: [String]) throws -> Int32 {
    let args = try Arguments(argv.dropFirst())
    if args.flags.contains("version") { print("lowbit \(LowBitVersion.string)"); return 0 }
    guard let command = args.words.first else {
        print(usage)
        return args.flags.contains("help") ? 0 : 2
    }
    // bench takes a list of thread counts of its own.
    if command != "bench", let t = args.options["threads"] {
        guard let n = Int(t), n >= 1 else { throw CLIError("--threads expects a positive integer, got '\(t)'") }
        try Runtime.setThreads(n)
    }
    switch command {
    case "info": try args.allow([]); printInfo()
    case "demo": try runDemo(args)
    case "bench": try runBench(args)
    case "stack": try runStack(args)
    case "gguf": try runGGUF(args)
    case "run": try runGenerate(args)
    case "perplexity": try runPerplexity(args)
    case "report": try runReport(args)
    default: throw CLIError("unknown command '\(command)'\n\(usage)")
    }
    return 0
}

do {
    exit(try run(CommandLine.arguments))
} catch let e as LowBitError {
    printError("\(e.message) [\(e.status.summary)]")
    // 2: the request itself is wrong (a value out of range, an option not supported), as for
    // usage errors; 1: it could not be carried out (files missing or malformed, memory).
    exit(e.status == .invalidArgument || e.status == .unsupported ? 2 : 1)
} catch {
    printError("\(error)")
    exit(2)
}
