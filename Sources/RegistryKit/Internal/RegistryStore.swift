#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Identifies one version of the registry file as `stat` sees it. Equal stamps do not prove
/// equal contents (ext4 reuses the two inodes of a temp+rename cycle; mtime is per tick or per
/// second on many filesystems): see `Snapshot.needsContentCheck`.
struct FileStamp: Equatable, Sendable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var mtimeNanos: Int64

    init(_ st: stat) {
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        size = Int64(st.st_size)
        mtimeNanos = Int64(st.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(st.st_mtim.tv_nsec)
    }

    /// How long after its mtime a file could still be rewritten with the same stamp: a file
    /// system whose mtimes fall on whole milliseconds (or seconds) may keep one mtime for up to
    /// 2 s (FAT) — 3 s covers that and clock steps; a nanosecond mtime still repeats within a
    /// kernel tick (coarse clock, up to 10 ms) — 50 ms covers that.
    var sameStampWindowNanos: Int64 {
        mtimeNanos % 1_000_000 == 0 ? 3_000_000_000 : 50_000_000
    }
}

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
    private let leasesFD = ForkSafeMutex<Int32>(-1)
    private let tracker = ForkSafeMutex<LeaseTracker?>(nil)

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
        leasesFD.withLock { fd in
            Sys.closeTracked(fd)
            fd = -1
        }
        tracker.withLock { $0 = nil }
    }

    // MARK: Reading

    /// The stamp of the file now, or nil when it does not exist. One `fstatat`.
    func currentStamp() throws(RegistryError) -> FileStamp? {
        guard dirFD >= 0 else { return nil }
        guard let st = Sys.statAt(dirFD, fileName, path: filePath) else {
            if errno == ENOENT { return nil }
            throw Sys.ioError(.stat, filePath)
        }
        return FileStamp(st)
    }

    /// Opens the registry file for reading, checked. A writer may rename a new file over it
    /// between our open and our fstat: the inode we hold then has no links left — not a hard-link
    /// problem, just an old version — so open again. Returns nil when there is no file.
    private func openForReading() throws(RegistryError) -> (Int32, stat)? {
        guard dirFD >= 0 else { return nil }
        for _ in 0..<64 {
            let fd = Sys.openAt(dirFD, fileName, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, path: filePath)
            guard fd >= 0 else {
                if errno == ENOENT { return nil }
                if errno == ELOOP { throw PathSafety.symlinkError(filePath) }
                throw Sys.ioError(.open, filePath)
            }
            let st: stat
            do throws(RegistryError) {
                st = try Sys.fstatOrThrow(fd, filePath)
                if st.st_nlink == 0 {
                    Sys.closeFD(fd)
                    continue
                }
                try PathSafety.checkFile(st, path: filePath)
            } catch {
                Sys.closeFD(fd)
                throw error
            }
            return (fd, st)
        }
        throw RegistryError(.io, "\(filePath) was replaced 64 times while being opened; too busy to read")
    }

    /// The file's bytes and stamp now (nil when there is no file), and the wall-clock time taken
    /// just before they were read.
    func readBytes() throws(RegistryError) -> (bytes: [UInt8], stamp: FileStamp, readAt: Int64)? {
        guard let (fd, st) = try openForReading() else { return nil }
        defer { Sys.closeFD(fd) }
        let readAt = Sys.realtimeNanos()
        guard Int(st.st_size) <= limits.maxFileBytes else {
            throw RegistryError(.limit, "\(filePath) is \(st.st_size) bytes, over the limit of \(limits.maxFileBytes); run `peer-registry repair`")
        }
        let bytes = try Sys.readAll(fd, path: filePath, sizeHint: Int(st.st_size), limit: limits.maxFileBytes)
        return (bytes, FileStamp(st), readAt)
    }

    /// How long a read keeps retrying a file that does not parse while it may still be being
    /// rewritten in place (an older tool's plain `writeFile`: truncate, then write).
    static let tornReadRetryMicros: Int64 = 500_000

    /// The file as it is now, as a snapshot; `cached` is returned unchanged when the file is
    /// provably the one it was read from: same stamp and either outside the window in which a
    /// rewrite could keep the stamp, or the same bytes (read again to check). Unchanged entries
    /// of `cached` are reused, not parsed.
    ///
    /// A file that does not parse is read again for up to `tornReadRetryMicros` while it keeps
    /// changing or was modified in the last seconds (a torn read of a file still being
    /// rewritten); one that stays unparseable is `.corrupt`.
    func load(cached: Snapshot) throws(RegistryError) -> Snapshot {
        let stamp = try currentStamp()
        guard let stamp else { return cached.stamp == nil ? cached : .empty }
        if stamp == cached.stamp, !cached.needsContentCheck { return cached }
        let deadline = Sys.monotonicMicros() + RegistryStore.tornReadRetryMicros
        var lastBytes: [UInt8]? = nil
        var unchangedSince = Sys.monotonicMicros()
        while true {
            guard let read = try readBytes() else { return .empty }
            if read.bytes == cached.bytes, cached.stamp != nil {
                if read.stamp == cached.stamp {
                    cached.confirm(at: read.readAt)
                    return cached
                }
                return Snapshot(document: cached.document, stamp: read.stamp, bytes: read.bytes, confirmedAt: read.readAt)
            }
            do throws(RegistryError) {
                let document = try RegistryDocument.decode(read.bytes, path: filePath, limits: limits, previous: cached.document)
                return Snapshot(document: document, stamp: read.stamp, bytes: read.bytes, confirmedAt: read.readAt)
            } catch {
                guard error.code == .corrupt else { throw error }
                // Not modified in the last 2 s: nobody is writing it; corrupt. Otherwise wait
                // while it keeps changing, and give up once it stayed the same for 50 ms.
                let now = Sys.monotonicMicros()
                if read.bytes != lastBytes { unchangedSince = now }
                let idle = read.readAt - read.stamp.mtimeNanos > 2_000_000_000
                if idle || now - unchangedSince >= 50_000 || now >= deadline { throw error }
                lastBytes = read.bytes
                Sys.sleepMicros(2000)
            }
        }
    }

    /// The file's bytes for `repair` (nil when there is none), at most the size limit.
    func rawBytes() throws(RegistryError) -> [UInt8]? {
        guard let (fd, st) = try openForReading() else { return nil }
        defer { Sys.closeFD(fd) }
        let size = min(Int(st.st_size), limits.maxFileBytes)
        return Sys.pread(fd, count: size, offset: 0, path: filePath)
    }

    // MARK: Writing

    func withWriteLock<T>(timeoutMicros: Int64, _ body: () throws(RegistryError) -> T) throws(RegistryError) -> T {
        guard let lock else {
            throw RegistryError(.permission, "\(filePath) was opened read-only; open it for writing to change it")
        }
        return try lock.withLock(timeoutMicros: timeoutMicros, body)
    }

    /// Replaces the file atomically and durably: fixed temp name (writers hold the lock, so any
    /// temp file found is a crashed writer's and is removed), O_EXCL|O_NOFOLLOW, 0600, write,
    /// fsync, rename, fsync of the directory. Returns the new file's stamp. On failure the old
    /// file is untouched and no temp file is left behind.
    func replace(with bytes: [UInt8]) throws(RegistryError) -> FileStamp {
        let tempPath = directory + "/" + tempName
        if !Sys.unlinkAt(dirFD, tempName, path: tempPath) && errno != ENOENT { throw Sys.ioError(.unlink, tempPath) }
        let fd = Sys.openAt(dirFD, tempName, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600, path: tempPath)
        guard fd >= 0 else { throw Sys.ioError(.open, tempPath) }
        CrashPoint.afterTempCreate.reached()
        do throws(RegistryError) {
            do throws(RegistryError) {
                // Closed before the rename, not after: closing a written descriptor whose file
                // is by then named servers.json would report IN_CLOSE_WRITE on servers.json to
                // every process's anti-entropy thread, which cannot tell it from a bypassing
                // writer's and would re-read the whole file after every library write.
                try Sys.writeAll(fd, bytes, path: tempPath)
                CrashPoint.afterWrite.reached()
                try Sys.fsyncOrThrow(fd, tempPath)
                CrashPoint.afterFsync.reached()
            } catch {
                Sys.closeFD(fd)
                throw error
            }
            Sys.closeFD(fd)
            try Sys.renameAt(dirFD, tempName, fileName, path: tempPath)
        } catch {
            Sys.unlinkAt(dirFD, tempName, path: tempPath)
            throw error
        }
        CrashPoint.afterRename.reached()
        // The new file is in place; if this fsync fails it is visible but maybe not durable —
        // the caller reports the write as failed, which it may or may not survive a power cut.
        try Sys.fsyncOrThrow(dirFD, directory)
        CrashPoint.afterDirFsync.reached()
        guard let stamp = try currentStamp() else { throw RegistryError(.io, "\(filePath) vanished right after it was written") }
        return stamp
    }

    /// Moves a corrupt file aside as `servers.json.corrupt-<timestamp>`; returns the new path.
    func moveAside() throws(RegistryError) -> String {
        let aside = fileName + ".corrupt-" + Timestamp.now().replacingColons
        try Sys.renameAt(dirFD, fileName, aside, path: filePath)
        try Sys.fsyncOrThrow(dirFD, directory)
        return directory + "/" + aside
    }

    // MARK: Leases

    /// The `leases/` directory, created 0700 on first use and checked like the registry's.
    func leasesDirectory(create: Bool) throws(RegistryError) -> Int32? {
        guard dirFD >= 0 else { return nil }
        return try leasesFD.withLock { fd throws(RegistryError) -> Int32? in
            if fd >= 0 { return fd }
            var opened = Sys.openAtTracked(dirFD, "leases", O_RDONLY | O_DIRECTORY | O_NOFOLLOW, path: leasesPath)
            if opened < 0 && errno == ENOENT {
                guard create, !readOnly else { return nil }
                if !Sys.makeDirectoryAt(dirFD, "leases", mode: 0o700, path: leasesPath) {
                    guard errno == EEXIST else { throw Sys.ioError(.mkdir, leasesPath) }
                } else {
                    try Sys.fsyncOrThrow(dirFD, directory)
                }
                opened = Sys.openAtTracked(dirFD, "leases", O_RDONLY | O_DIRECTORY | O_NOFOLLOW, path: leasesPath)
            }
            guard opened >= 0 else {
                if errno == ELOOP || errno == ENOTDIR { throw PathSafety.symlinkError(leasesPath) }
                throw Sys.ioError(.open, leasesPath)
            }
            do throws(RegistryError) {
                try PathSafety.checkDirectory(Sys.fstatOrThrow(opened, leasesPath), path: leasesPath)
            } catch {
                Sys.closeTracked(opened)
                throw error
            }
            fd = opened
            let t = LeaseTracker.forDirectory(opened, path: leasesPath)
            tracker.withLock { $0 = t }
            return opened
        }
    }

    /// The pid written into `leases/<id>.lease` by its holder, if readable.
    func leaseHolderPID(_ id: String) -> Int32? {
        guard let dir = try? leasesDirectory(create: false) else { return nil }
        let fd = Sys.openAt(dir, id + ".lease", O_RDONLY | O_NOFOLLOW | O_NONBLOCK, path: leasesPath + "/" + id + ".lease")
        guard fd >= 0 else { return nil }
        defer { Sys.closeFD(fd) }
        guard let bytes = Sys.pread(fd, count: 31, offset: 0, path: id) else { return nil }
        return Int32(String(decoding: bytes, as: UTF8.self).trimmingNewline)
    }
}
