#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization
import CRegistryShims

/// A handle on one registry file (docs/FORMAT.md): the only code that reads, locks, writes,
/// validates and prunes it. Safe to share between threads.
///
/// Reads take no lock and cost one `stat` when the file has not changed since the last read.
/// Every write holds an in-process mutex and `flock` on `servers.json.lock`, re-reads the file if
/// another writer changed it, applies the change, removes dead entries, and replaces the file
/// atomically and durably (temp file, fsync, rename, fsync of the directory).
public final class Registry: Sendable {
    /// How a registry handle behaves.
    public struct Options: Sendable {
        /// How long a write waits for the file lock before failing with `.timeout`: 5 s, or
        /// `$PEER_REGISTRY_LOCK_TIMEOUT_MS` milliseconds when that is set to a positive integer.
        public var lockTimeout: Duration = Options.environmentLockTimeout ?? .seconds(5)
        /// Size limits enforced on read and write.
        public var limits: RegistryLimits = .default
        public init() {}

        static var environmentLockTimeout: Duration? {
            guard let raw = getenv("PEER_REGISTRY_LOCK_TIMEOUT_MS"), let ms = Int(String(cString: raw)), ms > 0 else { return nil }
            return .milliseconds(ms)
        }

        var lockTimeoutMicros: Int64 {
            let c = lockTimeout.components
            return c.seconds.multipliedReportingOverflow(by: 1_000_000).partialValue &+ c.attoseconds / 1_000_000_000_000
        }
    }

    /// The registry file's path, as given (or the default).
    public let path: String
    public let options: Options
    let store: RegistryStore
    /// The process that opened the handle; in a forked child the handle is closed.
    let ownerPID: pid_t
    /// `prshim_fork_generation()` when opened: differs in a forked child (checked without a syscall).
    let forkGeneration: Int32

    struct State {
        var closed = false
        /// Lease descriptors this handle holds, by entry id (each holds `flock(LOCK_EX)`).
        var leases: [String: Int32] = [:]
        var snapshot: Snapshot = .empty
    }
    let state = Mutex(State())

    /// `$PEER_REGISTRY_PATH` if set and not empty, else `~/.peer-plan/servers.json`.
    public static var defaultPath: String {
        if let env = getenv("PEER_REGISTRY_PATH"), env.pointee != 0 { return String(cString: env) }
        var home = getenv("HOME").map { String(cString: $0) } ?? ""
        if home.isEmpty, let pw = getpwuid(geteuid()), let dir = pw.pointee.pw_dir { home = String(cString: dir) }
        if home.isEmpty { home = "/tmp" }
        return home + "/.peer-plan/servers.json"
    }

    /// Opens the registry at `path` (nil: `defaultPath`), creating its directory (0700) and lock
    /// file if needed.
    /// - Throws: `.permission` for a directory or file owned by another user or writable by group
    ///   or others, a symlinked file or one with several hard links (the message says the fix);
    ///   `.io` when the directory cannot be created; `.invalid` for an empty path.
    /// A corrupt file does not fail the open: reads and writes report `.corrupt` until `repair()`.
    public init(path: String? = nil, options: Options = Options()) throws(RegistryError) {
        let resolved = path ?? Registry.defaultPath
        self.path = resolved
        self.options = options
        self.store = try RegistryStore(path: resolved, limits: options.limits)
        self.ownerPID = getpid()
        self.forkGeneration = prshim_fork_generation()
    }

    /// True in the process that opened the handle, false in a forked child.
    var inOwnerProcess: Bool { prshim_fork_generation() == forkGeneration }

    deinit {
        close()
    }

    /// Unregisters every entry this handle registered with `lease` liveness (one write),
    /// releases the leases and closes the handle. Idempotent. Never throws: if the write fails
    /// (say the file is corrupt), the released leases make those entries dead anyway, and the
    /// next writer removes them.
    public func close() {
        let (wasOpen, leases) = state.withLock { s -> (Bool, [String: Int32]) in
            defer { s.closed = true }
            return (!s.closed, s.leases)
        }
        guard wasOpen else { return }
        // In a forked child the descriptors were already closed at fork (registry_shims.c) and
        // the entries belong to the parent: touch nothing.
        guard inOwnerProcess else { return }
        if !leases.isEmpty {
            _ = try? transaction(allowClosed: true) { txn throws(RegistryError) in
                txn.document.servers.removeAll { leases[$0.id] != nil }
                txn.releasedLeases.append(contentsOf: leases.keys)
                txn.changed = true
            }
            state.withLock { s in
                for (id, fd) in s.leases { releaseLease(id, fd) }
                s.leases = [:]
            }
        }
        store.close()
    }

    func checkUsable() throws(RegistryError) {
        if !inOwnerProcess {
            throw RegistryError(.closed, "this registry handle was opened by pid \(ownerPID) and inherited across fork(); open a new one in this process")
        }
        if state.withLock({ $0.closed }) { throw RegistryError(.closed, "the registry handle is closed") }
    }

    // MARK: - Reading

    /// The current parsed file: one `fstatat` when nothing changed since the last read.
    func snapshot() throws(RegistryError) -> Snapshot {
        try checkUsable()
        let stamp = try store.currentStamp()
        let cached = state.withLock { $0.snapshot }
        if cached.stamp == stamp { return cached }
        guard let (document, readStamp) = try store.read(previous: cached.document) else { return .empty }
        let fresh = Snapshot(document: document, stamp: readStamp)
        state.withLock { $0.snapshot = fresh }
        return fresh
    }

    func judge() -> LivenessJudge {
        LivenessJudge(store: store, ownLeases: Set(state.withLock { $0.leases.keys }), nowMillis: Timestamp.nowMillis())
    }

    /// The live entry `id`.
    /// - Throws: `.notFound` when there is none or its server is gone; `.corrupt`, `.permission`,
    ///   `.io` when the file cannot be read.
    /// Costs one `stat`, a hash lookup and a liveness check (for a lease: open + flock).
    public func get(_ id: String) throws(RegistryError) -> ServerEntry {
        let snap = try snapshot()
        guard let entry = snap.entry(id), judge().isAlive(entry) else {
            throw RegistryError(.notFound, "no live server with id \"\(id.prefix(80))\" in \(path)")
        }
        return entry
    }

    /// The live entries matching `filter`, in file order, with the file generation they come from.
    /// Costs one `stat` plus one liveness check per matching entry.
    public func list(_ filter: ServerFilter = ServerFilter()) throws(RegistryError) -> RegistryListing {
        var snap = try snapshot()
        if snap.document.hasUnencodedEntries {
            // A file another writer wrote: encode its entries once for this version, so listing
            // it again (and this handle's next write) copies bytes instead of encoding.
            var document = snap.document
            document.encodeMissing()
            let encoded = Snapshot(document: document, stamp: snap.stamp)
            let current = snap
            state.withLock { if $0.snapshot === current { $0.snapshot = encoded } }
            snap = encoded
        }
        let judge = judge()
        let servers = snap.document.servers.filter { filter.matches($0) && judge.isAlive($0) }
        return RegistryListing(generation: snap.document.generation, servers: servers)
    }

    /// The generation of the file as it is now (0 when it does not exist yet).
    public func generation() throws(RegistryError) -> Int64 { try snapshot().document.generation }

    // MARK: - Writing

    /// What a write changes, applied to the document read under the lock.
    struct Transaction {
        var document: RegistryDocument
        var changed = false
        /// Leases taken by this write (released again if it fails).
        var acquiredLeases: [String: Int32] = [:]
        /// Leases this handle gives up once the write is durable.
        var releasedLeases: [String] = []
        var removedDead = 0
    }

    /// Runs `body` under the write lock on the current document, prunes dead entries, and writes
    /// the result if anything changed. Nothing is written, and leases taken are released, if
    /// `body` or the write fails.
    @discardableResult
    func transaction<T>(allowClosed: Bool = false, _ body: (inout Transaction) throws(RegistryError) -> T) throws(RegistryError) -> (T, Int) {
        if allowClosed {
            guard inOwnerProcess else { throw RegistryError(.closed, "inherited across fork()") }
        } else {
            try checkUsable()
        }
        return try store.withWriteLock(timeoutMicros: options.lockTimeoutMicros) { () throws(RegistryError) -> (T, Int) in
            var txn = Transaction(document: try currentDocumentForWrite())
            do throws(RegistryError) {
                let result = try body(&txn)
                try commit(&txn)
                state.withLock { s in
                    for (id, fd) in txn.acquiredLeases { s.leases[id] = fd }
                    for id in txn.releasedLeases {
                        if let fd = s.leases.removeValue(forKey: id) { releaseLease(id, fd) }
                    }
                }
                return (result, txn.removedDead)
            } catch {
                for (id, fd) in txn.acquiredLeases { releaseLease(id, fd) }
                throw error
            }
        }
    }

    /// Under the lock: the cached document if the file is unchanged, else a fresh read. The
    /// cached snapshot is taken out of the handle (readers meanwhile re-read the file), so that
    /// once it is released the document is uniquely owned and the write mutates it in place
    /// instead of copying every entry.
    private func currentDocumentForWrite() throws(RegistryError) -> RegistryDocument {
        let stamp = try store.currentStamp()
        // When this returns, `cached` is released with the snapshot, so the document returned
        // is the only reference to its entries.
        let cached = state.withLock { s -> Snapshot in
            defer { s.snapshot = .empty }
            return s.snapshot
        }
        if cached.stamp == stamp { return cached.document }
        guard let (fresh, _) = try store.read(previous: cached.document) else { return RegistryDocument() }
        return fresh
    }

    private func commit(_ txn: inout Transaction) throws(RegistryError) {
        var own = Set(state.withLock { $0.leases.keys })
        own.formUnion(txn.acquiredLeases.keys)
        let judge = LivenessJudge(store: store, ownLeases: own, nowMillis: Timestamp.nowMillis())
        var claimed: [String: Int32] = [:]
        defer {
            // Dead leases are unlinked only after the write is durable, while still locked.
            let dir = try? store.leasesDirectory(create: false)
            for (id, fd) in claimed {
                if let dir, txn.changed || txn.removedDead > 0 { unlinkat(dir, id + ".lease", 0) }
                Glibc.close(fd)
            }
        }
        let before = txn.document.servers.count
        txn.document.servers.removeAll { !judge.isAlive($0, claimed: &claimed, claimDeadLeases: true) }
        let removed = before - txn.document.servers.count
        txn.document.assignLegacyIDs()
        guard txn.changed || removed > 0 else { return }
        guard txn.document.servers.count <= options.limits.maxEntries else {
            throw RegistryError(.limit, "the registry would hold \(txn.document.servers.count) entries, over the limit of \(options.limits.maxEntries)")
        }
        txn.document.generation += 1
        let bytes = txn.document.encodeCaching()
        guard bytes.count <= options.limits.maxFileBytes else {
            throw RegistryError(.limit, "the registry file would be \(bytes.count) bytes, over the limit of \(options.limits.maxFileBytes)")
        }
        let stamp = try store.replace(with: bytes)
        txn.removedDead = removed
        txn.changed = true
        let snap = Snapshot(document: txn.document, stamp: stamp)
        state.withLock { $0.snapshot = snap }
    }

    /// Takes `flock(LOCK_EX)` on `leases/<id>.lease` (creating it 0600). Readers hold a shared
    /// lock on it for microseconds, so a busy lock is retried briefly before it means that a live
    /// process holds the id.
    private func acquireLease(_ id: String) throws(RegistryError) -> Int32 {
        guard let dir = try store.leasesDirectory(create: true) else { throw RegistryError(.io, "no leases directory") }
        let name = id + ".lease"
        let leasePath = store.leasesPath + "/" + name
        let deadline = Sys.monotonicMicros() + 50_000
        while true {
            let fd = Sys.openAt(dir, name, O_RDWR | O_CREAT | O_NOFOLLOW, 0o600)
            guard fd >= 0 else {
                if errno == ELOOP { throw RegistryStore.symlinkError(leasePath) }
                throw Sys.ioError("open", leasePath)
            }
            let st: stat
            do throws(RegistryError) {
                st = try Sys.fstatOrThrow(fd, leasePath)
                try RegistryStore.checkFile(st, path: leasePath)
            } catch {
                Glibc.close(fd)
                throw error
            }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 {
                // A pruner may have unlinked the file between our open and our lock: only a lock
                // on the inode the path still names counts.
                var now = stat()
                if fstatat(dir, name, &now, AT_SYMLINK_NOFOLLOW) == 0, now.st_ino == st.st_ino, now.st_dev == st.st_dev {
                    let text = Array("\(getpid())\n".utf8)
                    _ = ftruncate(fd, 0)
                    _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
                    Sys.track(fd)
                    return fd
                }
            }
            Glibc.close(fd)
            if Sys.monotonicMicros() >= deadline {
                throw RegistryError(.exists, "id \"\(id)\" is held by another live registrant (its lease \(leasePath) is locked)")
            }
            Sys.sleepMicros(500)
        }
    }

    /// Unlinks a lease file this handle holds, then closes (and so unlocks) it.
    private func releaseLease(_ id: String, _ fd: Int32) {
        if let dir = try? store.leasesDirectory(create: false) {
            var byPath = stat(), mine = stat()
            if fstatat(dir, id + ".lease", &byPath, AT_SYMLINK_NOFOLLOW) == 0, fstat(fd, &mine) == 0,
               byPath.st_ino == mine.st_ino, byPath.st_dev == mine.st_dev {
                unlinkat(dir, id + ".lease", 0)
            }
        }
        Sys.closeTracked(fd)
    }

    /// Registers `entry`, or replaces it when this handle registered the same id, and returns
    /// what was stored: `startedAt`, `lastSeen`, `pid` (for lease), `transport` and `port` (from
    /// the URL) and `ttlSeconds` (30, for ttl) filled in. Durable when it returns.
    /// - Throws: `.invalid` for a bad entry (the message names the field), `.exists` when another
    ///   live registrant holds the id with a lease, `.limit`, `.corrupt`, `.timeout`, `.io`,
    ///   `.permission`, `.closed`.
    /// Cost: one durable write (see docs/BENCHMARKS.md).
    @discardableResult
    public func register(_ entry: ServerEntry) throws(RegistryError) -> ServerEntry {
        var entry = entry
        try prepareForRegistration(&entry)
        let (stored, _) = try transaction { txn throws(RegistryError) -> ServerEntry in
            let holds = state.withLock { $0.leases[entry.id] != nil } || txn.acquiredLeases[entry.id] != nil
            // A legacy entry's derived id is not a registration: a real id equal to it leaves
            // the legacy entry alone (it is given another derived id).
            if let i = txn.document.servers.firstIndex(where: { $0.id == entry.id && !$0.isLegacy }) {
                let existing = txn.document.servers[i]
                if existing.liveness == .lease, !holds, judge().isAlive(existing) {
                    throw RegistryError(.exists, "id \"\(entry.id)\" is registered by another live process (pid \(existing.pid.map(String.init) ?? "?")); pick another id or unregister it")
                }
                if holds, existing.liveness == .lease, entry.startedAt == nil { entry.startedAt = existing.startedAt }
                if entry.startedAt == nil { entry.startedAt = entry.lastSeen }
                txn.document.servers[i] = entry
            } else {
                if entry.startedAt == nil { entry.startedAt = entry.lastSeen }
                txn.document.servers.append(entry)
            }
            if entry.liveness == .lease, !holds {
                txn.acquiredLeases[entry.id] = try acquireLease(entry.id)
            } else if entry.liveness != .lease, holds {
                txn.releasedLeases.append(entry.id)
            }
            txn.changed = true
            return entry
        }
        return stored
    }

    /// Registers one entry given as JSON (as the C ABI does). See `register(_:)`.
    @discardableResult
    public func register(json: String) throws(RegistryError) -> ServerEntry {
        try checkUsable()
        return try register(ServerEntry(jsonText: json, limits: options.limits))
    }

    /// Fills defaults and validates what `register` stores.
    private func prepareForRegistration(_ entry: inout ServerEntry) throws(RegistryError) {
        try checkUsable()
        guard ServerEntry.isValidID(entry.id) else {
            throw RegistryError(.invalid, "field \"id\": \"\(entry.id.prefix(80))\" is not a valid id (1-64 of A-Z a-z 0-9 _ -, starting with a letter or digit)")
        }
        // Round-trip through the validator so Swift callers get the same checks as JSON callers.
        entry.isLegacy = false
        let revalidated = try ServerEntry(json: entry.jsonObject, source: .input, limits: options.limits)
        entry = revalidated
        let now = Timestamp.now()
        entry.lastSeen = now
        if let url = entry.url {
            if entry.transport == nil { entry.transport = ServerEntry.transport(fromURL: url) }
            if entry.port == nil { entry.port = ServerEntry.port(fromURL: url) }
        } else if entry.transport != .stdio {
            throw RegistryError(.invalid, "field \"url\": is required (except for transport \"stdio\")")
        }
        switch entry.liveness {
        case .lease:
            entry.pid = entry.pid ?? getpid()
            entry.pidStartTime = nil
        case .pid:
            guard let pid = entry.pid else { throw RegistryError(.invalid, "field \"pid\": is required for pid liveness") }
            #if os(Linux)
            guard let st = LivenessJudge.procStat(pid), st.state != UInt8(ascii: "Z") else {
                throw RegistryError(.invalid, "field \"pid\": process \(pid) is not running")
            }
            entry.pidStartTime = st.startTime
            #endif
        case .ttl:
            entry.ttlSeconds = entry.ttlSeconds ?? 30
        case .none:
            break
        }
        if entry.health.status != .unknown || entry.health.message != nil, entry.health.lastCheck == nil {
            entry.health.lastCheck = now
        }
        let size = JSONValue.object(entry.jsonObject).jsonText.utf8.count
        guard size <= options.limits.maxEntryBytes else {
            throw RegistryError(.limit, "the entry is \(size) bytes, over the limit of \(options.limits.maxEntryBytes)")
        }
    }

    /// Removes the entry `id` (any liveness mode; an operator may remove another process's
    /// entry) and releases its lease if this handle held it. Durable when it returns.
    /// - Throws: `.notFound` when there is no such entry, plus the write errors of `register`.
    public func unregister(_ id: String) throws(RegistryError) {
        try transaction { txn throws(RegistryError) in
            guard let i = txn.document.servers.firstIndex(where: { $0.id == id }) else {
                throw RegistryError(.notFound, "no server with id \"\(id.prefix(80))\" in \(path)")
            }
            txn.document.servers.remove(at: i)
            if state.withLock({ $0.leases[id] != nil }) { txn.releasedLeases.append(id) }
            txn.changed = true
        }
    }

    /// Applies `change` to the live entry `id` in one write.
    private func update(_ id: String, _ change: (inout ServerEntry) -> Void) throws(RegistryError) {
        try transaction { txn throws(RegistryError) in
            guard let i = txn.document.servers.firstIndex(where: { $0.id == id }), judge().isAlive(txn.document.servers[i]) else {
                throw RegistryError(.notFound, "no live server with id \"\(id.prefix(80))\" in \(path)")
            }
            change(&txn.document.servers[i])
            txn.changed = true
        }
    }

    /// Records the health reported for `id`, with `lastCheck` = now. DOWN servers never resolve.
    /// - Throws: `.notFound`, `.limit` (message too long), and the write errors.
    public func setHealth(_ id: String, _ status: HealthStatus, message: String? = nil) throws(RegistryError) {
        try checkUsable()
        if let message {
            guard message.utf8.count <= options.limits.maxStringBytes else {
                throw RegistryError(.limit, "the health message is \(message.utf8.count) bytes, over the limit of \(options.limits.maxStringBytes)")
            }
            guard !message.utf8.contains(0) else { throw RegistryError(.invalid, "the health message contains a NUL character") }
        }
        let now = Timestamp.now()
        try update(id) { e in
            e.health.status = status
            e.health.message = message
            e.health.lastCheck = now
            e.health.consecutiveFailures = nil
        }
    }

    /// Sets `id`'s health back to UNKNOWN with no message.
    public func resetHealth(_ id: String) throws(RegistryError) {
        try update(id) { e in
            e.health.status = .unknown
            e.health.message = nil
            e.health.lastCheck = nil
        }
    }

    /// Sets every entry's health back to UNKNOWN, in one write. Returns how many changed.
    @discardableResult
    public func resetAllHealth() throws(RegistryError) -> Int {
        try transaction { txn throws(RegistryError) -> Int in
            var n = 0
            for i in txn.document.servers.indices where txn.document.servers[i].health.status != .unknown || txn.document.servers[i].health.message != nil {
                txn.document.servers[i].health.status = .unknown
                txn.document.servers[i].health.message = nil
                txn.document.servers[i].health.lastCheck = nil
                n += 1
            }
            txn.changed = n > 0
            return n
        }.0
    }

    /// Sets `lastSeen` of `id` to now: keeps a `ttl` entry alive for another `ttlSeconds`.
    /// - Throws: `.notFound` when the entry is missing or already expired (register again).
    public func heartbeat(_ id: String) throws(RegistryError) {
        let now = Timestamp.now()
        try update(id) { $0.lastSeen = now }
    }

    /// Removes every dead entry now, and lease files no entry uses. Returns the number of
    /// entries removed. Every write prunes anyway; this is for tools and tests.
    @discardableResult
    public func prune() throws(RegistryError) -> Int {
        try transaction { txn throws(RegistryError) -> Void in
            // Orphaned lease files: a registrant that died between taking its lease and writing.
            guard let dir = try store.leasesDirectory(create: false) else { return }
            let live = Set(txn.document.servers.map(\.id))
            let dupFD = dup(dir)
            guard dupFD >= 0, let stream = fdopendir(dupFD) else { return }
            defer { closedir(stream) }
            rewinddir(stream)
            while let ent = readdir(stream) {
                // Only the bytes up to the NUL are initialised: read through a pointer, never copy.
                let name = withUnsafeMutablePointer(to: &ent.pointee.d_name) {
                    $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
                }
                guard name.hasSuffix(".lease") else { continue }
                let id = String(name.dropLast(6))
                guard !live.contains(id) else { continue }
                let fd = Sys.openAt(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
                guard fd >= 0 else { continue }
                if flock(fd, LOCK_EX | LOCK_NB) == 0 { unlinkat(dir, name, 0) }
                Glibc.close(fd)
            }
        }.1
    }

    /// If the file does not parse (or breaks a limit), moves it aside as
    /// `servers.json.corrupt-<timestamp>` and returns that path; the registry starts empty.
    /// Returns nil, changing nothing, when the file is fine or missing.
    @discardableResult
    public func repair() throws(RegistryError) -> String? {
        try checkUsable()
        return try store.withWriteLock(timeoutMicros: options.lockTimeoutMicros) { () throws(RegistryError) -> String? in
            do throws(RegistryError) {
                _ = try store.read()
                return nil
            } catch {
                guard error.code == .corrupt || error.code == .limit else { throw error }
                let aside = try store.moveAside()
                state.withLock { $0.snapshot = .empty }
                return aside
            }
        }
    }
}
