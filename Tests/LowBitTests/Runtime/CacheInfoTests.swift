import Foundation
import XCTest
@testable import LowBit
@testable import LowBitCore
@testable import LowBitAVX2

/// The cache sizes `lowbit info` and `lowbit bench` print, read from a sysfs-like tree.
final class CacheInfoTests: XCTestCase {
    /// The running machine's own sysfs files, which report a page as their size and hold a few
    /// bytes: read to their end, they give at least one data cache with its size.
    func testDataCachesOfThisMachine() throws {
        let dir = "/sys/devices/system/cpu/cpu0/cache"
        guard FileManager.default.fileExists(atPath: "\(dir)/index0/level") else {
            throw XCTSkip("no sysfs cache description here")
        }
        let caches = Runtime.dataCaches(sysfs: dir)
        XCTAssertFalse(caches.isEmpty)
        XCTAssertTrue(caches.allSatisfy { $0.bytes > 0 && $0.level >= 1 })
        XCTAssertNotEqual(Runtime.cacheSummary, "unknown")
    }

    func testDataCachesFromSysfs() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lowbit-cache-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let entries: [(String, String, String, String)] = [
            ("1", "Data", "48K", "0"), ("1", "Instruction", "32K", "0"),
            ("2", "Unified", "2048K", "0-1"), ("3", "Unified", "1M", "0-3,8,10-11"),
        ]
        for (i, e) in entries.enumerated() {
            let entry = "\(dir)/index\(i)"
            try FileManager.default.createDirectory(atPath: entry, withIntermediateDirectories: true)
            for (name, value) in [("level", e.0), ("type", e.1), ("size", e.2), ("shared_cpu_list", e.3)] {
                try (value + "\n").write(toFile: "\(entry)/\(name)", atomically: true, encoding: .utf8)
            }
        }
        XCTAssertEqual(Runtime.dataCaches(sysfs: dir), [
            Runtime.CacheLevel(level: 1, bytes: 48 << 10, sharedBy: 1),
            Runtime.CacheLevel(level: 2, bytes: 2 << 20, sharedBy: 2),
            Runtime.CacheLevel(level: 3, bytes: 1 << 20, sharedBy: 7),
        ])
        XCTAssertEqual(Runtime.dataCaches(sysfs: "/nonexistent/cache"), [])
        XCTAssertNil(Runtime.parseSize("12Q"))
        XCTAssertEqual(Runtime.cpuListCount("3-1"), 0)
    }
}
