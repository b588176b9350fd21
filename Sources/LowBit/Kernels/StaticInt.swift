/// A number fixed at compile time, for kernels written once for every bit width or tile size:
/// a generic kernel gets one specialized copy per number, with the branches on it folded away.
/// Passed as a plain `Int`, the choice was the inliner's, and for the larger kernels it kept one
/// shared copy whose inner loops tested the width and spilled accumulators to the stack.
protocol StaticInt { static var value: Int { get } }

enum Static0: StaticInt { static var value: Int { 0 } }
enum Static1: StaticInt { static var value: Int { 1 } }
enum Static2: StaticInt { static var value: Int { 2 } }
enum Static3: StaticInt { static var value: Int { 3 } }
enum Static4: StaticInt { static var value: Int { 4 } }
enum Static5: StaticInt { static var value: Int { 5 } }
enum Static6: StaticInt { static var value: Int { 6 } }
enum Static8: StaticInt { static var value: Int { 8 } }
