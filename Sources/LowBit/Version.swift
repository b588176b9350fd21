/// The library version; Include/lowbit.h's LOWBIT_VERSION_* macros must match (tests check).
public enum LowBitVersion {
    public static let major = 0, minor = 2, patch = 0
    public static var string: String { "\(major).\(minor).\(patch)" }
    public static var number: Int { major * 10000 + minor * 100 + patch }
}
