#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A BitStack file opened under a memory budget.
///
/// The longest prefix of the stack that fits the budget is resident (every tensor at least its
/// first block). `setBudget` reads only the blocks a larger budget adds, or drops only the tail
/// for a smaller one. Products take a snapshot of the resident blocks, so a budget change never
/// frees memory under a running product (the old blocks go when the last product holding them
/// ends) and every product sees one consistent set of blocks.
public final class Stack: @unchecked Sendable {
    public let path: String
    public let index: StackFile.Index
    let fd: Int32
    let tensorNumbers: [String: Int]
    /// Header and index bytes, held for as long as the stack is open.
    public var fixedBytes: Int { index.dataOffset }

    /// A resident block: signs in the LUT layout, factors transposed (uT: k × rows, vT: k × cols)
    /// so the product reads them as contiguous Float16 rows.
    final class LoadedBlock {
        let signs: SignMatrix
        let uT: [Float16], vT: [Float16]
        var bytes: Int { signs.byteCount + 2 * (uT.count + vT.count) }
        init(signs: SignMatrix, uT: [Float16], vT: [Float16]) { (self.signs, self.uT, self.vT) = (signs, uT, vT) }
    }

    /// An immutable set of resident blocks: the first `count` of the stack.
    final class Residency {
        let blocks: [LoadedBlock]
        let perTensor: [[LoadedBlock]]
        let bytes: Int
        init(_ blocks: [LoadedBlock], index: StackFile.Index) {
            self.blocks = blocks
            var per = [[LoadedBlock]](repeating: [], count: index.tensors.count)
            for (i, b) in blocks.enumerated() { per[index.blocks[i].tensor].append(b) }
            perTensor = per
            bytes = blocks.reduce(0) { $0 + $1.bytes }
        }
    }

    private let residency: Locked<Residency>
    private let budgetLock = Locked<Void>(())
    private let readCounter = Atomic<Int>(0)

    /// Memory a block takes once loaded: sign bits in the LUT layout (rows padded to 16) plus
    /// one shared parameter block, and the Float16 factors.
    public static func memoryBytes(_ t: StackFile.Tensor) -> Int {
        (t.rows + 15) / 16 * (t.cols / 16) * 32 + 128 + 2 * t.rank * (t.rows + t.cols)
    }

    public init(path: String, budget: Int) throws {
        let (fd, index) = try Stack.openIndex(path)
        self.fd = fd
        self.index = index
        self.path = path
        var numbers: [String: Int] = [:]
        for (i, t) in index.tensors.enumerated() { numbers[t.name] = i }
        tensorNumbers = numbers
        residency = Locked(Residency([], index: index))
        try setBudget(budget)  // on failure deinit closes fd
    }

    /// The validated header and index of a stack file, without reading any block.
    public static func readIndex(_ path: String) throws -> StackFile.Index {
        let (fd, index) = try openIndex(path)
        close(fd)
        return index
    }

    static func openIndex(_ path: String) throws -> (Int32, StackFile.Index) {
        let (fd, size) = try FileIO.openRegular(path)
        do {
            var head = [UInt8](repeating: 0, count: min(size, StackFile.headerSize))
            try Stack.readFully(fd, into: &head, at: 0, path: path)
            // The header says how long the index is; read exactly that much more, never more than
            // the file holds (decodeIndex checks the header's fields against the file's size).
            var indexEnd = StackFile.headerSize
            if head.count == StackFile.headerSize {
                let indexBytes = head.withUnsafeBytes {
                    UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
                }
                if indexBytes < UInt64(size) { indexEnd = StackFile.padded(StackFile.headerSize + Int(indexBytes)) }
            }
            var headAndIndex = [UInt8](repeating: 0, count: min(indexEnd, size))
            try Stack.readFully(fd, into: &headAndIndex, at: 0, path: path)
            return (fd, try headAndIndex.withUnsafeBytes { try StackFile.decodeIndex($0, fileSize: size) })
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    static func readFully(_ fd: Int32, into buffer: inout [UInt8], at offset: Int, path: String) throws {
        try buffer.withUnsafeMutableBytes { try FileIO.readFully(fd, into: $0, at: offset, path: path) }
    }

    /// Resident bytes with the first `count` blocks of the stack.
    public func bytesWithPrefix(_ count: Int) -> Int {
        fixedBytes + index.blocks[0..<min(max(count, 0), index.blocks.count)].reduce(0) {
            $0 + Stack.memoryBytes(index.tensors[$1.tensor])
        }
    }

    /// Every tensor at its first block, plus the fixed overhead.
    public var minimumBytes: Int { bytesWithPrefix(index.tensors.count) }

    /// `minimumBytes` of a stack from its index alone.
    public static func minimumBudget(_ index: StackFile.Index) -> Int {
        index.dataOffset + index.blocks[0..<index.tensors.count].reduce(0) {
            $0 + memoryBytes(index.tensors[$1.tensor])
        }
    }
    public var totalBytes: Int { bytesWithPrefix(index.blocks.count) }
    public var residentBytes: Int { fixedBytes + residency.withLock { $0.bytes } }
    public var residentBlockCount: Int { residency.withLock { $0.blocks.count } }
    /// Bytes of block data read from the file so far.
    public var bytesRead: Int { readCounter.load(ordering: .relaxed) }

    public func blocks(_ name: String) throws -> (resident: Int, total: Int) {
        let t = try tensorNumber(name)
        return (residency.withLock { $0.perTensor[t].count }, index.tensors[t].blocks)
    }

    public func tensorNumber(_ name: String) throws -> Int {
        guard let t = tensorNumbers[name] else {
            let some = index.tensors.prefix(5).map { "'\($0.name)'" }.joined(separator: ", ")
            let more = index.tensors.count > 5 ? ", ..." : ""
            throw LowBitError(.invalidArgument, "no tensor '\(name)' in \(path) (it has \(some)\(more))")
        }
        return t
    }

    /// Holds the longest prefix of the stack that fits `budget` bytes: reads the blocks a
    /// larger budget adds (one sequential read), drops the tail for a smaller one. A budget below
    /// `minimumBytes` is an error and changes nothing. Safe while other threads run products.
    public func setBudget(_ budget: Int) throws {
        try budgetLock.withLock { _ in
            guard budget >= minimumBytes else {
                throw LowBitError(.invalidArgument,
                                  "budget \(budget) bytes is below this stack's minimum of \(minimumBytes) bytes "
                                  + "(every tensor at one block plus \(fixedBytes) bytes of index)")
            }
            var count = index.tensors.count, bytes = minimumBytes
            while count < index.blocks.count {
                let next = bytes + Stack.memoryBytes(index.tensors[index.blocks[count].tensor])
                if next > budget { break }
                bytes = next
                count += 1
            }
            let current = residency.withLock { $0 }
            if count == current.blocks.count { return }
            // Blocks let go, and the file's bytes read for new ones, return to the system.
            defer { AlignedBuffer.releaseFreeMemory() }
            if count < current.blocks.count {
                let kept = Residency(Array(current.blocks[0..<count]), index: index)
                residency.withLock { $0 = kept }
                return
            }
            let added = try load(current.blocks.count..<count)
            let grown = Residency(current.blocks + added, index: index)
            residency.withLock { $0 = grown }
        }
    }

    /// Reads and checks blocks `range` of the stack, with the padding after each, in one pread.
    func load(_ range: Range<Int>) throws -> [LoadedBlock] {
        let start = index.blocks[range.lowerBound].offset
        let end = range.upperBound < index.blocks.count ? index.blocks[range.upperBound].offset : index.dataBytes
        var data = [UInt8](repeating: 0, count: end - start)
        try Stack.readFully(fd, into: &data, at: index.dataOffset + start, path: path)
        readCounter.add(data.count, ordering: .relaxed)
        for i in range {
            let e = index.blocks[i]
            let padEnd = i + 1 < index.blocks.count ? index.blocks[i + 1].offset : index.dataBytes
            guard data[(e.offset + e.length - start)..<(padEnd - start)].allSatisfy({ $0 == 0 }) else {
                throw LowBitError(.badFormat, "not a valid lowbit stack file: nonzero padding after block \(i)")
            }
        }
        return try data.withUnsafeBytes { raw in
            try range.map { i in
                let e = index.blocks[i], t = index.tensors[e.tensor]
                let bytes = UnsafeRawBufferPointer(rebasing: raw[(e.offset - start)..<(e.offset - start + e.length)])
                guard CRC32.checksum(bytes) == e.crc else {
                    throw LowBitError(.badFormat,
                                      "not a valid lowbit stack file: block \(i) ('\(t.name)' level \(e.level)) "
                                      + "checksum mismatch")
                }
                let rowBytes = t.cols / 8
                let signBase = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
                let signs = try SignMatrix(rows: t.rows, cols: t.cols, signBits: signBase)
                // File: U rows × k, then V cols × k; memory: transposed.
                let factors = bytes.baseAddress! + t.rows * rowBytes
                func half(_ base: UnsafeRawPointer, _ i: Int) -> Float16 {
                    Float16(bitPattern: UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i,
                                                                                as: UInt16.self)))
                }
                let k = t.rank
                let uT = (0..<(k * t.rows)).map { half(factors, ($0 % t.rows) * k + $0 / t.rows) }
                let vT = (0..<(k * t.cols)).map { half(factors + 2 * t.rows * k, ($0 % t.cols) * k + $0 / t.cols) }
                guard uT.allSatisfy({ $0.isFinite }), vT.allSatisfy({ $0.isFinite }) else {
                    throw LowBitError(.badFormat, "not a valid lowbit stack file: block \(i) has non-finite factors")
                }
                return LoadedBlock(signs: signs, uT: uT, vT: vT)
            }
        }
    }

    /// Y = X·Wᵀ for tensor `name` with its resident blocks, x n × cols, y n × rows:
    /// W·x = Σ_blocks u ⊙ (S·(v ⊙ x/s)), each block one 1-bit LUT product with n·k activation rows
    /// (from `rebuildMinimumRows` rows on, `multiplyRebuilt` instead).
    ///
    /// Two steps on the thread pool for all blocks at once (in chunks of blocks whose tables fit
    /// `chunkBytes`): first z = v ⊙ x/s and its tables for every (block, activation row), then,
    /// per range of row blocks, each block's S·z for those rows and y += u ⊙ (S·z). Two pool
    /// dispatches per product rather than two per block; every thread count adds the blocks in
    /// the same order, so results do not depend on it.
    public func multiply(_ name: String, _ x: UnsafePointer<Float>, n: Int,
                         into y: UnsafeMutablePointer<Float>) throws {
        try multiply(name, x, n: n, into: y, chunkBytes: 4 << 20)
    }

    /// `chunkBytes`: the most tables of one pass of sign products; `sliceBytes`: the largest slice
    /// of rebuilt weights (`multiplyRebuilt`). Tests set them small to take every path.
    func multiply(_ name: String, _ x: UnsafePointer<Float>, n: Int, into y: UnsafeMutablePointer<Float>,
                  chunkBytes: Int,
                  sliceBytes: Int = Runtime.halfL2Bytes) throws {
        let t = try tensorNumber(name)
        let info = index.tensors[t]
        let rows = info.rows, cols = info.cols, k = info.rank
        try checkActivations(x, n: n, rows: rows, cols: cols)
        let blocks = residency.withLock { $0.perTensor[t] }   // a snapshot: stays alive until we return
        for i in 0..<(n * rows) { y[i] = 0 }
        guard let firstBlock = blocks.first else { return }
        if n >= Stack.rebuildMinimumRows {
            return try multiplyRebuilt(info, blocks, x, n: n, into: y, sliceBytes: sliceBytes)
        }
        let activationRows = try checkedProduct(n, k, what: "workspace")
        let tableBytes = firstBlock.signs.tableBytes, rowBlocks = firstBlock.signs.rowBlocks
        let blockBytes = try checkedProduct(activationRows, cols * 4 + tableBytes, what: "workspace")
        let chunk = max(1, min(blocks.count, chunkBytes / blockBytes))
        let scaledBytes = try checkedProduct(n, cols, 4, what: "workspace")
        let partialBytes = try checkedProduct(activationRows, rows, 4, what: "workspace")
        let ws = try Workspace.current.reserve(scaledBytes + partialBytes + chunk * blockBytes, slot: 1)
        let scaled = ws.assumingMemoryBound(to: Float.self)
        let partial = (ws + scaledBytes).assumingMemoryBound(to: Float.self)
        let z = (ws + scaledBytes + partialBytes).assumingMemoryBound(to: Float.self)
        let tables = ws + scaledBytes + partialBytes + chunk * activationRows * cols * 4
        for i in 0..<n { for c in 0..<cols { scaled[i * cols + c] = x[i * cols + c] / info.scaling[c] } }
        var start = 0
        while start < blocks.count {
            let group = blocks[start..<min(start + chunk, blocks.count)]
            // Item (b, a): block b of the chunk, activation row a = i·k + j.
            parallelRanges(group.count * activationRows) { items in
                var item = items.lowerBound
                while item < items.upperBound {
                    let b = item / activationRows, last = min(items.upperBound, (b + 1) * activationRows)
                    let block = group[start + b]
                    block.vT.withUnsafeBufferPointer { v in
                        for it in item..<last {
                            let a = it - b * activationRows, i = a / k, j = a % k
                            let zRow = z + it * cols
                            HalfVectors.multiply(v.baseAddress! + j * cols, scaled + i * cols, into: zRow, count: cols)
                            block.signs.buildTables(zRow, into: tables + it * tableBytes)
                        }
                    }
                    item = last
                }
            }
            parallelRanges(rowBlocks) { range in
                let lo = range.lowerBound * LUTLayout.rowsPerBlock,
                    count = min(rows, range.upperBound * LUTLayout.rowsPerBlock) - lo
                for (b, block) in group.enumerated() {
                    block.signs.multiply(tables: tables + b * activationRows * tableBytes, n: activationRows,
                                         rowBlocks: range,
                                         into: partial)
                    block.uT.withUnsafeBufferPointer { u in
                        for a in 0..<activationRows {
                            let i = a / k, j = a % k
                            HalfVectors.multiplyAdd(u.baseAddress! + j * rows + lo, partial + a * rows + lo,
                                                    into: y + i * rows + lo, count: count)
                        }
                    }
                }
            }
            start += chunk
        }
    }

    /// From this many activation rows on, a product rebuilds its weights in Float32, a slice of
    /// rows at a time, instead of running k sign products per block (`multiplyRebuilt`): on
    /// SmolLM2's stack (`lowbit stack run --n`) rebuilding is slower at 8 rows, faster at 16.
    static let rebuildMinimumRows = 16

    /// Y = X·Wᵀ for n ≥ `rebuildMinimumRows` activation rows. Through the sign matrices each
    /// activation row costs k 1-bit products per block (k = 16: as much arithmetic as a 16-bit
    /// product, per block), so a 512-token prompt ran slower per token than decoding. Rebuilding
    /// W = Σ_b S_b ⊙ (U_b·V_bᵀ) costs k FMAs per weight and block, about the sign products of
    /// 10–16 activation rows, and a Float32 product after it a small part of one row's. Each
    /// thread rebuilds slices of at most `sliceBytes` (half of L2) and multiplies them in
    /// `FloatTile` panels (a second copy of the slice), so the whole matrix never exists at
    /// once; the input scaling stays on the activations.
    func multiplyRebuilt(_ info: StackFile.Tensor, _ blocks: [LoadedBlock], _ x: UnsafePointer<Float>, n: Int,
                         into y: UnsafeMutablePointer<Float>, sliceBytes: Int) throws {
        let rows = info.rows, cols = info.cols, k = info.rank
        let scaledBytes = try checkedProduct(n, cols, 4, what: "workspace")
        let factorBytes = try checkedProduct(blocks.count, k, cols, 4, what: "workspace")
        let ws = try Workspace.current.reserve(scaledBytes + factorBytes, slot: 1)
        let scaled = ws.assumingMemoryBound(to: Float.self)
        let v = (ws + scaledBytes).assumingMemoryBound(to: Float.self)   // per block: k × cols
        for i in 0..<n { for c in 0..<cols { scaled[i * cols + c] = x[i * cols + c] / info.scaling[c] } }
        for (b, block) in blocks.enumerated() {
            block.vT.withUnsafeBufferPointer { vT in for e in 0..<(k * cols) { v[b * k * cols + e] = Float(vT[e]) } }
        }
        let sliceRows = max(2, (sliceBytes / (cols * 4)) & ~1)
        let failed = Atomic<Bool>(false)
        parallelRanges(rows) { range in
            let sliceFloats = min(sliceRows, range.count) * cols
            let panelFloats = FloatTile.packedCount(rows: min(sliceRows, range.count), cols: cols)
            guard let slice = try? Workspace.current.reserve((sliceFloats + panelFloats) * 4) else {
                failed.store(true, ordering: .relaxed)
                return
            }
            let w = slice.assumingMemoryBound(to: Float.self), panels = w + sliceFloats
            for first in Swift.stride(from: range.lowerBound, to: range.upperBound, by: sliceRows) {
                let count = min(sliceRows, range.upperBound - first)
                for i in 0..<(count * cols) { w[i] = 0 }
                for (b, block) in blocks.enumerated() {
                    block.uT.withUnsafeBufferPointer { uT in
                        Stack.addSignedProduct(block.signs, u: uT.baseAddress!, rows: rows, v: v + b * k * cols, k: k,
                                               rowRange: first..<(first + count), into: w)
                    }
                }
                FloatTile.pack(w, rows: count, cols: cols, into: panels)
                FloatTile.product(panels, rows: count, cols: cols, x: scaled, n: n, y: y + first, yStride: rows)
            }
        }
        if failed.load(ordering: .relaxed) {
            throw LowBitError(.outOfMemory, "could not allocate a BitStack product's workspace")
        }
    }

    /// w[r − first][c] += S[r, c]·Σ_j u[j·rows + r]·v[j·cols + c] for r in rowRange.
    static func addSignedProduct(_ signs: SignMatrix, u: UnsafePointer<Float16>, rows: Int, v: UnsafePointer<Float>,
                                 k: Int,
                                 rowRange: Range<Int>, into w: UnsafeMutablePointer<Float>) {
        let cols = signs.cols, tier = Tiers.active
        withUnsafeTemporaryAllocation(of: Float.self, capacity: k) { ur in
            let ur = ur.baseAddress!
            for r in rowRange {
                for j in 0..<k { ur[j] = Float(u[j * rows + r]) }
                let wr = w + (r - rowRange.lowerBound) * cols
                tier.addSignedRow(signs.layout, row: r, u: ur, v: v, k: k, cols: cols, into: wr)
            }
        }
    }

    /// The dense weights the first `blocks` resident blocks (default all) stand for, row-major.
    /// For tests, references and build-time tools (stack sensitivity), never for products.
    public func denseWeights(_ name: String, blocks: Int? = nil) throws -> [Float] {
        let t = try tensorNumber(name)
        let info = index.tensors[t]
        let resident = residency.withLock { $0.perTensor[t] }
        let used = resident.prefix(blocks ?? resident.count)
        var w = [Float](repeating: 0, count: info.rows * info.cols)
        let rows = info.rows, cols = info.cols, k = info.rank
        w.withUnsafeMutableBufferPointer { out in
            let o = out.baseAddress!
            parallelFor(rows) { r in
                var u = [Float](repeating: 0, count: k)
                for b in used {
                    for j in 0..<k { u[j] = Float(b.uT[j * rows + r]) }
                    for c in 0..<cols {
                        var uv: Float = 0
                        for j in 0..<k { uv += u[j] * Float(b.vT[j * cols + c]) }
                        o[r * cols + c] += (b.signs.isPositive(row: r, col: c) ? uv : -uv) / info.scaling[c]
                    }
                }
            }
        }
        return w
    }

    /// Reads every block and checks its checksum (what `lowbit stack inspect --verify` does).
    public func verifyAllBlocks() throws {
        var i = 0
        while i < index.blocks.count {
            let end = min(i + 16, index.blocks.count)
            _ = try load(i..<end)
            i = end
        }
    }
}
