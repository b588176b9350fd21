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
  quantize             --model PATH -o OUT.gguf (--bits B | --target-size SIZE | --elastic --min-size A
                       --max-size B) [--calibration-text FILE]: a lowbit model file, calibrated and
                       per-tensor sized (elastic: one for every budget from A to B), that loads as it is
  report               --model PATH --text FILE [--chunks 2] [--calibration-text FILE]
                       [--stack FILE.lbs --budgets A,B,C]: the table of perplexity, decode speed and
                       weight memory for every way of holding the weights
                       run and perplexity take --weights file|reference [--act-bits 8|16|32: file's
                       activation precision; default 16 on dequant/auto, so it agrees with the
                       reference; 8 = int8 as llama.cpp], or --bits 1|2|3|4|ternary|mixed3|mixed4
                       [--group-size 64] [--kernel lut|bitserial|dequant|auto] [--calibration-text FILE
                       (calibrated: activation-aware scales and error feedback)], or --stack PATH
                       --budget SIZE; an elastic model file takes --budget SIZE
  --version            print the version

exit status: 0 success; 1 failure (a file missing, unreadable or malformed; out of memory);
2 a wrong request (unknown command or option, a value out of range or not supported)
"""

let weightOptionsHelp = """
weights (run, perplexity; one of):
  --weights file       the file's own blocks (the default; Q4_0/Q4_1/Q4_K, Q5_0/Q5_1/Q5_K and TQ1_0/TQ2_0
                       as lowbit codes, Q2_K/Q3_K/Q6_K, IQ4 and Q8_0 as their blocks, decoded as
                       products read them, float types as float32; `lowbit gguf` lists a file's)
                       [--kernel auto|lut|bitserial|dequant]
                       [--act-bits 8|16|32: activation precision; default 16 on dequant and auto, so
                       the model agrees with the reference; 8 = int8, as llama.cpp]
                       [--budget SIZE: an elastic model file (`lowbit quantize --elastic`) holds
                       the largest of its levels whose weights fit SIZE; default its largest]
  --weights reference  the file's weights in float32
  --bits 1|2|3|4|ternary|mixed3|mixed4 [--group-size 64] [--kernel K] [--calibration-text FILE]
                       requantized (calibrated: activation-aware scales and error feedback)
  --stack FILE.lbs --budget SIZE
                       a BitStack of the model (`lowbit stack build --model`) under a memory budget
--threads T            threads for the products (default: one per CPU)
"""

/// What `lowbit COMMAND --help` prints.
let commandHelp: [String: String] = [
    "info": "usage: lowbit info\nversion, CPU features, the SIMD tiers this CPU runs, and how each kernel family runs",
    "demo": """
        usage: lowbit demo [--rows 4096] [--cols 4096] [--group-size 128] [--n 1] [--threads T]
        quantizes a random matrix at every bit width; error, size and time of each kernel family
        """,
    "gguf": """
        usage: lowbit gguf FILE.gguf [--type-errors [--group-size 128]]
        validates a GGUF file and lists its metadata and tensors; --type-errors adds each tensor's
        error when requantized to every lowbit type
        """,
    "run": """
        usage: lowbit run --model FILE.gguf --prompt TEXT [--chat] [-n 64] [--temp 0] [--top-p 1] [--seed 1]
        generates text after the prompt (--chat: in the model's chat template), printed as it comes,
        then the prompt and decode speeds. --temp 0 is greedy.
        """ + "\n" + weightOptionsHelp,
    "perplexity": """
        usage: lowbit perplexity --model FILE.gguf --text FILE [--ctx 512] [--chunks C]
        perplexity by llama-perplexity's protocol: chunks of ctx tokens, second halves scored
        """ + "\n" + weightOptionsHelp,
    "report": """
        usage: lowbit report --model FILE.gguf --text FILE [--chunks 2] [--ctx 512] [--decode 32]
                             [--calibration-text FILE] [--stack FILE.lbs --budgets 60MB,75MB,90MB] [--threads T]
                             [--models A.gguf,E.gguf@62MiB] [--plot FILE.svg [--reference-points FILE]]
        the table of perplexity, decode and prefill speed and weight memory for every way of holding
        the weights, one row at a time (calibrated and stack rows when their options are given);
        --models adds rows for model files (`lowbit quantize`; FILE@SIZE: an elastic one under
        that budget, one line through its budgets in the plot); --plot draws perplexity against
        weight memory, with other tools' points from a file of "label,MiB,perplexity" lines (the
        first '#' line names their source)
        """,
    "bench": benchUsage + "\n" + modelBenchUsage,
    "stack": stackUsage,
    "quantize": quantizeUsage,
]

func printError(_ message: String) {
    fputs("lowbit: \(message)\n", stderr)
}

func run(_ argv: [String]) throws -> Int32 {
    let args = try Arguments(argv.dropFirst())
    if args.flags.contains("version") { print("lowbit \(LowBitVersion.string)"); return 0 }
    guard let command = args.words.first else {
        try args.allow(["help", "version"])
        print(usage)
        return args.flags.contains("help") ? 0 : 2
    }
    if args.flags.contains("help") {
        guard let help = commandHelp[command] else { throw CLIError("unknown command '\(command)'\n\(usage)") }
        print(help)
        return 0
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
    case "quantize": try runQuantize(args)
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
