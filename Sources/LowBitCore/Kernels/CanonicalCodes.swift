/// A quantized matrix's canonical storage, as the layouts read it when they pack: per row and
/// group, `bits` planes of `planeBytes` bytes (bit j of a byte = bit p of column 8·byte + j's
/// code), then d and m per row and group. Module LowBit's `QuantizedMatrix` hands out this view
/// of its buffers and keeps them alive while a layout packs from it.
package struct CanonicalCodes {
    package let rows: Int
    package let cols: Int
    package let bits: Int
    package let groupSize: Int
    package let codes: UnsafePointer<UInt8>
    package let scales: UnsafePointer<Float>
    package let offsets: UnsafePointer<Float>

    package init(rows: Int, cols: Int, bits: Int, groupSize: Int, codes: UnsafePointer<UInt8>,
                 scales: UnsafePointer<Float>, offsets: UnsafePointer<Float>) {
        (self.rows, self.cols, self.bits, self.groupSize) = (rows, cols, bits, groupSize)
        (self.codes, self.scales, self.offsets) = (codes, scales, offsets)
    }

    package var groupsPerRow: Int { cols / groupSize }
    package var planeBytes: Int { groupSize / 8 }

    package func scale(row r: Int, group g: Int) -> Float { scales[r * groupsPerRow + g] }
    package func offset(row r: Int, group g: Int) -> Float { offsets[r * groupsPerRow + g] }

    /// Byte b → the 8 bytes (bit j of b) for j = 0 ..< 8, as one little-endian word.
    static let spreadBits: [UInt64] = (0..<256).map { (b: Int) -> UInt64 in
        var word: UInt64 = 0
        for j in 0..<8 where (b >> j) & 1 == 1 { word |= UInt64(1) << UInt64(8 * j) }
        return word
    }

    /// Reads the codes of one group into q[0 ..< groupSize], eight columns per plane byte.
    package func groupCodes(row r: Int, group g: Int, into q: UnsafeMutablePointer<UInt8>) {
        let base = codes + (r * groupsPerRow + g) * bits * planeBytes
        CanonicalCodes.spreadBits.withUnsafeBufferPointer { spread in
            for byte in 0..<planeBytes {
                var word: UInt64 = 0
                for p in 0..<bits { word |= spread[Int(base[p * planeBytes + byte])] << UInt64(p) }
                UnsafeMutableRawPointer(q + 8 * byte).storeBytes(of: word.littleEndian, as: UInt64.self)
            }
        }
    }
}
