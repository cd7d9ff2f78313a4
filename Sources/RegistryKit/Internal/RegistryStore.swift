#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The directory that holds `servers.json`, `servers.json.lock` and `leases/`, opened once and
/// used through `*at()` calls so the checks made on open keep applying. Thread-safe; `close()`
/// only once no call uses it (the `Registry` handle guarantees that).
final class RegistryStore: Sendable {
    let directory: String
    let fileName: String
    let lockName: String
    let tempName: String
    let limits: RegistryLimits
    /// -1 for a read-only store whose directory does not exist: it reads as empty.
    let dirFD: Int32
    /// Nil for a read-only store.
    let lock: FileLock?
    let readOnly: Bool
    let leasesFD = ForkSafeMutex<Int32>(-1)
    /// `servers.json.pending/` once opened, and the inotify descriptor watching it for answers
    /// (group commit). The watch is kept for the store's life: closing an inotify instance waits
    /// for an RCU grace period (10-30 ms measured), which per request was the p99 of a write.
    let pendingFD = ForkSafeMutex<Int32>(-1)
    let pendingWatchFD = ForkSafeMutex<Int32>(-1)
    let tracker = ForkSafeMutex<LeaseTracker?>(nil)

    /// The process's lease tracker for this registry, once `leases/` has been opened.
    var leaseTracker: LeaseTracker? { tracker.withLock { $0 } }

    var filePath: String { directory + "/" + fileName }
    var lockPath: String { directory + "/" + lockName }
    var leasesPath: String { directory + "/leases" }

    /// Opens (and unless `readOnly`, creates) the registry directory and lock file.
    init(path: String, limits: RegistryLimits, readOnly: Bool = false) throws(RegistryError) {
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
        self.readOnly = readOnly

        if !readOnly { try PathSafety.makeDirectories(dir) }
        let dfd = Sys.openTracked(dir, O_RDONLY | O_DIRECTORY)
        guard dfd >= 0 || (readOnly && errno == ENOENT) else { throw Sys.ioError(.open, dir) }
        if dfd >= 0 {
            do throws(RegistryError) {
                try PathSafety.checkDirectory(Sys.fstatOrThrow(dfd, dir), path: dir)
            } catch {
                Sys.closeTracked(dfd)
                throw error
            }
        }
        self.dirFD = dfd
        if readOnly {
            self.lock = nil
        } else {
            let lockPath = dir + "/" + lockName
            let lfd = Sys.openAtTracked(dfd, lockName, O_RDWR | O_CREAT | O_NOFOLLOW, path: lockPath)
            guard lfd >= 0 else {
                let e = errno
                Sys.closeTracked(dfd)
                if e == ELOOP { throw PathSafety.symlinkError(lockPath) }
                throw Sys.ioError(.open, lockPath, e)
            }
            do throws(RegistryError) {
                try PathSafety.checkFile(Sys.fstatOrThrow(lfd, lockPath), path: lockPath)
                self.lock = try FileLock(fd: lfd, dirFD: dfd, name: lockName, path: lockPath)
            } catch {
                Sys.closeTracked(lfd)
                Sys.closeTracked(dfd)
                throw error
            }
        }
        // The registry file itself, if present, must pass the same checks now, not at first read.
        do throws(RegistryError) {
            if let (ffd, _) = try openForReading() { Sys.closeFD(ffd) }
        } catch {
            close()
            throw error
        }
    }

    /// Closes the descriptors. Only the process that opened the store may call it.
    func close() {
        if let lock { Sys.closeTracked(lock.fd) }
        Sys.closeTracked(dirFD)
        for held in [leasesFD, pendingFD, pendingWatchFD] {
            held.withLock { fd in
                Sys.closeTracked(fd)
                fd = -1
            }
        }
        tracker.withLock { $0 = nil }
    }

    // MARK: Writing (the durable replace itself: DurableFile.swift)

    func withWriteLock<T>(timeoutMicros: Int64, _ body: () throws(RegistryError) -> T) throws(RegistryError) -> T {
        guard let lock else {
            throw RegistryError(.permission, "\(filePath) was opened read-only; open it for writing to change it")
        }
        guard let result = try lock.withLock(timeoutMicros: timeoutMicros, body) else {
            throw RegistryError(.io, "internal error: a write without a request was answered by another process")
        }
        return result
    }

    /// `withWriteLock`, asking the holder to make `request`'s change while the lock is taken
    /// (group commit): nil when it was made (or refused) by another process.
    func withWriteLock<T>(timeoutMicros: Int64, request: GroupRequest?, _ body: () throws(RegistryError) -> T) throws(RegistryError) -> T? {
        guard let lock else {
            throw RegistryError(.permission, "\(filePath) was opened read-only; open it for writing to change it")
        }
        return try lock.withLock(timeoutMicros: timeoutMicros, request: request, body)
    }
}
