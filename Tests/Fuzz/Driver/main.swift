#if canImport(Glibc)
import Glibc
#endif
import LowBit
import LowBitFuzzTargets

// lowbit-fuzz TARGET [libFuzzer options and corpus folders]
//
// Built with `-sanitize=fuzzer,address -DLOWBIT_FUZZ` (scripts/fuzz.sh), this hands TARGET's
// entry point to libFuzzer. Built plainly, it runs TARGET once on each file named, which is how
// a crash input is reproduced without the fuzzing runtime.

let arguments = CommandLine.arguments
guard arguments.count >= 2, let target = FuzzTargets.named(arguments[1]) else {
    let names = FuzzTargets.all.map(\.name).joined(separator: ", ")
    fputs("usage: lowbit-fuzz TARGET [libFuzzer options] [corpus folders] (targets: \(names))\n", stderr)
    exit(2)
}
if target.name == "tokenizer", FuzzTargets.vocabulary == nil {
    fputs("lowbit-fuzz: the tokenizer target needs LOWBIT_MODEL, a GGUF model with a vocabulary\n", stderr)
    exit(2)
}
nonisolated(unsafe) var selected = target

#if LOWBIT_FUZZ
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

// libFuzzer sees the program name and the options after TARGET.
var fuzzerArguments = [arguments[0]] + arguments.dropFirst(2)
var argc = Int32(fuzzerArguments.count)
var cStrings: [UnsafeMutablePointer<CChar>?] = fuzzerArguments.map { strdup($0) } + [nil]
let status = cStrings.withUnsafeMutableBufferPointer { buffer -> Int32 in
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = buffer.baseAddress
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        selected.run(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
        return 0
    }
}
exit(status)
#else
for path in arguments.dropFirst(2) {
    do {
        selected.run(try FileIO.read(path))
        print("\(path): ok")
    } catch {
        fputs("lowbit-fuzz: \(error)\n", stderr)
        exit(1)
    }
}
#endif
