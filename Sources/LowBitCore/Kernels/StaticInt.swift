/// A number fixed at compile time, for kernels written once for every bit width or tile size:
/// a generic kernel gets one specialized copy per number, with the branches on it folded away.
/// Passed as a plain `Int`, the choice was the inliner's, and for the larger kernels it kept one
/// shared copy whose inner loops tested the width and spilled accumulators to the stack.
package protocol StaticInt { static var value: Int { get } }

package enum Static0: StaticInt { @inlinable package static var value: Int { 0 } }
package enum Static1: StaticInt { @inlinable package static var value: Int { 1 } }
package enum Static2: StaticInt { @inlinable package static var value: Int { 2 } }
package enum Static3: StaticInt { @inlinable package static var value: Int { 3 } }
package enum Static4: StaticInt { @inlinable package static var value: Int { 4 } }
package enum Static5: StaticInt { @inlinable package static var value: Int { 5 } }
package enum Static6: StaticInt { @inlinable package static var value: Int { 6 } }
package enum Static8: StaticInt { @inlinable package static var value: Int { 8 } }
