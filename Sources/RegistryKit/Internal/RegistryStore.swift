#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Identifies one version of the registry file: a rename always changes the inode, so a reader
/// that sees the same (device, inode, size, mtime) has already parsed what is there.
struct FileStamp: Equatable, Sendable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var mtimeSeconds: Int64
    var mtimeNanos: Int64

    init(_ st: stat) {
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        size = Int64(st.st_size)
        mtimeSeconds = Int64(st.st_mtim.tv_sec)
        mtimeNanos = Int64(st.st_mtim.tv_nsec)
    }
}

/// The directory that holds `servers.json`, `servers.json.lock` and `leases/`, opened once and
/// used through `*at()` calls so the checks made on open keep applying. Thread-safe.
final class RegistryStore: Sendable {
    let directory: String
    let fileName: String
    let lockName: String
    let tempName: String
    let limits: RegistryLimits
    let dirFD: Int32
    let lockFD: Int32
    /// Serialises writers of this file inside the process (flock serialises processes).
    let processMutex: FileMutex
    private let leasesFD = Mutex<Int32>(-1)
    private let tracker = Mutex<LeaseTracker?>(nil)

    /// The process's lease tracker for this registry, once `leases/` has been opened.
    var leaseTracker: LeaseTracker? { tracker.withLock { $0 } }

    var filePath: String { directory + "/" + fileName }
    var lockPath: String { directory + "/" + lockName }
    var leasesPath: String { directory + "/leases" }

    init(path: String, limits: RegistryLimits) throws(RegistryError) {
        guard !path.isEmpty, !path.utf8.contains(0) else { throw RegistryError(.invalid, "the registry path is empty") }
        guard path.utf8.count < 4000 else { throw RegistryError(.invalid, "the registry path is too long") }
        var dir: String
        let name: String
        if let slash = path.lastIndex(of: "/") {
            dir = String(path[..<slash])
            name = String(path[path.index(after: slash)...])
            if dir.isEmpty { dir = "/" }
        } else {
            dir = "."
            name = path
        }
        guard !name.isEmpty, name != ".", name != ".." else {
            throw RegistryError(.invalid, "the registry path \"\(path)\" does not name a file")
        }
        self.directory = dir
        self.fileName = name
        self.lockName = name + ".lock"
        self.tempName = name + ".tmp"
        self.limits = limits

        try RegistryStore.makeDirectories(dir)
        let dfd = Glibc.open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw Sys.ioError("open", dir) }
        do throws(RegistryError) {
            try RegistryStore.checkDirectory(Sys.fstatOrThrow(dfd, dir), path: dir)
        } catch {
            Glibc.close(dfd)
            throw error
        }
        let lfd = Sys.openAt(dfd, lockName, O_RDWR | O_CREAT | O_NOFOLLOW)
        guard lfd >= 0 else {
            let e = errno
            Glibc.close(dfd)
            if e == ELOOP { throw RegistryStore.symlinkError(dir + "/" + lockName) }
            throw Sys.ioError("open", dir + "/" + lockName, e)
        }
        do throws(RegistryError) {
            try RegistryStore.checkFile(Sys.fstatOrThrow(lfd, dir + "/" + lockName), path: dir + "/" + lockName)
            self.processMutex = try FileMutex.forFile(lfd, path: dir + "/" + lockName)
        } catch {
            Glibc.close(lfd)
            Glibc.close(dfd)
            throw error
        }
        self.dirFD = dfd
        self.lockFD = lfd
        Sys.track(dfd)
        Sys.track(lfd)
        // The registry file itself, if present, must pass the same checks now, not at first read.
        do throws(RegistryError) {
            if let (ffd, _) = try openForReading() { Glibc.close(ffd) }
        } catch {
            close()
            throw error
        }
    }

    /// Closes the descriptors. Only the process that opened the store may call it.
    func close() {
        Sys.closeTracked(lockFD)
        Sys.closeTracked(dirFD)
        leasesFD.withLock { fd in
            Sys.closeTracked(fd)
            fd = -1
        }
    }

    // MARK: Safety checks

    static func symlinkError(_ path: String) -> RegistryError {
        RegistryError(.permission, "\(path) is a symbolic link; the registry refuses to follow it. Remove it (rm \(path)) and try again")
    }

    private static func makeDirectories(_ dir: String) throws(RegistryError) {
        var st = stat()
        if stat(dir, &st) == 0 { return }
        guard errno == ENOENT else { throw Sys.ioError("stat", dir) }
        if let slash = dir.lastIndex(of: "/"), slash != dir.startIndex {
            try makeDirectories(String(dir[..<slash]))
        }
        if mkdir(dir, 0o700) != 0 && errno != EEXIST { throw Sys.ioError("mkdir", dir) }
    }

    static func checkDirectory(_ st: stat, path: String) throws(RegistryError) {
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw RegistryError(.permission, "\(path) is not a directory") }
        guard st.st_uid == geteuid() else {
            throw RegistryError(.permission, "\(path) is owned by uid \(st.st_uid), not by you (uid \(geteuid())); use a registry directory you own (set PEER_REGISTRY_PATH)")
        }
        guard st.st_mode & 0o022 == 0 else {
            let mode = String(st.st_mode & 0o777, radix: 8)
            throw RegistryError(.permission, "\(path) is writable by group or others (mode \(mode)); fix it with: chmod 700 \(path)")
        }
    }

    static func checkFile(_ st: stat, path: String) throws(RegistryError) {
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw RegistryError(.permission, "\(path) is not a regular file") }
        guard st.st_uid == geteuid() else {
            throw RegistryError(.permission, "\(path) is owned by uid \(st.st_uid), not by you (uid \(geteuid())); remove it or use another registry")
        }
        guard st.st_nlink == 1 else {
            throw RegistryError(.permission, "\(path) has \(st.st_nlink) hard links; the registry refuses a file linked elsewhere. Remove the other links")
        }
        guard st.st_mode & 0o022 == 0 else {
            let mode = String(st.st_mode & 0o777, radix: 8)
            throw RegistryError(.permission, "\(path) is writable by group or others (mode \(mode)); fix it with: chmod 600 \(path)")
        }
    }

    // MARK: Reading

    /// The stamp of the file now, or nil when it does not exist. One `fstatat`.
    func currentStamp() throws(RegistryError) -> FileStamp? {
        var st = stat()
        if fstatat(dirFD, fileName, &st, AT_SYMLINK_NOFOLLOW) != 0 {
            if errno == ENOENT { return nil }
            throw Sys.ioError("stat", filePath)
        }
        return FileStamp(st)
    }

    /// Opens the registry file for reading, checked. A writer may rename a new file over it
    /// between our open and our fstat: the inode we hold then has no links left — not a hard-link
    /// problem, just an old version — so open again. Returns nil when there is no file.
    private func openForReading() throws(RegistryError) -> (Int32, stat)? {
        for _ in 0..<64 {
            let fd = Sys.openAt(dirFD, fileName, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
            guard fd >= 0 else {
                if errno == ENOENT { return nil }
                if errno == ELOOP { throw RegistryStore.symlinkError(filePath) }
                throw Sys.ioError("open", filePath)
            }
            let st: stat
            do throws(RegistryError) {
                st = try Sys.fstatOrThrow(fd, filePath)
                if st.st_nlink == 0 {
                    Glibc.close(fd)
                    continue
                }
                try RegistryStore.checkFile(st, path: filePath)
            } catch {
                Glibc.close(fd)
                throw error
            }
            return (fd, st)
        }
        throw RegistryError(.io, "\(filePath) was replaced 64 times while being opened; too busy to read")
    }

    /// Reads and decodes the file, reusing the unchanged entries of `previous` (the version
    /// read before, if any). Returns nil when it does not exist.
    func read(previous: RegistryDocument? = nil) throws(RegistryError) -> (RegistryDocument, FileStamp)? {
        guard let (fd, st) = try openForReading() else { return nil }
        defer { Glibc.close(fd) }
        guard Int(st.st_size) <= limits.maxFileBytes else {
            throw RegistryError(.limit, "\(filePath) is \(st.st_size) bytes, over the limit of \(limits.maxFileBytes); run `peer-registry repair`")
        }
        let bytes = try Sys.readAll(fd, path: filePath, sizeHint: Int(st.st_size), limit: limits.maxFileBytes)
        let doc = try RegistryDocument.decode(bytes, path: filePath, limits: limits, previous: previous)
        return (doc, FileStamp(st))
    }

    // MARK: Writing

    /// Holds the in-process mutex and `flock(LOCK_EX)` on the lock file while `body` runs.
    /// Waits at most `timeoutMicros`; the timeout error names the holder's pid.
    ///
    /// Uncontended, this is one non-blocking `flock`. Contended, a helper thread blocks in
    /// `flock` on a descriptor of its own while this thread waits for it with the deadline: the
    /// kernel wakes blocked waiters the moment the lock is released, so a busy writer cannot
    /// starve the others the way polling with sleeps would.
    func withWriteLock<T>(timeoutMicros: Int64, _ body: () throws(RegistryError) -> T) throws(RegistryError) -> T {
        try processMutex.mutex.withLock { _ throws(RegistryError) -> T in
            var held = lockFD
            var ownsDescriptor = false
            while flock(lockFD, LOCK_EX | LOCK_NB) != 0 {
                if errno == EINTR { continue }
                guard errno == EWOULDBLOCK else { throw Sys.ioError("flock", lockPath) }
                held = try waitForLock(timeoutMicros: timeoutMicros)
                ownsDescriptor = true
                break
            }
            defer {
                CrashPoint.beforeUnlock.reached()
                flock(held, LOCK_UN)
                if ownsDescriptor { Sys.closeTracked(held) }
            }
            CrashPoint.afterLock.reached()
            recordHolder(held)
            return try body()
        }
    }

    /// Blocks in `flock(LOCK_EX)` on a second descriptor, in a helper thread, for at most
    /// `timeoutMicros`. Returns that descriptor, locked. On timeout the helper is told to let go
    /// of the lock as soon as it gets it.
    private func waitForLock(timeoutMicros: Int64) throws(RegistryError) -> Int32 {
        let fd = Sys.openAt(dirFD, lockName, O_RDWR | O_NOFOLLOW)
        guard fd >= 0 else { throw Sys.ioError("open", lockPath) }
        Sys.track(fd)
        let waiter: LockWaiter
        do throws(RegistryError) {
            waiter = try LockWaiter(fd: fd)
        } catch {
            Sys.closeTracked(fd)
            throw error
        }
        runOnThread { waiter.block() }
        if waiter.await(timeoutMicros: timeoutMicros) { return fd }
        throw RegistryError(.timeout, "timed out after \(timeoutMicros / 1000) ms waiting for the lock on \(lockPath)\(holderDescription())")
    }
    /// The holder writes its pid into the lock file so a waiter's timeout can name it.
    private func recordHolder(_ fd: Int32) {
        let text = Array("\(getpid())\n".utf8)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        _ = ftruncate(fd, off_t(text.count))
    }

    private func holderDescription() -> String {
        var buf = [UInt8](repeating: 0, count: 32)
        let n = buf.withUnsafeMutableBytes { pread(lockFD, $0.baseAddress, 31, 0) }
        guard n > 0, let pid = Int32(String(decoding: buf[0..<n], as: UTF8.self).trimmingNewline) else { return "" }
        let alive = kill(pid, 0) == 0 || errno == EPERM
        return "; held by pid \(pid)\(alive ? "" : " (which has exited)")"
    }

    /// Replaces the file atomically and durably: fixed temp name (writers hold the lock, so any
    /// temp file found is a crashed writer's and is removed), O_EXCL|O_NOFOLLOW, 0600, write,
    /// fsync, rename, fsync of the directory. Returns the new file's stamp.
    func replace(with bytes: [UInt8]) throws(RegistryError) -> FileStamp {
        let tempPath = directory + "/" + tempName
        if unlinkat(dirFD, tempName, 0) != 0 && errno != ENOENT { throw Sys.ioError("unlink", tempPath) }
        let fd = Sys.openAt(dirFD, tempName, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw Sys.ioError("open", tempPath) }
        CrashPoint.afterTempCreate.reached()
        do throws(RegistryError) {
            defer { Glibc.close(fd) }
            try Sys.writeAll(fd, bytes, path: tempPath)
            CrashPoint.afterWrite.reached()
            try Sys.fsyncOrThrow(fd, tempPath)
            CrashPoint.afterFsync.reached()
        } catch {
            unlinkat(dirFD, tempName, 0)
            throw error
        }
        guard renameat(dirFD, tempName, dirFD, fileName) == 0 else {
            let e = errno
            unlinkat(dirFD, tempName, 0)
            throw Sys.ioError("rename", tempPath, e)
        }
        CrashPoint.afterRename.reached()
        try Sys.fsyncOrThrow(dirFD, directory)
        CrashPoint.afterDirFsync.reached()
        guard let stamp = try currentStamp() else { throw RegistryError(.io, "\(filePath) vanished right after it was written") }
        return stamp
    }

    /// Moves a corrupt file aside as `servers.json.corrupt-<timestamp>`; returns the new path.
    func moveAside() throws(RegistryError) -> String {
        let aside = fileName + ".corrupt-" + Timestamp.now().replacingColons
        guard renameat(dirFD, fileName, dirFD, aside) == 0 else { throw Sys.ioError("rename", filePath) }
        try Sys.fsyncOrThrow(dirFD, directory)
        return directory + "/" + aside
    }

    // MARK: Leases

    /// The `leases/` directory, created 0700 on first use and checked like the registry's.
    func leasesDirectory(create: Bool) throws(RegistryError) -> Int32? {
        try leasesFD.withLock { fd throws(RegistryError) -> Int32? in
            if fd >= 0 { return fd }
            var opened = Sys.openAt(dirFD, "leases", O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
            if opened < 0 && errno == ENOENT {
                guard create else { return nil }
                if mkdirat(dirFD, "leases", 0o700) != 0 && errno != EEXIST { throw Sys.ioError("mkdir", leasesPath) }
                opened = Sys.openAt(dirFD, "leases", O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
            }
            guard opened >= 0 else {
                if errno == ELOOP || errno == ENOTDIR { throw RegistryStore.symlinkError(leasesPath) }
                throw Sys.ioError("open", leasesPath)
            }
            do throws(RegistryError) {
                try RegistryStore.checkDirectory(Sys.fstatOrThrow(opened, leasesPath), path: leasesPath)
            } catch {
                Glibc.close(opened)
                throw error
            }
            Sys.track(opened)
            fd = opened
            let t = LeaseTracker.forDirectory(opened, path: leasesPath)
            tracker.withLock { $0 = t }
            return opened
        }
    }
}

/// A blocking `flock` handed from a helper thread to a waiter with a deadline. Exactly one of
/// "the waiter takes the lock" and "the waiter gave up" happens (compare-and-swap on `state`);
/// a helper whose waiter gave up unlocks and closes as soon as it gets the lock.
final class LockWaiter: Sendable {
    private let fd: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    /// 0: waiting, 1: acquired and handed over, 2: the waiter gave up.
    private let state = Atomic<Int>(0)

    init(fd: Int32) throws(RegistryError) {
        self.fd = fd
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0 else { throw Sys.ioError("pipe", "lock waiter") }
        for end in pipeFDs { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        wakeRead = pipeFDs[0]
        wakeWrite = pipeFDs[1]
    }

    /// Runs on the helper thread.
    func block() {
        while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        if state.compareExchange(expected: 0, desired: 1, ordering: .acquiringAndReleasing).exchanged {
            var byte: UInt8 = 1
            _ = write(wakeWrite, &byte, 1)
            Glibc.close(wakeWrite)
        } else {
            flock(fd, LOCK_UN)
            Sys.closeTracked(fd)
            Glibc.close(wakeWrite)
            Glibc.close(wakeRead)
        }
    }

    /// Runs on the waiting thread: true when the lock is ours before the deadline.
    func await(timeoutMicros: Int64) -> Bool {
        let deadline = Sys.monotonicMicros() + timeoutMicros
        while true {
            if state.load(ordering: .acquiring) == 1 {
                Glibc.close(wakeRead)
                return true
            }
            let left = deadline - Sys.monotonicMicros()
            if left <= 0 {
                if state.compareExchange(expected: 0, desired: 2, ordering: .acquiringAndReleasing).exchanged {
                    return false  // the helper unlocks and closes everything once it gets the lock
                }
                continue  // it got the lock just now: state is 1
            }
            var p = pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, Int32(clamping: (left + 999) / 1000))
        }
    }
}

/// One process-wide mutex per lock file (keyed by device and inode, so two paths to the same
/// file share it): threads and handles of one process queue here instead of spinning on flock.
final class FileMutex: Sendable {
    let mutex = Mutex(())
    private static let table = Mutex<[String: FileMutex]>([:])

    static func forFile(_ fd: Int32, path: String) throws(RegistryError) -> FileMutex {
        let st = try Sys.fstatOrThrow(fd, path)
        let key = "\(st.st_dev):\(st.st_ino)"
        return table.withLock { table in
            if let m = table[key] { return m }
            let m = FileMutex()
            table[key] = m
            return m
        }
    }
}

extension String {
    var trimmingNewline: String {
        var s = self
        while let last = s.last, last == "\n" || last == " " || last == "\0" { s.removeLast() }
        return s
    }

    var replacingColons: String { String(map { $0 == ":" ? "-" : $0 }) }
}
