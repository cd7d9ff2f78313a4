#if canImport(Glibc)
import Glibc
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
        /// Open for reading only: nothing is created (no directory, no lock file; a missing
        /// registry reads as empty) and every write fails with `.permission`. For tools that only
        /// look (`peer-registry list`).
        public var readOnly = false
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
    /// The other machines' entries, for calls with cluster scope (ClusterView.swift).
    let clusterView: ClusterViewReader
    /// The process that opened the handle; in a forked child the handle is closed.
    let ownerPID: pid_t
    /// `prshim_fork_generation()` when opened: differs in a forked child (checked without a syscall).
    let forkGeneration: Int32

    struct State {
        var closed = false
        /// Calls using the store right now; `close()` waits for them.
        var inFlight = 0
        /// Lease descriptors this handle holds, by entry id (each holds `flock(LOCK_EX)`).
        var leases: [String: Int32] = [:]
        /// The entries this handle holds leases for, as it last wrote them: what anti-entropy
        /// restores (docs/FORMAT.md, "Anti-entropy").
        var owned: [String: ServerEntry] = [:]
        /// Where each owned entry was in the document this handle last wrote: checked first, so
        /// that recording what a write left of them costs one comparison per held lease instead
        /// of a hash of every entry's id (a quarter of a write's instructions at 1,000 entries).
        var ownedAt: [String: Int] = [:]
        var snapshot: Snapshot = .empty
        /// The highest generation this handle has seen: a write never goes below it, even
        /// after the file was deleted, repaired or rolled back by a tool that bypasses the lock.
        var highestGeneration: Int64 = 0
        var antiEntropy: AntiEntropy?
    }
    let state = ForkSafeMutex(State())

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
        self.store = try RegistryStore(path: resolved, limits: options.limits, readOnly: options.readOnly)
        self.clusterView = ClusterViewReader(registryPath: resolved, limits: options.limits)
        self.ownerPID = getpid()
        self.forkGeneration = prshim_fork_generation()
    }

    /// True in the process that opened the handle, false in a forked child.
    var inOwnerProcess: Bool { prshim_fork_generation() == forkGeneration }

    deinit {
        close()
    }

    /// Unregisters every entry this handle registered with `lease` liveness (one write),
    /// releases the leases and closes the handle. Idempotent and safe to call while other threads
    /// are inside calls on the handle: it waits for them to finish (a write waiting for the file
    /// lock finishes within the lock timeout), and calls made after it fail with `.closed`.
    /// Never throws: if the write fails (say the file is corrupt), the released leases make those
    /// entries dead anyway, and the next writer removes them.
    public func close() {
        let (wasOpen, antiEntropy) = state.withLock { s -> (Bool, AntiEntropy?) in
            defer {
                s.closed = true
                s.antiEntropy = nil
            }
            return (!s.closed, s.antiEntropy)
        }
        guard wasOpen else { return }
        antiEntropy?.stop()
        // In a forked child the descriptors were already closed at fork (registry_shims.c) and
        // the entries belong to the parent: touch nothing.
        guard inOwnerProcess else { return }
        while state.withLock({ $0.inFlight }) > 0 { Sys.sleepMicros(200) }
        let leases = state.withLock { $0.leases }
        if !leases.isEmpty {
            _ = try? transaction(allowClosed: true) { txn throws(RegistryError) in
                txn.document.servers.removeAll { leases[$0.id] != nil }
                txn.releasedLeases.append(contentsOf: leases.keys)
                txn.changed = true
            }
            state.withLock { s in
                for (id, fd) in s.leases { releaseLease(id, fd) }
                s.leases = [:]
                s.owned = [:]
                s.ownedAt = [:]
            }
        }
        clusterView.close()
        store.close()
    }

    /// Marks a call as using the handle until `leave()`; `close()` waits for it.
    /// - Throws: `.closed` once closed or in a forked child.
    func enter() throws(RegistryError) {
        if !inOwnerProcess {
            throw RegistryError(.closed, "this registry handle was opened by pid \(ownerPID) and inherited across fork(); open a new one in this process")
        }
        try state.withLock { s throws(RegistryError) in
            if s.closed { throw RegistryError(.closed, "the registry handle is closed") }
            s.inFlight += 1
        }
    }

    func leave() {
        state.withLock { $0.inFlight -= 1 }
    }

    func checkUsable() throws(RegistryError) {
        try enter()
        leave()
    }

    // MARK: - Reading

    /// The current parsed file: one `fstatat` when nothing changed since the last read (and the
    /// last read was not so close to the file's mtime that a rewrite could keep its stamp; then
    /// the file is read again and compared).
    func snapshot() throws(RegistryError) -> Snapshot {
        try enter()
        defer { leave() }
        let cached = state.withLock { $0.snapshot }
        let fresh = try store.load(cached: cached)
        if fresh !== cached {
            state.withLock { s in
                s.snapshot = fresh
                s.highestGeneration = max(s.highestGeneration, fresh.document.generation)
            }
        }
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
        try enter()
        defer { leave() }
        let snap = try snapshot()
        guard let entry = snap.entry(id), judge().isAlive(entry) else {
            throw RegistryError(.notFound, "no live server with id \"\(id.prefix(80))\" in \(path)")
        }
        return entry
    }

    /// The live entries matching `filter`, in file order, with the file generation they come from;
    /// with `filter.scope == .cluster`, followed by the other machines' entries from the cluster
    /// view (docs/CLUSTER.md; `.corrupt` if that view does not parse).
    /// Costs one `stat` plus one liveness check per matching entry (and one `stat` of the view).
    public func list(_ filter: ServerFilter = ServerFilter()) throws(RegistryError) -> RegistryListing {
        try enter()
        defer { leave() }
        let snap = try listingSnapshot()
        let judge = judge()
        var servers = snap.document.servers.filter { filter.matches($0) && judge.isAlive($0) }
        if filter.scope == .cluster { servers += try clusterView.snapshot().document.servers.filter(filter.matches) }
        return RegistryListing(generation: snap.document.generation, servers: servers)
    }

    /// `list(filter).jsonText` as UTF-8 bytes. The unfiltered local listing is encoded once per
    /// version of the file and set of live entries, and then handed out as a copy of those
    /// bytes: listing an unchanged registry costs a `stat`, a liveness check per entry and a
    /// memcpy (the C ABI's `peerreg_list` with no filter).
    public func listJSON(_ filter: ServerFilter = ServerFilter()) throws(RegistryError) -> [UInt8] {
        guard filter.selectsAllLocal else { return Array(try list(filter).jsonText.utf8) }
        try enter()
        defer { leave() }
        let snap = try listingSnapshot()
        let judge = judge()
        return snap.listingJSON(alive: snap.document.servers.map { judge.isAlive($0) })
    }

    /// The current snapshot, with every entry's encoded bytes. A file another writer wrote is
    /// encoded once for this version, so listing it again (and this handle's next write) copies
    /// bytes instead of encoding.
    private func listingSnapshot() throws(RegistryError) -> Snapshot {
        let snap = try snapshot()
        guard snap.document.hasUnencodedEntries else { return snap }
        var document = snap.document
        document.encodeMissing()
        let encoded = snap.replacingDocument(document)
        state.withLock { if $0.snapshot === snap { $0.snapshot = encoded } }
        return encoded
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
        /// Owned entries put back by anti-entropy.
        var restored = 0
        /// Other processes' queued changes this write carries (group commit), and whether this
        /// handle's own change changed anything before they were added.
        var absorbed: [AbsorbedRequest] = []
        var ownChanged = false
        /// The change is made again after a holder that had taken it died unanswered: an
        /// unregister of an entry already gone succeeds.
        var idempotent = false
    }

    /// Runs `body` under the write lock on the current document, prunes dead entries, and writes
    /// the result if anything changed. Entries this handle holds leases for are first restored
    /// if a writer that bypasses the library removed or changed them (anti-entropy). Nothing is
    /// written, and leases taken are released, if `body` or the write fails.
    @discardableResult
    func transaction<T>(allowClosed: Bool = false, _ body: (inout Transaction) throws(RegistryError) -> T) throws(RegistryError) -> (T, Int) {
        guard let done = try transaction(allowClosed: allowClosed, request: nil, body) else {
            throw RegistryError(.io, "internal error: a write without a request was answered by another process")
        }
        return done
    }

    /// `transaction`, with group commit: while the lock is taken, `request`'s change is left for
    /// the holder to make (GroupCommit.swift). Nil when another process made or refused it (its
    /// answer is in `request.outcome`); `body` then did not run.
    func transaction<T>(allowClosed: Bool = false, request: GroupRequest?, _ body: (inout Transaction) throws(RegistryError) -> T) throws(RegistryError) -> (T, Int)? {
        if allowClosed {
            guard inOwnerProcess else { throw RegistryError(.closed, "inherited across fork()") }
        } else {
            try enter()
        }
        defer { if !allowClosed { leave() } }
        return try store.withWriteLock(timeoutMicros: options.lockTimeoutMicros, request: request) { () throws(RegistryError) -> (T, Int) in
            let (document, ownWrite) = try currentDocumentForWrite()
            var txn = Transaction(document: document)
            if let request {
                // Making the change itself after all: the lease taken for the request is this
                // write's.
                if let (id, fd) = request.lease {
                    txn.acquiredLeases[id] = fd
                    request.lease = nil
                }
                txn.idempotent = request.abandoned
            }
            do throws(RegistryError) {
                // The file unchanged since this handle wrote it holds its entries as it holds
                // them: nothing to restore (a handle filling the file with 1,000 leases spent a
                // fifth of each write confirming it).
                if !ownWrite { restoreOwned(&txn) }
                let result = try body(&txn)
                txn.ownChanged = txn.changed
                let queued = allowClosed ? [] : queuedRequests()
                if queued.isEmpty {
                    try commit(&txn)
                } else {
                    // Others' queued changes ride along; if that write fails they go back to
                    // their owners and this handle's change is written alone. (The copy is
                    // made only here: a second reference to the document makes the write copy
                    // every entry.)
                    var failed: [AbsorbedRequest]?
                    do {
                        var grouped = txn
                        absorbQueued(queued, into: &grouped)
                        do throws(RegistryError) {
                            try commit(&grouped)
                            txn = grouped
                            answerAbsorbed(txn)
                        } catch {
                            guard !grouped.absorbed.isEmpty else { throw error }
                            failed = grouped.absorbed
                        }
                    }
                    if let failed {
                        returnAbsorbed(failed)
                        try commit(&txn)
                    }
                }
                state.withLock { s in
                    for (id, fd) in txn.acquiredLeases { s.leases[id] = fd }
                    for id in txn.releasedLeases {
                        if let fd = s.leases.removeValue(forKey: id) { releaseLease(id, fd) }
                        s.owned[id] = nil
                        s.ownedAt[id] = nil
                    }
                    // What this handle holds is now what the file says of it. (Through the
                    // buffer: iterating the array copied every entry.) Real ids are unique in a
                    // document, so an entry found where it was last time is the one.
                    if !s.leases.isEmpty {
                        txn.document.servers.withUnsafeBufferPointer { buf in
                            let moved = s.leases.keys.contains { id in
                                guard let i = s.ownedAt[id], i < buf.count, !buf[i].isLegacy, buf[i].id == id else { return true }
                                s.owned[id] = buf[i]
                                return false
                            }
                            guard moved else { return }
                            for i in buf.indices where !buf[i].isLegacy && s.leases[buf[i].id] != nil {
                                s.owned[buf[i].id] = buf[i]
                                s.ownedAt[buf[i].id] = i
                            }
                        }
                    }
                }
                if !txn.acquiredLeases.isEmpty { startAntiEntropy() }
                return (result, txn.removedDead)
            } catch {
                for (id, fd) in txn.acquiredLeases { releaseLease(id, fd) }
                throw error
            }
        }
    }

    /// Under the lock: the cached document if the file is provably unchanged, else a fresh read.
    /// The cached snapshot is taken out of the handle (readers meanwhile re-read the file), so
    /// that once it is released the document is uniquely owned and the write mutates it in place
    /// instead of copying every entry.
    /// `ownWrite`: the document is this handle's last write, the file unchanged since.
    private func currentDocumentForWrite() throws(RegistryError) -> (document: RegistryDocument, ownWrite: Bool) {
        // When this returns, `cached` is released with the snapshot, so the document returned
        // is the only reference to its entries.
        let cached = state.withLock { s -> Snapshot in
            defer { s.snapshot = .empty }
            return s.snapshot
        }
        let current = try store.load(cached: cached)
        state.withLock { $0.highestGeneration = max($0.highestGeneration, current.document.generation) }
        return (current.document, current === cached && cached.writer == ObjectIdentifier(self))
    }

    /// Puts back the entries this handle holds leases for where the document lost or changed
    /// them — except `health` and `lastSeen`, which other processes may report through the
    /// library. (Through the library nobody else can remove or replace a held entry.)
    /// One pass over the document whatever the number of entries held (a search per held entry
    /// made a process registering 1,000 leases quadratic: 3.8 s of CPU to fill the file).
    private func restoreOwned(_ txn: inout Transaction) {
        let owned = state.withLock { $0.owned }
        guard !owned.isEmpty else { return }
        // The first non-legacy entry with each held id, by index (read through the buffer:
        // iterating the array would copy every entry).
        var at: [String: Int] = [:]
        at.reserveCapacity(owned.count)
        txn.document.servers.withUnsafeBufferPointer { buf in
            for i in buf.indices where !buf[i].isLegacy && owned.index(forKey: buf[i].id) != nil && at[buf[i].id] == nil {
                at[buf[i].id] = i
            }
        }
        for (id, mine) in owned {
            if let i = at[id] {
                let current = txn.document.servers[i]
                guard !current.sameOwnedFields(as: mine) else { continue }
                var restored = mine
                restored.health = current.health
                restored.lastSeen = current.lastSeen ?? mine.lastSeen
                txn.document.servers[i] = restored
            } else {
                txn.document.servers.append(mine)
            }
            txn.changed = true
            txn.restored += 1
        }
    }

    /// Whether the file still holds this handle's entries as it wrote them (see `restoreOwned`).
    /// Cheap when they are: writers copy unchanged entries byte for byte, one per line, so each
    /// one's encoded bytes are looked up among the file's lines (by length, then memcmp); only when one
    /// is not found is the file parsed and the entries compared field by field.
    func ownedEntriesIntact() throws(RegistryError) -> Bool {
        let owned = state.withLock { $0.owned }
        guard !owned.isEmpty else { return true }
        if let bytes = try store.rawBytes(), RegistryDocument.linesContain(bytes, owned.values.map { ($0.encoded ?? $0.readBytes)?.bytes ?? [] }) {
            return true
        }
        let snap = try snapshot()
        return owned.allSatisfy { id, mine in snap.entry(id).map { $0.sameOwnedFields(as: mine) } ?? false }
    }

    /// Starts this handle's anti-entropy thread, once.
    private func startAntiEntropy() {
        let needed = state.withLock { s -> Bool in
            guard s.antiEntropy == nil, !s.closed else { return false }
            s.antiEntropy = AntiEntropy(registry: self)
            return true
        }
        if needed { state.withLock { $0.antiEntropy }?.start() }
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
                if let dir, txn.changed || txn.removedDead > 0 { Sys.unlinkAt(dir, id + ".lease", path: store.leasesPath + "/" + id + ".lease") }
                Sys.closeTracked(fd)
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
        // Values read from the file never reach unchecked arithmetic: the reader bounds the
        // generation, and the write refuses to pass the bound.
        let base = max(txn.document.generation, state.withLock { $0.highestGeneration })
        // One step per change: a write carrying others' queued changes counts each of them.
        let applied = txn.absorbed.lazy.filter { $0.refusal == nil }.count
        let steps = Int64(max(1, (txn.absorbed.isEmpty || txn.ownChanged ? 1 : 0) + applied))
        guard base <= RegistryDocument.maxGeneration - steps else {
            throw RegistryError(.limit, "the registry's generation counter is at its maximum (\(RegistryDocument.maxGeneration)); run `peer-registry repair` to restart it")
        }
        txn.document.generation = base + steps
        var fresh: [Int] = []
        let bytes = txn.document.encodeCaching(freshlyEncoded: &fresh)
        guard bytes.count <= options.limits.maxFileBytes else {
            throw RegistryError(.limit, "the registry file would be \(bytes.count) bytes, over the limit of \(options.limits.maxFileBytes)")
        }
        // Never write what a reader would refuse: every entry encoded by this write is read back
        // by the reader's own rules, at the depth it has in the file.
        for i in fresh { try txn.document.checkReadable(entryAt: i, limits: options.limits) }
        let stamp = try store.replace(with: bytes)
        txn.removedDead = removed
        txn.changed = true
        let snap = Snapshot(document: txn.document, stamp: stamp, bytes: bytes, confirmedAt: Sys.realtimeNanos(), writer: ObjectIdentifier(self))
        let generation = txn.document.generation
        state.withLock { s in
            s.snapshot = snap
            s.highestGeneration = max(s.highestGeneration, generation)
        }
    }

    /// Registers `entry` and returns what was stored: `startedAt`, `lastSeen`, `pid` (for
    /// lease), `transport` and `port` (from the URL) and `ttlSeconds` (30, for ttl) filled in.
    /// Durable when it returns.
    ///
    /// An existing entry with the same id is replaced — when this handle holds its lease, or it
    /// is not a live lease entry (a `ttl`, `pid` or static entry is replaced by whoever registers
    /// the id again) — unless `onlyIfAbsent` is true: then any live entry with the id is
    /// `.exists`, checked under the write lock (no race between looking and registering).
    /// - Throws: `.invalid` for a bad entry (the message names the field), `.exists` when another
    ///   live registrant holds the id with a lease (or, with `onlyIfAbsent`, any live entry has
    ///   it), `.limit`, `.corrupt`, `.timeout`, `.io`, `.permission`, `.closed`.
    /// Cost: one durable write (see docs/BENCHMARKS.md).
    @discardableResult
    public func register(_ entry: ServerEntry, onlyIfAbsent: Bool = false) throws(RegistryError) -> ServerEntry {
        try enter()
        defer { leave() }
        var entry = entry
        try prepareForRegistration(&entry)
        let heldBefore = state.withLock { $0.leases[entry.id] != nil }
        // Queued under contention (group commit) unless the rules need this handle's own view:
        // `onlyIfAbsent`, or giving up a held lease for another liveness.
        let request = !onlyIfAbsent && (entry.liveness == .lease || !heldBefore)
            ? groupRequest(.register(entry), heldBefore: heldBefore)
            : nil
        defer { request?.releaseTakenLease() }
        let done = try transaction(request: request) { txn throws(RegistryError) -> ServerEntry in
            let holds = heldBefore || txn.acquiredLeases[entry.id] != nil
            try Self.applyRegister(&entry, holds: holds, heldBefore: heldBefore, onlyIfAbsent: onlyIfAbsent, judge: judge(), to: &txn.document)
            if entry.liveness == .lease, !holds {
                txn.acquiredLeases[entry.id] = try acquireLease(entry.id)
            } else if entry.liveness != .lease, heldBefore {
                txn.releasedLeases.append(entry.id)
            }
            txn.changed = true
            return entry
        }
        if let (stored, _) = done { return stored }
        return try finishAnswered(request) ?? entry
    }

    /// The rules of `register` for an entry `prepareForRegistration` filled in, applied to the
    /// document read under the lock — for this handle, or for another process's queued change.
    /// `holds`: the registrant holds the id's lease now; `heldBefore`: it did before this change.
    static func applyRegister(_ entry: inout ServerEntry, holds: Bool, heldBefore: Bool, onlyIfAbsent: Bool, judge: LivenessJudge,
                              to document: inout RegistryDocument) throws(RegistryError) {
        // A legacy entry's derived id is not a registration: a real id equal to it leaves
        // the legacy entry alone (it is given another derived id).
        if let i = document.servers.firstIndex(where: { $0.id == entry.id && !$0.isLegacy }) {
            let existing = document.servers[i]
            if existing.liveness == .lease, !holds, judge.isAlive(existing) {
                throw RegistryError(.exists, "id \"\(entry.id)\" is registered by another live process (pid \(existing.pid.map(String.init) ?? "?")); pick another id or unregister it")
            }
            if onlyIfAbsent, judge.isAlive(existing) {
                throw RegistryError(.exists, "id \"\(entry.id)\" is already registered (\(existing.liveness.rawValue) entry); replace it explicitly or pick another id")
            }
            if heldBefore, existing.liveness == .lease, entry.startedAt == nil { entry.startedAt = existing.startedAt }
            if entry.startedAt == nil { entry.startedAt = entry.lastSeen }
            document.servers[i] = entry
        } else {
            if entry.startedAt == nil { entry.startedAt = entry.lastSeen }
            document.servers.append(entry)
        }
    }

    /// A request for a queued change of this handle (group commit), which updates what the
    /// handle holds when another process answers it.
    private func groupRequest(_ change: QueuedChange, heldBefore: Bool) -> GroupRequest {
        let request = GroupRequest(change, store: store, heldBefore: heldBefore, takeLease: { [self] id in try? acquireLease(id, patienceMicros: 0) },
                                   releaseLease: { [self] id, fd in releaseLease(id, fd) })
        request.onAnswer = { [self, unowned request] outcome in recordAnswer(outcome, of: request) }
        return request
    }

    /// The stored entry of an answered register; throws the refusal of a refused change.
    private func finishAnswered(_ request: GroupRequest?) throws(RegistryError) -> ServerEntry? {
        guard let request, let outcome = request.outcome else {
            throw RegistryError(.io, "internal error: a queued change of \(path) finished without an answer")
        }
        switch outcome {
        case .refused(let error): throw error
        case .applied(_, let stored): return stored
        }
    }

    /// What the handle holds after another process made its queued change (with the process's
    /// lock mutex held, see `GroupRequest.onAnswer`).
    private func recordAnswer(_ outcome: GroupOutcome, of request: GroupRequest) {
        switch outcome {
        case .refused:
            request.releaseTakenLease()
        case .applied(let generation, let stored):
            var startThread = false
            state.withLock { s in
                s.highestGeneration = max(s.highestGeneration, generation)
                switch request.change {
                case .register(let entry):
                    if let (id, fd) = request.lease {
                        s.leases[id] = fd
                        request.lease = nil
                        startThread = true
                    }
                    if entry.liveness == .lease, s.leases[entry.id] != nil {
                        s.owned[entry.id] = stored ?? entry
                        s.ownedAt[entry.id] = nil
                    }
                case .unregister(let id):
                    if let fd = s.leases.removeValue(forKey: id) { releaseLease(id, fd) }
                    s.owned[id] = nil
                    s.ownedAt[id] = nil
                case .heartbeat:
                    break
                }
            }
            if startThread { startAntiEntropy() }
        }
    }

    /// Registers one entry given as JSON (as the C ABI does). See `register(_:)`.
    @discardableResult
    public func register(json: String, onlyIfAbsent: Bool = false) throws(RegistryError) -> ServerEntry {
        try checkUsable()
        return try register(ServerEntry(jsonText: json, limits: options.limits), onlyIfAbsent: onlyIfAbsent)
    }

    /// Fills defaults and validates what `register` stores.
    private func prepareForRegistration(_ entry: inout ServerEntry) throws(RegistryError) {
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
            guard let st = LivenessJudge.procStat(pid), st.state != UInt8(ascii: "Z") else {
                throw RegistryError(.invalid, "field \"pid\": process \(pid) is not running")
            }
            entry.pidStartTime = st.startTime
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

    /// Removes the entry `id` and releases its lease if this handle held it. Durable when it
    /// returns. Any `ttl`, `pid`, static or dead entry may be removed (an operator cleaning up);
    /// a `lease` entry whose lease another live handle or process holds is refused — its owner
    /// would restore it (anti-entropy): stop that process to remove it.
    /// - Throws: `.notFound` when there is no such entry, `.permission` (naming the holder's
    ///   pid) for an entry leased by someone else, plus the write errors of `register`.
    public func unregister(_ id: String) throws(RegistryError) {
        let held = state.withLock { $0.leases[id] != nil }
        let request = groupRequest(.unregister(id: id), heldBefore: held)
        let done = try transaction(request: request) { txn throws(RegistryError) in
            try Self.applyUnregister(id, held: held, idempotent: txn.idempotent, judge: judge(), store: store, path: path, to: &txn.document)
            if held { txn.releasedLeases.append(id) }
            txn.changed = true
        }
        if done == nil { _ = try finishAnswered(request) }
    }

    /// The rules of `unregister` (see there), applied under the lock. `held`: the caller holds
    /// the entry's lease; `idempotent`: an entry already gone is not an error.
    static func applyUnregister(_ id: String, held: Bool, idempotent: Bool, judge: LivenessJudge, store: RegistryStore, path: String,
                                to document: inout RegistryDocument) throws(RegistryError) {
        guard let i = document.servers.firstIndex(where: { $0.id == id }) else {
            if idempotent { return }
            throw RegistryError(.notFound, "no server with id \"\(id.prefix(80))\" in \(path)")
        }
        let existing = document.servers[i]
        if existing.liveness == .lease, !existing.isLegacy, !held, judge.isAlive(existing) {
            let pid = store.leaseHolderPID(id) ?? existing.pid
            throw RegistryError(.permission, "\"\(id.prefix(80))\" is held by a live registrant (pid \(pid.map(String.init) ?? "?")), which would restore it; stop that process to remove its entry")
        }
        document.servers.remove(at: i)
    }

    /// Applies `change` to the live entry `id` in one write.
    private func update(_ id: String, _ change: (inout ServerEntry) -> Void) throws(RegistryError) {
        try transaction { txn throws(RegistryError) in
            try Self.applyUpdate(id, judge: judge(), path: path, to: &txn.document, change)
            txn.changed = true
        }
    }

    /// The rule of every update: the entry must be there and alive.
    static func applyUpdate(_ id: String, judge: LivenessJudge, path: String, to document: inout RegistryDocument,
                            _ change: (inout ServerEntry) -> Void) throws(RegistryError) {
        guard let i = document.servers.firstIndex(where: { $0.id == id }), judge.isAlive(document.servers[i]) else {
            throw RegistryError(.notFound, "no live server with id \"\(id.prefix(80))\" in \(path)")
        }
        change(&document.servers[i])
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
        let request = groupRequest(.heartbeat(id: id, lastSeen: now), heldBefore: false)
        let done = try transaction(request: request) { txn throws(RegistryError) in
            try Self.applyUpdate(id, judge: judge(), path: path, to: &txn.document) { $0.lastSeen = now }
            txn.changed = true
        }
        if done == nil { _ = try finishAnswered(request) }
    }

    /// Removes every dead entry now, and lease files no entry uses. Returns the number of
    /// entries removed. Every write prunes anyway; this is for tools and tests.
    @discardableResult
    public func prune() throws(RegistryError) -> Int {
        try transaction { txn throws(RegistryError) -> Void in
            // Orphaned lease files: a registrant that died between taking its lease and writing.
            guard let dir = try store.leasesDirectory(create: false) else { return }
            let live = Set(txn.document.servers.map(\.id))
            for name in try Sys.listDirectory(dir, path: store.leasesPath) where name.hasSuffix(".lease") {
                let id = String(name.dropLast(6))
                guard !live.contains(id) else { continue }
                let leasePath = store.leasesPath + "/" + name
                let fd = Sys.openAt(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, path: leasePath)
                guard fd >= 0 else { continue }
                if Sys.flock(fd, LOCK_EX | LOCK_NB, path: leasePath) == 0 { Sys.unlinkAt(dir, name, path: leasePath) }
                Sys.closeFD(fd)
            }
        }.1
    }

    /// If the file does not parse or breaks a limit, moves it aside as
    /// `servers.json.corrupt-<timestamp>` and writes a new file holding every entry of it that
    /// still validates (a file that parses keeps its valid entries; one that does not is
    /// salvaged line by line, as the library writes one entry per line), with a generation
    /// above the old one (or the highest this handle saw) so that watchers keep their order.
    /// Returns the path of the moved-aside file; nil, changing nothing, when the file is fine or
    /// missing.
    @discardableResult
    public func repair() throws(RegistryError) -> String? {
        try enter()
        defer { leave() }
        return try store.withWriteLock(timeoutMicros: options.lockTimeoutMicros) { () throws(RegistryError) -> String? in
            do throws(RegistryError) {
                _ = try store.load(cached: .empty)
                return nil
            } catch {
                guard error.code == .corrupt || error.code == .limit else { throw error }
            }
            let salvage = try store.rawBytes().map { RegistryDocument.salvage($0, limits: options.limits) }
            let aside = try store.moveAside()
            state.withLock { $0.snapshot = .empty }
            if var document = salvage {
                let seen = state.withLock { $0.highestGeneration }
                document.generation = min(max(document.generation, seen), RegistryDocument.maxGeneration - 1)
                var txn = Transaction(document: document)
                txn.changed = true
                try commit(&txn)
            }
            return aside
        }
    }
}
