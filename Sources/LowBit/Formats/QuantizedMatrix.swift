/// A low-bit weight matrix W (rows × cols, y = W·x), quantized in groups along the columns.
///
/// Canonical layout ("row planes"), b = `bits` planes per weight, G = `groupSize`:
///   codes[((r · groups + g) · b + p) · G/8 + k/8] bit (k % 8)  = bit p of q[r, g·G + k]
///   scales[r · groups + g] = d,  offsets[r · groups + g] = m,   w[r, c] = d·q[r, c] + m
/// That is b bits per weight plus 64 bits per group (Float32 d and m; 0.5 bit/weight at G = 128).
/// The quantizer makes d and m exact Float16s, so kernel layouts keep them in half that
/// (`GroupParameters`).
/// The portable bit-serial and dequant kernels read it directly; the LUT kernel reads a permuted
/// copy (`LUTLayout`), the AVX2 dequant kernel a row-interleaved one (`DequantLayout`) and the
/// AVX2 bit-serial kernel row-wide planes (`BitSerialLayout`), each packed once, on first use
/// or by `prepare`. Save and load use the canonical
/// form, so files do not depend on any kernel's layout.
///
/// Immutable after creation except for that one-time packing, which is guarded: products from
/// several threads on one matrix are safe.
public final class QuantizedMatrix: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    public let groupSize: Int
    public let type: WeightType
    public let symmetric: Bool

    public var bits: Int { type.storageBits }
    public var groupsPerRow: Int { cols / groupSize }
    /// Bytes of one plane of one group.
    public var planeBytes: Int { groupSize / 8 }

    public let codes: AlignedBuffer
    public let scales: AlignedBuffer
    public let offsets: AlignedBuffer
    /// Mixed matrices only: the `MixedDataType` of each group, rows · groups bytes.
    public let groupTypes: AlignedBuffer?

    /// Kernel families' packed layouts, by `lowbit_kernel` value.
    private let layouts = Locked<[Int32: any KernelLayout]>([:])
    private let valueCodesCache = Locked<QuantizedMatrix?>(nil)

    /// Creates an all-zero matrix of the given shape, for quantizers and readers to fill.
    /// `allowWideCodes`: 5-bit integer codes, for the kernels' view of a 4-bit mixed matrix only.
    init(rows: Int, cols: Int, groupSize: Int, type: WeightType, symmetric: Bool, allowWideCodes: Bool = false) throws {
        try validateShape(rows: rows, cols: cols, groupSize: groupSize)
        switch type {
        case .integer(let b) where (1...4).contains(b) || (allowWideCodes && b == 5): break
        case .ternary, .mixed(bits: 3), .mixed(bits: 4): break
        default: throw LowBitError(.unsupported, "unsupported weight type \(type)")
        }
        self.rows = rows
        self.cols = cols
        self.groupSize = groupSize
        self.type = type
        self.symmetric = symmetric
        let groups = rows * (cols / groupSize)
        codes = try AlignedBuffer(byteCount: groups * type.storageBits * (groupSize / 8))
        scales = try AlignedBuffer(byteCount: groups * 4)
        offsets = try AlignedBuffer(byteCount: groups * 4)
        groupTypes = type.isMixed ? try AlignedBuffer(byteCount: groups) : nil
    }

    /// Bytes held: canonical codes and group parameters, plus any kernel layout packed so far.
    public var byteCount: Int {
        canonicalByteCount + layouts.withLock { $0.values.reduce(0) { $0 + $1.byteCount } }
            + (valueCodesCache.withLock { $0?.byteCount } ?? 0)
    }

    /// Bytes of the canonical form: codes, group parameters and (mixed) group types.
    public var canonicalByteCount: Int {
        codes.byteCount + scales.byteCount + offsets.byteCount + (groupTypes?.byteCount ?? 0)
    }

    /// Whether every scale and offset is exactly a Float16 (as the quantizer makes them): kernel
    /// layouts then keep them in half the bytes (`GroupParameters`).
    public var parametersAreHalfExact: Bool {
        let d = scales.floats(), m = offsets.floats()
        for i in 0..<(rows * groupsPerRow) where !GroupParameters.isHalf(d[i]) || !GroupParameters.isHalf(m[i]) {
            return false
        }
        return true
    }

    /// Bits per weight of the canonical form (codes plus group parameters).
    public var bitsPerWeight: Double {
        Double(canonicalByteCount) * 8 / Double(rows * cols)
    }

    // MARK: element access (for references, packing and tests; not for hot loops)

    @inlinable
    public func code(row r: Int, col c: Int) -> Int {
        let g = c / groupSize, k = c % groupSize
        let base = ((r * groupsPerRow + g) * bits) * planeBytes + k / 8
        var q = 0
        for p in 0..<bits {
            q |= Int((codes.bytes()[base + p * planeBytes] >> UInt8(k % 8)) & 1) << p
        }
        return q
    }

    @inlinable
    func setCode(_ q: Int, row r: Int, col c: Int) {
        let g = c / groupSize, k = c % groupSize
        let base = ((r * groupsPerRow + g) * bits) * planeBytes + k / 8
        let bit = UInt8(1) << UInt8(k % 8)
        for p in 0..<bits {
            let byte = codes.bytes() + base + p * planeBytes
            if (q >> p) & 1 == 1 { byte.pointee |= bit } else { byte.pointee &= ~bit }
        }
    }

    /// Writes the codes q[0 ..< groupSize] of one group, every plane a byte at a time (what
    /// quantizers and importers fill a matrix with: `setCode` per weight is far slower).
    func setGroupCodes(_ q: UnsafePointer<UInt8>, row r: Int, group g: Int) {
        let base = codes.bytes() + (r * groupsPerRow + g) * bits * planeBytes
        for byte in 0..<planeBytes {
            // Eight codes as the bytes of one word; bit p of byte j becomes bit j of the plane
            // byte: mask bit p of every byte, then one multiply gathers them into the top byte.
            let word = UInt64(littleEndian: UnsafeRawPointer(q + 8 * byte).loadUnaligned(as: UInt64.self))
            for p in 0..<bits {
                let spread = ((word >> UInt64(p)) & 0x0101_0101_0101_0101) &* 0x0102_0408_1020_4080
                base[p * planeBytes + byte] = UInt8(truncatingIfNeeded: spread >> 56)
            }
        }
    }

    /// Reads the codes of one group into q[0 ..< groupSize] (the inverse of `setGroupCodes`).
    func groupCodes(row r: Int, group g: Int, into q: UnsafeMutablePointer<UInt8>) {
        withCanonicalCodes { $0.groupCodes(row: r, group: g, into: q) }
    }

    /// The view of this matrix's buffers that layouts pack from, valid within `body`.
    func withCanonicalCodes<T>(_ body: (CanonicalCodes) throws -> T) rethrows -> T {
        try withExtendedLifetime(self) {
            try body(CanonicalCodes(rows: rows, cols: cols, bits: bits, groupSize: groupSize, codes: codes.bytes(),
                                    scales: scales.floats(), offsets: offsets.floats()))
        }
    }

    @inlinable public func scale(row r: Int, group g: Int) -> Float { scales.floats()[r * groupsPerRow + g] }
    @inlinable public func offset(row r: Int, group g: Int) -> Float { offsets.floats()[r * groupsPerRow + g] }

    /// The value code q stands for: q itself, or for a float group of a mixed matrix v(q).
    @inlinable
    public func level(row r: Int, col c: Int) -> Float {
        let q = code(row: r, col: c)
        guard case .mixed(let b) = type else { return Float(q) }
        let t = groupType(row: r, group: c / groupSize)
        return t == .integer ? Float(q) : Float(MixedDataType.fpValue(q, bits: b, type: t))
    }

    /// w[r, c] = d·q + m (d·v(q) + m for mixed matrices).
    @inlinable
    public func weight(row r: Int, col c: Int) -> Float {
        let g = c / groupSize
        return scale(row: r, group: g) * level(row: r, col: c) + offset(row: r, group: g)
    }

    /// The float matrix these codes stand for, row-major, into `out` (rows · cols floats).
    public func dequantize(into out: UnsafeMutablePointer<Float>) {
        parallelFor(rows) { r in
            for c in 0..<self.cols { out[r * self.cols + c] = self.weight(row: r, col: c) }
        }
    }

    public func dequantized() -> [Float] {
        [Float](unsafeUninitializedCapacity: rows * cols) { buf, n in
            dequantize(into: buf.baseAddress!)
            n = rows * cols
        }
    }

    /// A copy of the first `count` rows (the canonical form is row-major, so a prefix of each
    /// buffer): what `auto` times in place of a matrix far larger than the caches.
    func leadingRows(_ count: Int) throws -> QuantizedMatrix {
        let count = min(count, rows), groups = count * groupsPerRow
        let m = try QuantizedMatrix(rows: count, cols: cols, groupSize: groupSize, type: type, symmetric: symmetric,
                                    allowWideCodes: true)
        m.codes.bytes().update(from: codes.bytes(), count: groups * bits * planeBytes)
        m.scales.floats().update(from: scales.floats(), count: groups)
        m.offsets.floats().update(from: offsets.floats(), count: groups)
        if let from = groupTypes, let to = m.groupTypes { to.bytes().update(from: from.bytes(), count: groups) }
        return m
    }

    // MARK: kernel layouts

    /// The value in `cache`, made by `make` on first use (once, under the cache's lock).
    private func once<T>(_ cache: Locked<T?>, _ make: () throws -> T) throws -> T {
        try cache.withLock { cached in
            if let value = cached { return value }
            let value = try make()
            cached = value
            return value
        }
    }

    /// The LUT kernel's permuted copy of the codes, packed on first use.
    public func lutLayout() throws -> LUTLayout { try layout(.lut) { try LUTLayout(packing: $0) } }

    /// The dequant kernel's row-interleaved copy of the codes, packed on first use.
    public func dequantLayout() throws -> DequantLayout { try layout(.dequant) { try DequantLayout(packing: $0) } }

    /// The SIMD bit-serial kernels' row-wide planes, packed on first use.
    public func bitSerialLayout() throws -> BitSerialLayout {
        try layout(.bitSerial) { try BitSerialLayout(packing: $0) }
    }

    /// `family`'s layout, made by `make` on first use (once, under the cache's lock).
    private func layout<L: KernelLayout>(_ family: KernelFamily, _ make: (CanonicalCodes) throws -> L) throws -> L {
        try layouts.withLock { cache in
            if let cached = cache[family.code] as? L { return cached }
            let value = try withCanonicalCodes(make)
            cache[family.code] = value
            return value
        }
    }

    /// For a mixed matrix, the integer matrix of value codes its products run on (built on first
    /// use, once); for any other matrix, the matrix itself.
    public func valueCodes() throws -> QuantizedMatrix {
        guard type.isMixed else { return self }
        return try once(valueCodesCache) { try buildValueCodes() }
    }

    /// Families whose kernel layout is packed now.
    public var packedLayouts: Set<KernelFamily> {
        if type.isMixed { return valueCodesCache.withLock { $0?.packedLayouts } ?? [] }
        let codes = layouts.withLock { Set($0.keys) }
        return Set(KernelFamilies.all.map { $0.family }.filter { codes.contains($0.code) })
    }

    /// Frees a family's packed layout (it is packed again if that family runs later). Products
    /// running on it keep it alive until they end.
    public func releaseLayout(_ family: KernelFamily) {
        if type.isMixed { valueCodesCache.withLock { $0?.releaseLayout(family) }; return }
        _ = layouts.withLock { $0.removeValue(forKey: family.code) }
    }

    /// Flushes from every cache level what a family's next product reads (where
    /// `AlignedBuffer.canEvictFromCache`; elsewhere nothing): its packed layout, or the canonical
    /// codes where it has none. `auto`: every candidate's. The contents are unchanged.
    public func evictLayoutFromCache(_ family: KernelFamily) {
        if type.isMixed { valueCodesCache.withLock { $0 }?.evictLayoutFromCache(family); return }
        if family == .auto { return KernelFamilies.autoCandidates.forEach { evictLayoutFromCache($0) } }
        if let layout = layouts.withLock({ $0[family.code] }) { return layout.evictFromCache() }
        for b in [codes, scales, offsets] { b.evictFromCache() }
    }

    /// Reads once every byte a product of `family` streams (its layout, or the canonical codes
    /// and parameters where it has none): the memory-read baseline of the same bytes.
    public func readLayout(_ family: KernelFamily) throws -> UInt64 {
        if type.isMixed { return try valueCodes().readLayout(family) }
        let resolved = family == .auto ? try AutoKernel.choice(self, n: 1) : family
        if let layout = layouts.withLock({ $0[resolved.code] }) { return layout.readOnce() }
        return [codes, scales, offsets].reduce(0) { $0 ^ MemoryBaseline.read($1) }
    }

    /// Packs the layout a kernel family needs now rather than on its first product.
    public func prepare(_ kernel: KernelFamily) throws {
        if type.isMixed { if kernel != .reference { try valueCodes().prepare(kernel) }; return }
        if kernel == .auto { return try KernelFamilies.autoCandidates.forEach { try prepare($0) } }
        _ = try kernel.kernels?.pack(self)
    }
}
