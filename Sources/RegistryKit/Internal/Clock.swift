#if canImport(Glibc)
import Glibc
#endif

/// The wall clock every entry timestamp (`startedAt`, `lastSeen`, `health.lastCheck`) and every
/// TTL judgement reads, through `Timestamp.nowMillis()`.
///
/// A test can stand in for it: when `PEER_REGISTRY_TEST_CLOCK_FILE` names a file when the
/// library first reads the time, every later reading is the decimal number of milliseconds
/// since the epoch that the file holds at that moment (rewrite the file to move time on). A
/// missing, unreadable or malformed file falls back to the real clock. The variable works the
/// same from every language, since each binding's process carries the environment it was
/// started with (tests/conformance uses it to expire `ttl` entries without sleeping).
/// Unset, the cost is one branch per reading.
enum Clock {
    static let testClockFile: String? = {
        guard let value = getenv("PEER_REGISTRY_TEST_CLOCK_FILE") else { return nil }
        let path = String(cString: value)
        return path.isEmpty ? nil : path
    }()

    static func nowMillis() -> Int64 {
        if let path = testClockFile, let injected = readMillis(path) { return injected }
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// The file's leading decimal digits (at most 15), or nil.
    private static func readMillis(_ path: String) -> Int64? {
        let fd = Sys.openReadOnly(path)
        guard fd >= 0 else { return nil }
        defer { Sys.closeFD(fd) }
        guard let bytes = Sys.pread(fd, count: 32, offset: 0, path: path) else { return nil }
        var value: Int64 = 0
        var digits = 0
        for b in bytes {
            guard b >= 0x30, b <= 0x39 else { break }
            guard digits < 15 else { return nil }
            value = value * 10 + Int64(b - 0x30)
            digits += 1
        }
        return digits > 0 ? value : nil
    }
}
