#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CRegistryShims

/// The thin layer of system calls the registry uses. Every failure becomes a `RegistryError`
/// naming the call, the path and errno, so the logic above reads as logic.
enum Sys {
    static func errnoMessage(_ e: Int32 = errno) -> String {
        guard let s = strerror(e) else { return "errno \(e)" }
        return String(cString: s) + " (errno \(e))"
    }

    static func ioError(_ call: String, _ path: String, _ e: Int32 = errno) -> RegistryError {
        RegistryError(.io, "\(call)(\(path)) failed: \(errnoMessage(e))")
    }

    /// openat that retries on EINTR. Returns the fd or -1 with errno set.
    static func openAt(_ dirFD: Int32, _ name: String, _ flags: Int32, _ mode: mode_t = 0o600) -> Int32 {
        while true {
            let fd = openat(dirFD, name, flags | O_CLOEXEC, mode)
            if fd >= 0 || errno != EINTR { return fd }
        }
    }

    static func fstatOrThrow(_ fd: Int32, _ path: String) throws(RegistryError) -> stat {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ioError("fstat", path) }
        return st
    }

    /// Reads the whole file behind `fd` (at most `limit` bytes; more is `.limit`).
    static func readAll(_ fd: Int32, path: String, sizeHint: Int, limit: Int) throws(RegistryError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max(sizeHint, 0) + 1)
        var used = 0
        while true {
            if used == buffer.count {
                guard buffer.count <= limit else {
                    throw RegistryError(.limit, "\(path) is larger than the limit of \(limit) bytes")
                }
                buffer.append(contentsOf: repeatElement(0, count: buffer.count))
            }
            let n = buffer.withUnsafeMutableBytes { raw in
                read(fd, raw.baseAddress! + used, raw.count - used)
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError("read", path)
            }
            if n == 0 { break }
            used += n
        }
        guard used <= limit else { throw RegistryError(.limit, "\(path) is larger than the limit of \(limit) bytes") }
        buffer.removeSubrange(used...)
        return buffer
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(RegistryError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { raw in write(fd, raw.baseAddress! + done, raw.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError("write", path)
            }
            done += n
        }
    }

    static func fsyncOrThrow(_ fd: Int32, _ path: String) throws(RegistryError) {
        while fsync(fd) != 0 {
            if errno != EINTR { throw ioError("fsync", path) }
        }
    }

    /// Opens a descriptor the library owns: closed in a forked child (see registry_shims.h).
    static func track(_ fd: Int32) { _ = prshim_track_fd(fd) }

    /// Closes a descriptor opened with `track`.
    static func closeTracked(_ fd: Int32) {
        guard fd >= 0 else { return }
        prshim_untrack_fd(fd)
        close(fd)
    }

    static func sleepMicros(_ us: Int) {
        var request = timespec(tv_sec: us / 1_000_000, tv_nsec: (us % 1_000_000) * 1000)
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }

    static func monotonicMicros() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }
}

/// Crash points inside a write, for the torture tests: when the environment variable
/// `PEERREG_CRASH_AT` names a step, the process `_exit(86)`s the moment the write reaches it,
/// as a power cut or SIGKILL would. Read once; costs one comparison per step otherwise.
enum CrashPoint: String, CaseIterable {
    case afterLock = "after-lock"
    case afterTempCreate = "after-temp-create"
    case afterWrite = "after-write"
    case afterFsync = "after-fsync"
    case afterRename = "after-rename"
    case afterDirFsync = "after-dir-fsync"
    case beforeUnlock = "before-unlock"

    private static let armed: CrashPoint? = {
        guard let raw = getenv("PEERREG_CRASH_AT") else { return nil }
        return CrashPoint(rawValue: String(cString: raw))
    }()

    @inline(__always) func reached() {
        if let armed = CrashPoint.armed, armed == self { _exit(86) }
    }
}
