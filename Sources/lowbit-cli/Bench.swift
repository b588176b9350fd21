func runBench(_ args: Arguments) throws { throw CLIError("bench: not yet") }
