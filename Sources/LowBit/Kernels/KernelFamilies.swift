/// A kernel family's identity: its name and its `lowbit_kernel` value in C. The families are the
/// entries of `KernelFamilies.all`; `auto` is not a family but the choice among them.
public struct KernelFamily: Hashable, Sendable, CustomStringConvertible {
    /// Its `lowbit_kernel` value.
    public let code: Int32
    /// Its name on the command line and in Python.
    public let description: String

    init(code: Int32, name: String) { (self.code, self.description) = (code, name) }

    public static let auto = KernelFamily(code: 0, name: "auto")

    /// `auto`, then every family in `KernelFamilies.all`.
    public static var allCases: [KernelFamily] { [.auto] + KernelFamilies.all.map { $0.family } }

    public init(code: Int32) throws {
        guard let k = KernelFamily.allCases.first(where: { $0.code == code }) else {
            let known = KernelFamily.allCases.map { "\($0.code) (\($0))" }.joined(separator: ", ")
            throw LowBitError(.invalidArgument, "unknown kernel \(code): use \(known)")
        }
        self = k
    }

    public init(name: String) throws {
        guard let k = KernelFamily.allCases.first(where: { $0.description == name.lowercased() }) else {
            let known = KernelFamily.allCases.map(\.description).joined(separator: ", ")
            throw LowBitError(.invalidArgument, "unknown kernel '\(name)': use \(known)")
        }
        self = k
    }

    /// Every family, without `auto`, in the order of `KernelFamilies.all`.
    public static var families: [KernelFamily] { KernelFamilies.all.map { $0.family } }

    /// The activation precisions the family takes, its default first; nil where it ignores the
    /// precision asked for (LUT, reference) and for `auto`, which takes 8 or any family's.
    public var activationBits: [Int]? { kernels?.activationBits }

    /// How the family runs at the SIMD tier in use, said plainly (`lowbit info`); nil for `auto`.
    public var note: String? { kernels?.note }

    /// The family's kernels (nil for `auto`).
    var kernels: (any FamilyKernels.Type)? { KernelFamilies.all.first { $0.family == self } }
}

/// What a kernel family implements, in its own folder under Kernels/: its identity, the
/// activation precisions it takes, the layout it packs from a matrix for the SIMD tiers, and its
/// product. `QuantizedMatrix` caches the layouts, `auto` measures the candidates, and
/// `lowbit bench`, `lowbit info` and the bindings (through `lowbit_kernel_name`) list the families
/// from `KernelFamilies.all`: a new family is its folder and one line there.
protocol FamilyKernels {
    static var family: KernelFamily { get }
    /// The activation precisions it takes, its default first; nil where it ignores the precision
    /// asked for (LUT's tables are int8 and the reference's sums Float64 whatever it is).
    static var activationBits: [Int]? { get }
    /// Whether `auto` measures it (and `lowbit bench` runs it by default).
    static var autoCandidate: Bool { get }
    /// How it runs at the active tier, said plainly for `lowbit info`.
    static var note: String { get }
    /// Its layout of `m` for the active tier, or nil where it runs the canonical codes there.
    /// `QuantizedMatrix.packedLayout` packs it once per matrix and keeps it.
    static func pack(_ m: QuantizedMatrix) throws -> (any KernelLayout)?
    /// Y = X·Wᵀ for activations already checked, at a precision from `activationBits`; a mixed
    /// matrix arrives as its value codes.
    static func multiply(_ m: QuantizedMatrix, x: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>,
                         activationBits: Int) throws
}

/// A family whose layout runs alone, without the matrix (`PackedMatrix`).
protocol PackedFamilyKernels: FamilyKernels {
    static func multiply(packed layout: any KernelLayout, rows: Int, cols: Int, groupSize: Int, x: UnsafePointer<Float>,
                         n: Int, y: UnsafeMutablePointer<Float>, activationBits: Int) throws
    static func weight(packed layout: any KernelLayout, row: Int, col: Int, groupSize: Int) -> Float
}

/// A family's packed copy of a matrix.
protocol KernelLayout: AnyObject, Sendable {
    /// The bytes a product streams.
    var byteCount: Int { get }
    /// The buffers a product streams: codes and parameters.
    var buffers: [AlignedBuffer] { get }
}

extension KernelLayout {
    /// Flushes the layout from every cache level (where `AlignedBuffer.canEvictFromCache`).
    func evictFromCache() { buffers.forEach { $0.evictFromCache() } }

    /// Reads every byte a product streams, once: the memory-read baseline of the same bytes.
    func readOnce() -> UInt64 { buffers.reduce(0) { $0 ^ MemoryBaseline.read($1) } }
}

/// The kernel families, in the order of their `lowbit_kernel` values.
enum KernelFamilies {
    static let all: [any FamilyKernels.Type] = [LUTFamily.self, BitSerialFamily.self, DequantFamily.self,
                                                ReferenceFamily.self]

    /// The families `auto` chooses between.
    static var autoCandidates: [KernelFamily] { all.filter { $0.autoCandidate }.map { $0.family } }

    /// The family `auto` runs for a precision other than 8: the first that takes it.
    static func family(forActivationBits bits: Int) -> KernelFamily? {
        all.first { $0.activationBits?.contains(bits) == true }?.family
    }

    /// "2, 4 or 8 (bitserial), 8, 16 or 32 (dequant)": what each family takes, for messages.
    static var activationBitsSummary: String {
        all.compactMap { f in
            f.activationBits.map { "\($0.sorted().map(String.init).joined(separator: ", ")) (\(f.family))" }
        }
            .joined(separator: "; ")
    }
}
