#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import CRegistryShims

/// The thin layer of system calls the core makes — every one of them. Each wrapper retries
/// EINTR where that is safe, and a failure becomes a `RegistryError` naming the call, the path
/// and errno (also kept as the error's `syscall` and `errnoCode`), so the logic above reads as
/// logic. Tests make any call fail through `Sys.Faults` (see `injectFault`).
enum Sys {
    /// The calls the core makes, as named in errors and in injected faults.
    enum Call: String, CaseIterable, Sendable {
        case open, fstat, stat, read, write, fsync, rename, unlink, mkdir, flock, ftruncate
        case dup, opendir, pipe, inotify, epoll, timerfd, poll, thread, fcntl
    }

    static func errnoMessage(_ e: Int32 = errno) -> String {
        guard let s = strerror(e) else { return "errno \(e)" }
        return String(cString: s) + " (errno \(e))"
    }

    static func ioError(_ call: String, _ path: String, _ e: Int32 = errno) -> RegistryError {
        RegistryError(.io, "\(call)(\(path)) failed: \(errnoMessage(e))", syscall: call, errnoCode: e)
    }

    static func ioError(_ call: Call, _ path: String, _ e: Int32 = errno) -> RegistryError {
        ioError(call.rawValue, path, e)
    }

    // MARK: Fault injection

    /// Faults armed by tests: the next matching calls fail with `errno` instead of being made.
    struct Fault: Sendable {
        var call: Call
        var errnoCode: Int32
        /// Only calls whose path ends with this (e.g. ".tmp", "/leases", "servers.json").
        var pathSuffix: String?
        /// Matching calls to let through first.
        var skip: Int
        /// How many matching calls fail (then the fault is spent); negative: until cleared.
        var count: Int
        /// How many calls this fault failed.
        var fired = 0
    }

    private static let faults = ForkSafeMutex<[Fault]>([])
    private static let faultsArmed = Atomic<Bool>(false)

    /// Makes the next matching calls fail (for tests). EINTR faults are retried by the wrappers
    /// that retry EINTR, so they test exactly that.
    static func injectFault(_ call: Call, errno e: Int32, pathSuffix: String? = nil, skip: Int = 0, count: Int = 1) {
        faults.withLock { $0.append(Fault(call: call, errnoCode: e, pathSuffix: pathSuffix, skip: skip, count: count)) }
        faultsArmed.store(true, ordering: .releasing)
    }

    /// Disarms the faults whose path filter contains `scope` (every fault when nil: tests that
    /// run in parallel scope theirs by their own directory); returns how many calls each one
    /// failed, in order of injection.
    @discardableResult
    static func clearFaults(_ scope: String? = nil) -> [Int] {
        faults.withLock { f in
            let cleared = f.filter { fault in scope.map { fault.pathSuffix?.contains($0) ?? false } ?? true }
            f.removeAll { fault in scope.map { fault.pathSuffix?.contains($0) ?? false } ?? true }
            faultsArmed.store(!f.isEmpty, ordering: .releasing)
            return cleared.map(\.fired)
        }
    }

    /// The errno a test wants `call` on `path` to fail with, if any. One atomic load otherwise.
    @inline(__always)
    static func injected(_ call: Call, _ path: String) -> Int32? {
        guard faultsArmed.load(ordering: .acquiring) else { return nil }
        return faults.withLock { list -> Int32? in
            for i in list.indices where list[i].call == call && list[i].count != 0 {
                if let suffix = list[i].pathSuffix, !path.hasSuffix(suffix) { continue }
                if list[i].skip > 0 {
                    list[i].skip -= 1
                    return nil
                }
                if list[i].count > 0 { list[i].count -= 1 }
                list[i].fired += 1
                return list[i].errnoCode
            }
            return nil
        }
    }

    /// Runs `body` unless a fault is injected for `call` on `path`; -1 with errno set then.
    @inline(__always)
    private static func guarded<T: BinaryInteger>(_ call: Call, _ path: String, _ body: () -> T) -> T {
        if let e = injected(call, path) {
            errno = e
            return -1
        }
        return body()
    }

    // MARK: Descriptors

    /// openat with O_CLOEXEC that retries on EINTR. Returns the fd or -1 with errno set.
    /// `path` names the file in errors and fault filters (default: `name`).
    static func openAt(_ dirFD: Int32, _ name: String, _ flags: Int32, _ mode: mode_t = 0o600, path: String? = nil) -> Int32 {
        let label = path ?? name
        while true {
            let fd = guarded(.open, label) { openat(dirFD, name, flags | O_CLOEXEC, mode) }
            if fd >= 0 || errno != EINTR { return fd }
        }
    }

    /// `openAt`, and the descriptor tracked (closed in a forked child) with no window in which a
    /// fork could copy it untracked.
    static func openAtTracked(_ dirFD: Int32, _ name: String, _ flags: Int32, _ mode: mode_t = 0o600, path: String? = nil) -> Int32 {
        trackedCreate { openAt(dirFD, name, flags, mode, path: path) }
    }

    /// Opens an absolute or relative path (no directory descriptor), tracked.
    static func openTracked(_ path: String, _ flags: Int32) -> Int32 {
        trackedCreate {
            while true {
                let fd = guarded(.open, path) { open(path, flags | O_CLOEXEC) }
                if fd >= 0 || errno != EINTR { return fd }
            }
        }
    }

    /// Opens `path` read-only and untracked (short-lived reads such as /proc/<pid>/stat).
    static func openReadOnly(_ path: String) -> Int32 {
        while true {
            let fd = guarded(.open, path) { open(path, O_RDONLY | O_CLOEXEC) }
            if fd >= 0 || errno != EINTR { return fd }
        }
    }

    /// Runs `create` (which returns a new descriptor or -1) while fork() is held off, and tracks
    /// the result: a child forked meanwhile can never inherit it untracked (a lease descriptor
    /// kept by a child would keep a dead parent's entry alive).
    static func trackedCreate(_ create: () -> Int32) -> Int32 {
        prshim_fork_hold()
        let fd = create()
        let saved = errno
        prshim_fork_release(fd)
        errno = saved
        return fd
    }

    /// Closes a descriptor opened with one of the tracked calls. A descriptor that is no longer
    /// tracked (closed already) is left alone: its number may belong to someone else by now.
    static func closeTracked(_ fd: Int32) {
        guard fd >= 0 else { return }
        _ = prshim_close_tracked(fd)
    }

    /// How many closes of descriptors no longer tracked were refused (double closes caught).
    static var refusedCloses: Int { Int(prshim_refused_closes()) }

    /// Closes an untracked descriptor.
    static func closeFD(_ fd: Int32) {
        guard fd >= 0 else { return }
        close(fd)
    }

    /// `fcntl(F_DUPFD_CLOEXEC)`: a close-on-exec duplicate, or -1.
    static func dupCloexec(_ fd: Int32, path: String) -> Int32 {
        guarded(.dup, path) { fcntl(fd, F_DUPFD_CLOEXEC, 0) }
    }

    /// `pipe2(O_CLOEXEC | O_NONBLOCK)`, tracked.
    static func pipe(path: String) throws(RegistryError) -> (read: Int32, write: Int32) {
        var ends: [Int32] = [-1, -1]
        prshim_fork_hold()
        let rc = guarded(.pipe, path) { prshim_pipe_cloexec(&ends) }
        let saved = errno
        if rc == 0 { prshim_track_fd_locked(ends[0]); prshim_track_fd_locked(ends[1]) }
        prshim_fork_release(-1)
        guard rc == 0 else { throw ioError(.pipe, path, saved) }
        return (ends[0], ends[1])
    }

    // MARK: Metadata

    static func fstatOrThrow(_ fd: Int32, _ path: String) throws(RegistryError) -> stat {
        var st = stat()
        while guarded(.fstat, path, { fstat(fd, &st) }) != 0 {
            if errno != EINTR { throw ioError(.fstat, path) }
        }
        return st
    }

    /// `fstatat(AT_SYMLINK_NOFOLLOW)`: the stat, or nil with errno set.
    static func statAt(_ dirFD: Int32, _ name: String, path: String? = nil) -> stat? {
        var st = stat()
        while guarded(.stat, path ?? name, { fstatat(dirFD, name, &st, AT_SYMLINK_NOFOLLOW) }) != 0 {
            if errno != EINTR { return nil }
        }
        return st
    }

    /// `stat` of a path: the stat, or nil with errno set.
    static func statPath(_ path: String) -> stat? {
        var st = stat()
        while guarded(.stat, path, { stat(path, &st) }) != 0 {
            if errno != EINTR { return nil }
        }
        return st
    }

    // MARK: Data

    /// Reads the whole file behind `fd` (at most `limit` bytes; more is `.limit`).
    static func readAll(_ fd: Int32, path: String, sizeHint: Int, limit: Int) throws(RegistryError) -> [UInt8] {
        // Not zero-filled first (that was a memset of the whole file per read): read(2) fills
        // what is used, and the rest is cut off below.
        var buffer = [UInt8](unsafeUninitializedCapacity: max(sizeHint, 0) + 1) { _, count in count = max(sizeHint, 0) + 1 }
        var used = 0
        while true {
            if used == buffer.count {
                guard buffer.count <= limit else {
                    throw RegistryError(.limit, "\(path) is larger than the limit of \(limit) bytes")
                }
                buffer.append(contentsOf: repeatElement(0, count: buffer.count))
            }
            let n = buffer.withUnsafeMutableBytes { raw in
                guarded(.read, path) { read(fd, raw.baseAddress.map { $0 + used }, raw.count - used) }
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError(.read, path)
            }
            if n == 0 { break }
            used += n
        }
        guard used <= limit else { throw RegistryError(.limit, "\(path) is larger than the limit of \(limit) bytes") }
        buffer.removeSubrange(used...)
        return buffer
    }

    /// `pread` of up to `count` bytes at `offset`: the bytes read (possibly fewer), or nil.
    static func pread(_ fd: Int32, count: Int, offset: Int, path: String) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        while true {
            let n = buffer.withUnsafeMutableBytes { raw in
                guarded(.read, path) { Glibc.pread(fd, raw.baseAddress, raw.count, off_t(offset)) }
            }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return nil }
            buffer.removeSubrange(n...)
            return buffer
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(RegistryError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                guarded(.write, path) { write(fd, raw.baseAddress.map { $0 + done }, raw.count - done) }
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError(.write, path)
            }
            done += n
        }
    }

    /// Replaces the contents of a small file in place (`pwrite` at 0, then `ftruncate`); best
    /// effort (a lock file's or lease file's pid note).
    static func overwriteSmall(_ fd: Int32, _ text: String, path: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { raw in guarded(.write, path) { pwrite(fd, raw.baseAddress, raw.count, 0) } }
        _ = guarded(.ftruncate, path) { ftruncate(fd, off_t(bytes.count)) }
    }

    static func fsyncOrThrow(_ fd: Int32, _ path: String) throws(RegistryError) {
        while guarded(.fsync, path, { fsync(fd) }) != 0 {
            if errno != EINTR { throw ioError(.fsync, path) }
        }
    }

    // MARK: Names

    static func renameAt(_ dirFD: Int32, _ from: String, _ to: String, path: String) throws(RegistryError) {
        while guarded(.rename, path, { renameat(dirFD, from, dirFD, to) }) != 0 {
            if errno != EINTR { throw ioError(.rename, path) }
        }
    }

    /// `unlinkat`: true when removed; false with errno set (ENOENT included).
    @discardableResult
    static func unlinkAt(_ dirFD: Int32, _ name: String, path: String? = nil) -> Bool {
        guarded(.unlink, path ?? name) { unlinkat(dirFD, name, 0) } == 0
    }

    /// `mkdir` (absolute or relative path): true when created; false with errno set.
    static func makeDirectory(_ path: String, mode: mode_t) -> Bool {
        guarded(.mkdir, path) { mkdir(path, mode) } == 0
    }

    /// `mkdirat`: true when created; false with errno set.
    static func makeDirectoryAt(_ dirFD: Int32, _ name: String, mode: mode_t, path: String) -> Bool {
        guarded(.mkdir, path) { mkdirat(dirFD, name, mode) } == 0
    }

    /// fsyncs the directory at `path` (opened for the purpose), so an entry just created in it is
    /// durable.
    static func fsyncDirectory(_ path: String) throws(RegistryError) {
        let fd = openTracked(path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { throw ioError(.open, path) }
        defer { closeTracked(fd) }
        try fsyncOrThrow(fd, path)
    }

    /// The names in the directory open as `dirFD` (a close-on-exec duplicate is read, and closed
    /// on every path).
    static func listDirectory(_ dirFD: Int32, path: String) throws(RegistryError) -> [String] {
        let dupFD = dupCloexec(dirFD, path: path)
        guard dupFD >= 0 else { throw ioError(.dup, path) }
        guard injected(.opendir, path) == nil, let stream = fdopendir(dupFD) else {
            let e = errno
            close(dupFD)
            throw ioError(.opendir, path, e)
        }
        defer { closedir(stream) }
        rewinddir(stream)
        var names: [String] = []
        while let ent = readdir(stream) {
            // Only the bytes up to the NUL are initialised: read through a pointer, never copy.
            let name = withUnsafeMutablePointer(to: &ent.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    // MARK: Locks

    /// `flock`, retrying EINTR: 0, or -1 with errno set (EWOULDBLOCK for a busy LOCK_NB).
    static func flock(_ fd: Int32, _ operation: Int32, path: String) -> Int32 {
        while true {
            let rc = guarded(.flock, path) { prshim_flock(fd, operation) }
            if rc == 0 || errno != EINTR { return rc }
        }
    }

    /// Marks this open file description as waiting on byte `offset` of the lock file (a shared
    /// OFD lock, independent of `flock`; gone when the descriptor closes or the process dies).
    /// False when it could not (the fair hand-off is then skipped, nothing else).
    static func markWaiting(_ fd: Int32, offset: Int, path: String) -> Bool {
        guarded(.fcntl, path) { prshim_ofd_share(fd, offset) } == 0
    }

    static func unmarkWaiting(_ fd: Int32, offset: Int) {
        _ = prshim_ofd_unlock(fd, offset)
    }

    /// Whether another open file description marks itself waiting on byte `offset` (false when
    /// that cannot be told).
    static func othersWaiting(_ fd: Int32, offset: Int, path: String) -> Bool {
        guarded(.fcntl, path) { prshim_ofd_contended(fd, offset) } == 1
    }

    /// Releases a `flock` (never fails in a way the caller could act on).
    static func unlock(_ fd: Int32) {
        _ = prshim_flock(fd, LOCK_UN)
    }

    // MARK: Events

    /// A non-blocking, close-on-exec inotify descriptor (tracked), or -1.
    static func inotifyInit(path: String) -> Int32 {
        trackedCreate { guarded(.inotify, path) { inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC)) } }
    }

    static func inotifyWatch(_ fd: Int32, _ path: String, _ mask: UInt32) -> Bool {
        guarded(.inotify, path) { inotify_add_watch(fd, path, mask) } >= 0
    }

    /// Reads what is queued on a non-blocking descriptor into `buffer`: the byte count, 0 when
    /// nothing is queued, -1 on a real error. EINTR is retried.
    static func readAvailable(_ fd: Int32, into buffer: inout [UInt8], path: String) -> Int {
        while true {
            let n = buffer.withUnsafeMutableBytes { raw in guarded(.read, path) { read(fd, raw.baseAddress, raw.count) } }
            if n >= 0 { return n }
            if errno == EINTR { continue }
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1
        }
    }

    static func epollCreate(path: String) -> Int32 {
        trackedCreate { guarded(.epoll, path) { prshim_epoll_create() } }
    }

    static func epollAdd(_ epfd: Int32, _ fd: Int32, path: String) -> Bool {
        guarded(.epoll, path) { prshim_epoll_add(epfd, fd) } == 0
    }

    /// Waits up to `timeoutMillis` (-1: forever): the number ready, 0 on timeout or EINTR, -1 on error.
    static func epollWait(_ epfd: Int32, timeoutMillis: Int32, path: String) -> Int32 {
        let n = guarded(.epoll, path) { prshim_epoll_wait(epfd, timeoutMillis) }
        if n < 0 && errno == EINTR { return 0 }
        return n
    }

    static func timerCreate(path: String) -> Int32 {
        trackedCreate { guarded(.timerfd, path) { prshim_timerfd_create() } }
    }

    static func timerArm(_ fd: Int32, millis: Int64) {
        _ = prshim_timerfd_arm(fd, millis)
    }

    /// Waits up to `timeoutMillis` for `fd` to be readable: true when it is.
    static func pollReadable(_ fd: Int32, timeoutMillis: Int32, path: String) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let n = guarded(.poll, path) { poll(&p, 1, timeoutMillis) }
        return n > 0
    }

    /// Waits up to `timeoutMillis` for `a` or `b` (-1: only `a`) to be readable: true when one is.
    static func pollReadable(_ a: Int32, _ b: Int32, timeoutMillis: Int32, path: String) -> Bool {
        guard b >= 0 else { return pollReadable(a, timeoutMillis: timeoutMillis, path: path) }
        var p = [pollfd(fd: a, events: Int16(POLLIN), revents: 0), pollfd(fd: b, events: Int16(POLLIN), revents: 0)]
        let n = guarded(.poll, path) { poll(&p, 2, timeoutMillis) }
        return n > 0
    }

    // MARK: Processes and time

    /// Whether a process with this pid exists (EPERM: it does, owned by someone else).
    static func processExists(_ pid: Int32) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
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

    /// Wall-clock time in nanoseconds since the epoch (comparable with file mtimes).
    static func realtimeNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) &* 1_000_000_000 &+ Int64(ts.tv_nsec)
    }

    /// Starts `body` on a new detached thread. Throws (running nothing) when no thread can be
    /// created: callers decide what to do instead, never block untimed.
    static func startThread(_ what: String, _ body: @escaping @Sendable () -> Void) throws(RegistryError) {
        final class Box: @unchecked Sendable {
            let body: @Sendable () -> Void
            init(_ b: @escaping @Sendable () -> Void) { body = b }
        }
        let raw = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        var rc: Int32 = 0
        if let e = injected(.thread, what) {
            rc = e
        } else {
            rc = pthread_create(&thread, nil, { p in
                guard let p else { return nil }
                Unmanaged<Box>.fromOpaque(p).takeRetainedValue().body()
                return nil
            }, raw)
        }
        guard rc == 0 else {
            Unmanaged<Box>.fromOpaque(raw).release()
            throw ioError(.thread, what, rc)
        }
        pthread_detach(thread)
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
    /// Group commit: the holder's write is durable, its answers not yet written.
    case afterGroupWrite = "after-group-write"

    private static let armed: CrashPoint? = {
        guard let raw = getenv("PEERREG_CRASH_AT") else { return nil }
        return CrashPoint(rawValue: String(cString: raw))
    }()

    @inline(__always) func reached() {
        if let armed = CrashPoint.armed, armed == self { _exit(86) }
    }
}
