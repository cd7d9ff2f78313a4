#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import CRegistryShims

// Leases (docs/FORMAT.md, "Liveness"): the leases/ directory, taking and releasing a lease, and
// the tracker that remembers which leases were seen held. Judging an entry by its lease is
// LivenessJudge's (Liveness.swift).

extension RegistryStore {
    /// The `leases/` directory, created 0700 on first use and checked like the registry's.
    func leasesDirectory(create: Bool) throws(RegistryError) -> Int32? {
        guard dirFD >= 0 else { return nil }
        return try leasesFD.withLock { fd throws(RegistryError) -> Int32? in
            if fd >= 0 { return fd }
            // Created durably: the first lease registration must not vanish with it.
            guard let opened = try openSubdirectory("leases", path: leasesPath, create: create, durable: true) else { return nil }
            fd = opened
            let t = LeaseTracker.forDirectory(opened, path: leasesPath)
            tracker.withLock { $0 = t }
            return opened
        }
    }

    /// A directory of the registry's own (`leases/`, `servers.json.pending/`): opened with
    /// O_NOFOLLOW and checked like the registry's, created 0700 if missing and `create` (the
    /// registry directory fsynced after, if `durable`). Nil when it is missing and not created.
    func openSubdirectory(_ name: String, path: String, create: Bool, durable: Bool) throws(RegistryError) -> Int32? {
        var opened = Sys.openAtTracked(dirFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, path: path)
        if opened < 0 && errno == ENOENT {
            guard create, !readOnly else { return nil }
            if !Sys.makeDirectoryAt(dirFD, name, mode: 0o700, path: path) {
                guard errno == EEXIST else { throw Sys.ioError(.mkdir, path) }
            } else if durable {
                try Sys.fsyncOrThrow(dirFD, directory)
            }
            opened = Sys.openAtTracked(dirFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, path: path)
        }
        guard opened >= 0 else {
            if errno == ELOOP || errno == ENOTDIR { throw PathSafety.symlinkError(path) }
            throw Sys.ioError(.open, path)
        }
        do throws(RegistryError) {
            try PathSafety.checkDirectory(Sys.fstatOrThrow(opened, path), path: path)
        } catch {
            Sys.closeTracked(opened)
            throw error
        }
        return opened
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

extension Registry {
    /// Takes `flock(LOCK_EX)` on `leases/<id>.lease` (creating it 0600). Readers hold a shared
    /// lock on it for microseconds, so a busy lock is retried briefly before it means that a live
    /// process holds the id.
    func acquireLease(_ id: String, patienceMicros: Int64 = 50_000) throws(RegistryError) -> Int32 {
        guard let dir = try store.leasesDirectory(create: true) else { throw RegistryError(.io, "no leases directory") }
        let name = id + ".lease"
        let leasePath = store.leasesPath + "/" + name
        let deadline = Sys.monotonicMicros() + patienceMicros
        while true {
            // Tracked from the moment it exists: a child forked now must not keep the lease.
            let fd = Sys.openAtTracked(dir, name, O_RDWR | O_CREAT | O_NOFOLLOW, 0o600, path: leasePath)
            guard fd >= 0 else {
                if errno == ELOOP { throw PathSafety.symlinkError(leasePath) }
                throw Sys.ioError(.open, leasePath)
            }
            let st: stat
            do throws(RegistryError) {
                st = try Sys.fstatOrThrow(fd, leasePath)
                try PathSafety.checkFile(st, path: leasePath)
            } catch {
                Sys.closeTracked(fd)
                throw error
            }
            if Sys.flock(fd, LOCK_EX | LOCK_NB, path: leasePath) == 0 {
                // A pruner may have unlinked the file between our open and our lock: only a lock
                // on the inode the path still names counts.
                if let now = Sys.statAt(dir, name, path: leasePath), now.st_ino == st.st_ino, now.st_dev == st.st_dev {
                    Sys.overwriteSmall(fd, "\(getpid())\n", path: leasePath)
                    return fd
                }
            } else if errno != EWOULDBLOCK {
                let e = errno
                Sys.closeTracked(fd)
                throw Sys.ioError(.flock, leasePath, e)
            }
            Sys.closeTracked(fd)
            if Sys.monotonicMicros() >= deadline {
                throw RegistryError(.exists, "id \"\(id)\" is held by another live registrant (its lease \(leasePath) is locked)")
            }
            Sys.sleepMicros(500)
        }
    }

    /// Unlinks a lease file this handle holds, then closes (and so unlocks) it.
    func releaseLease(_ id: String, _ fd: Int32) {
        let leasePath = store.leasesPath + "/" + id + ".lease"
        if let dir = try? store.leasesDirectory(create: false),
           let byPath = Sys.statAt(dir, id + ".lease", path: leasePath), let mine = try? Sys.fstatOrThrow(fd, leasePath),
           byPath.st_ino == mine.st_ino, byPath.st_dev == mine.st_dev {
            Sys.unlinkAt(dir, id + ".lease", path: leasePath)
        }
        Sys.closeTracked(fd)
    }
}

/// Remembers which leases were seen held, so that checking N live leases does not cost N
/// open+flock+close on every write and every `list`.
///
/// Sound because of the order in which Linux releases a file (`__fput`): the inotify close event
/// is queued *before* the file's `flock` is dropped. So a lease seen held stays held until an
/// `IN_CLOSE_WRITE` (owners open their lease read-write) or `IN_DELETE`/`IN_MOVED_FROM` names it;
/// draining the queue before trusting the set is enough. An overflowed queue forgets everything.
/// One per process and `leases/` directory (inotify instances are a per-user budget of 128),
/// shared by the handles open on it and released with the last of them.
/// Without inotify (or in a forked child) it remembers nothing and every check is made in full.
/// `tests/c/test_inotify_order.c` checks the kernel ordering this relies on; should a kernel
/// ever break it, `PEER_REGISTRY_NO_LEASE_CACHE=1` turns the tracker off (every check in full).
final class LeaseTracker: Sendable {
    private let inotifyFD: Int32
    private let forkGeneration: Int32
    /// Leases seen held. Probing and recording happen under this lock, and so does draining
    /// the event queue, so an event can never be applied between a probe and its record.
    private let known = ForkSafeMutex<Set<String>>([])
    /// Set when the watch itself is gone (directory removed or moved): trust nothing after.
    private let broken = Atomic<Bool>(false)

    private init(leasesPath: String) {
        forkGeneration = prshim_fork_generation()
        var fd = Sys.inotifyInit(path: leasesPath)
        if fd >= 0 {
            let mask = UInt32(IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF)
            if !Sys.inotifyWatch(fd, leasesPath, mask) {
                Sys.closeTracked(fd)
                fd = -1
            }
        }
        inotifyFD = fd
    }

    deinit {
        // In a forked child the descriptor was closed at fork (and its number may be reused).
        if forkGeneration == prshim_fork_generation() { Sys.closeTracked(inotifyFD) }
    }

    /// Whether trackers are turned off (`PEER_REGISTRY_NO_LEASE_CACHE=1`).
    static let disabled: Bool = {
        guard let v = getenv("PEER_REGISTRY_NO_LEASE_CACHE") else { return false }
        return String(cString: v) == "1"
    }()

    private final class WeakTracker: @unchecked Sendable {
        weak var tracker: LeaseTracker?
        init(_ t: LeaseTracker) { tracker = t }
    }

    /// Trackers by directory, held weakly: a tracker lives as long as a handle uses it.
    private static let table = ForkSafeMutex<[String: WeakTracker]>([:])

    /// The tracker for the `leases/` directory open as `dirFD` at `path`.
    static func forDirectory(_ dirFD: Int32, path: String) -> LeaseTracker? {
        guard !disabled, let st = try? Sys.fstatOrThrow(dirFD, path) else { return nil }
        let key = "\(st.st_dev):\(st.st_ino):\(prshim_fork_generation())"
        return table.withLock { table in
            if let t = table[key]?.tracker { return t }
            table = table.filter { $0.value.tracker != nil }
            let t = LeaseTracker(leasesPath: path)
            table[key] = WeakTracker(t)
            return t
        }
    }

    private var usable: Bool {
        inotifyFD >= 0 && forkGeneration == prshim_fork_generation() && !broken.load(ordering: .acquiring)
    }

    /// Forgets every lease whose file was closed by a writer, removed or renamed since the last
    /// call. Call once before a round of `isHeld` checks.
    func refresh() {
        guard usable else { return }
        known.withLock { set in
            var buffer = [UInt8](repeating: 0, count: 16384)
            while true {
                let n = Sys.readAvailable(inotifyFD, into: &buffer, path: "leases inotify")
                if n < 0 {
                    // The queue cannot be read: nothing known can be trusted any more.
                    broken.store(true, ordering: .releasing)
                    set.removeAll()
                    break
                }
                if n == 0 { break }
                var offset = 0
                let header = MemoryLayout<inotify_event>.size
                while offset + header <= n {
                    let (mask, length) = buffer.withUnsafeBytes { raw -> (UInt32, Int) in
                        let ev = raw.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                        return (ev.mask, Int(ev.len))
                    }
                    if mask & UInt32(IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT) != 0 {
                        broken.store(true, ordering: .releasing)
                        set.removeAll()
                    } else if mask & UInt32(IN_Q_OVERFLOW) != 0 {
                        set.removeAll()
                    }
                    if length > 0, offset + header + length <= n {
                        let nameBytes = buffer[(offset + header)..<(offset + header + length)].prefix { $0 != 0 }
                        let name = String(decoding: nameBytes, as: UTF8.self)
                        if name.hasSuffix(".lease") { set.remove(String(name.dropLast(6))) }
                    }
                    offset += header + length
                }
            }
        }
    }

    /// The leases seen held and not released since the last `refresh` (nothing when the tracker
    /// cannot be trusted). A copy: probes that find more held leases do not change it.
    func knownHeld() -> Set<String> {
        guard usable else { return [] }
        return known.withLock { $0 }
    }

    /// Whether `id`'s lease is held: true at once when it was seen held and nothing released it
    /// since; otherwise `probe()` decides (true: held), and a held lease is remembered.
    func isHeld(_ id: String, probe: () -> Bool) -> Bool {
        guard usable else { return probe() }
        return known.withLock { set in
            if set.contains(id) { return true }
            let held = probe()
            if held { set.insert(id) }
            return held
        }
    }
}
