#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The cluster view: the other machines' published entries, as this machine's cluster agent
/// mirrors them from etcd into a file beside the registry (docs/CLUSTER.md).
///
/// Files, beside `servers.json` (`<stem>` is the registry file's name without `.json`):
/// - `<stem>.cluster.json` — the view, written only by the agent, atomically and durably as the
///   registry file is (temp file, fsync, rename, fsync of the directory; `.lock` and `.tmp`
///   beside it). Format: `{"version":1,"generation":N,"node":"<this node>","etcd":"connected" |
///   "unreachable","revision":R,"updatedAt":"…","servers":[entries, each with "node"]}`.
/// - `<stem>.cluster.json.agent` — held with `flock(LOCK_EX)` by the running agent (its pid
///   written inside). When nobody holds it, the agent is gone and every remote entry is stale.
public enum ClusterView {
    /// The view file's path for the registry at `registryPath`.
    public static func path(forRegistry registryPath: String) -> String {
        let stem = registryPath.hasSuffix(".json") ? String(registryPath.dropLast(5)) : registryPath
        return stem + ".cluster.json"
    }

    /// The agent lock's file name for a view file name.
    static func agentLockName(forView viewName: String) -> String { viewName + ".agent" }

    /// Whether etcd is reachable, as the agent last wrote it into the view.
    public enum EtcdState: String, Sendable {
        case connected, unreachable
    }
}

/// Writes the cluster view; used by the cluster agent only (one per registry, enforced).
///
/// Holding one is holding the agent lock: readers see the agent as running (remote entries
/// fresh unless the agent wrote `etcd: unreachable`). `close()` (or the process's death, however
/// it dies) releases it, and readers then mark every remote entry stale.
public final class ClusterViewWriter: Sendable {
    /// The view file's path.
    public let path: String
    private let store: RegistryStore
    private let agentFD: Int32
    private let lockTimeoutMicros: Int64
    private let state = Mutex<(generation: Int64, closed: Bool)>((0, false))

    /// Opens the view of the registry at `registryPath` (nil: `Registry.defaultPath`) for
    /// writing and takes the agent lock.
    /// - Throws: `.exists` naming the pid when another agent holds the lock; `.permission` for
    ///   unsafe files or directories (the same checks as the registry's); `.io`.
    public init(registryPath: String? = nil, options: Registry.Options = Registry.Options()) throws(RegistryError) {
        let viewPath = ClusterView.path(forRegistry: registryPath ?? Registry.defaultPath)
        let store = try RegistryStore(path: viewPath, limits: options.limits)
        let lockName = ClusterView.agentLockName(forView: store.fileName)
        let lockPath = store.directory + "/" + lockName
        let fd = Sys.openAtTracked(store.dirFD, lockName, O_RDWR | O_CREAT | O_NOFOLLOW, 0o600, path: lockPath)
        guard fd >= 0 else {
            let e = errno
            store.close()
            if e == ELOOP { throw PathSafety.symlinkError(lockPath) }
            throw Sys.ioError(.open, lockPath, e)
        }
        // A reader holds LOCK_SH for microseconds while it checks the agent: retry for 50 ms.
        var locked = false
        for _ in 0..<50 {
            if Sys.flock(fd, LOCK_EX | LOCK_NB, path: lockPath) == 0 { locked = true; break }
            guard errno == EWOULDBLOCK else { break }
            Sys.sleepMicros(1000)
        }
        guard locked else {
            let e = errno
            let holder = Sys.pread(fd, count: 16, offset: 0, path: lockPath).map { String(decoding: $0, as: UTF8.self) } ?? "?"
            Sys.closeTracked(fd)
            store.close()
            if e == EWOULDBLOCK {
                throw RegistryError(.exists, "another cluster agent (pid \(holder.isEmpty ? "?" : holder)) already runs for \(registryPath ?? Registry.defaultPath); stop it first")
            }
            throw Sys.ioError(.flock, lockPath, e)
        }
        Sys.overwriteSmall(fd, String(getpid()), path: lockPath)
        self.path = viewPath
        self.store = store
        self.agentFD = fd
        self.lockTimeoutMicros = options.lockTimeoutMicros
        // Continue from the generation of the view a previous agent left, so watchers keep order.
        if let read = try? store.readBytes(), let top = try? read.bytes.withUnsafeBufferPointer({ b throws(JSONParseError) in try JSONParser.parse(b, maxDepth: options.limits.maxDepth) }),
           case .object(let o) = top, let g = o["generation"]?.int64Value, g >= 0, g < RegistryDocument.maxGeneration {
            state.withLock { $0.generation = g }
        }
    }

    deinit { close() }

    /// Releases the agent lock (readers then see every remote entry as stale) and closes the
    /// files. The view is left as it is. Idempotent.
    public func close() {
        let wasOpen = state.withLock { s -> Bool in
            defer { s.closed = true }
            return !s.closed
        }
        guard wasOpen else { return }
        Sys.closeTracked(agentFD)
        store.close()
    }

    /// Replaces the view with `servers` (every one with a valid `node`), durably.
    /// - Throws: `.invalid` for an entry without a valid `node` (nothing is written); `.limit`
    ///   past the registry's entry or size limits; `.closed` after `close()`; `.io`, `.timeout`.
    public func write(node: String, etcd: ClusterView.EtcdState, revision: Int64, servers: [ServerEntry]) throws(RegistryError) {
        guard ServerEntry.isValidNodeName(node) else { throw RegistryError(.invalid, "node name \"\(node.prefix(80))\" is not valid (1-64 of A-Z a-z 0-9 _ -)") }
        for e in servers {
            guard let n = e.node, ServerEntry.isValidNodeName(n) else {
                throw RegistryError(.invalid, "cluster view entry \"\(e.id)\" has no valid node")
            }
        }
        guard servers.count <= store.limits.maxEntries else {
            throw RegistryError(.limit, "\(servers.count) remote entries exceed the view's limit of \(store.limits.maxEntries)")
        }
        let generation = try state.withLock { s throws(RegistryError) -> Int64 in
            guard !s.closed else { throw RegistryError(.closed, "the cluster view writer is closed") }
            s.generation = s.generation >= RegistryDocument.maxGeneration - 1 ? 1 : s.generation + 1
            return s.generation
        }
        var out: [UInt8] = []
        out.reserveCapacity(256 + servers.count * 512)
        let top: JSONObject = JSONObject([
            ("version", .int(1)), ("generation", .int(generation)), ("node", .string(node)),
            ("etcd", .string(etcd.rawValue)), ("revision", .int(max(0, revision))), ("updatedAt", .string(Timestamp.now())),
        ])
        var head: [UInt8] = []
        JSONWriter.write(.object(top), into: &head)
        out.append(contentsOf: head.dropLast())  // without the closing brace
        out.append(contentsOf: ",\"servers\":[".utf8)
        for (i, e) in servers.enumerated() {
            out.append(contentsOf: i == 0 ? "\n".utf8 : ",\n".utf8)
            e.appendJSON(into: &out)
        }
        out.append(contentsOf: (servers.isEmpty ? "]}\n" : "\n]}\n").utf8)
        guard out.count <= store.limits.maxFileBytes else {
            throw RegistryError(.limit, "the cluster view would be \(out.count) bytes, over the limit of \(store.limits.maxFileBytes)")
        }
        _ = try store.withWriteLock(timeoutMicros: lockTimeoutMicros) { () throws(RegistryError) -> FileStamp in
            try store.replace(with: out)
        }
    }
}

/// Reads the cluster view for a `Registry` handle: one `fstatat` when it has not changed, a
/// parse when it has; remote entries are marked stale when the view says etcd is unreachable or
/// the agent lock is free. Thread-safe.
final class ClusterViewReader: Sendable {
    private let registryPath: String
    private let limits: RegistryLimits
    private struct Cache {
        var store: RegistryStore?
        var snapshot: Snapshot = .empty
        /// `snapshot` with every entry marked stale, built on demand.
        var staleCopy: (of: Snapshot, copy: Snapshot)?
    }
    private let cache = Mutex(Cache())

    init(registryPath: String, limits: RegistryLimits) {
        self.registryPath = registryPath
        self.limits = limits
    }

    func close() {
        cache.withLock { c in
            c.store?.close()
            c.store = nil
        }
    }

    /// The remote entries now, each with `node`, stale ones marked. Empty when there is no view.
    /// - Throws: `.corrupt` for a view that does not parse; `.permission` for an unsafe one; `.io`.
    func snapshot() throws(RegistryError) -> Snapshot {
        try cache.withLock { c throws(RegistryError) -> Snapshot in
            if c.store == nil {
                c.store = try RegistryStore(path: ClusterView.path(forRegistry: registryPath), limits: limits, readOnly: true)
            }
            guard let store = c.store else { return .empty }
            let fresh = try load(store, cached: c.snapshot)
            c.snapshot = fresh
            guard !fresh.document.servers.isEmpty else { return fresh }
            let agentRunning = agentHoldsLock(store)
            let etcdOK = fresh.document.extra["etcd"]?.stringValue == ClusterView.EtcdState.connected.rawValue
            if agentRunning && etcdOK { return fresh }
            if let s = c.staleCopy, s.of === fresh { return s.copy }
            var document = fresh.document
            for i in document.servers.indices { document.servers[i].isStale = true }
            let copy = Snapshot(document: document, stamp: fresh.stamp)
            c.staleCopy = (fresh, copy)
            return copy
        }
    }

    private func load(_ store: RegistryStore, cached: Snapshot) throws(RegistryError) -> Snapshot {
        guard let stamp = try store.currentStamp() else { return .empty }
        if stamp == cached.stamp, !cached.needsContentCheck { return cached }
        guard let read = try store.readBytes() else { return .empty }
        if cached.stamp != nil, RegistryStore.sameBytes(read.bytes, cached.bytes) {
            if read.stamp == cached.stamp {
                cached.confirm(at: read.readAt)
                return cached
            }
            return Snapshot(document: cached.document, stamp: read.stamp, bytes: read.bytes, confirmedAt: read.readAt)
        }
        let document = try ClusterViewReader.decode(read.bytes, path: store.filePath, limits: limits)
        return Snapshot(document: document, stamp: read.stamp, bytes: read.bytes, confirmedAt: read.readAt)
    }

    /// Parses a view. Unlike the registry file, ids may repeat (on different nodes). An entry
    /// that does not validate, or has no valid `node`, is skipped (the agent rewrites the whole
    /// view at its next sync); a file that does not parse is `.corrupt`.
    static func decode(_ bytes: [UInt8], path: String, limits: RegistryLimits) throws(RegistryError) -> RegistryDocument {
        let parsed: JSONValue
        do throws(JSONParseError) {
            parsed = try bytes.withUnsafeBufferPointer { b throws(JSONParseError) in try JSONParser.parse(b, maxDepth: limits.maxDepth) }
        } catch {
            throw RegistryError(.corrupt, "the cluster view \(path) is corrupt: \(error.description) (the cluster agent rewrites it at its next sync)")
        }
        guard case .object(let top) = parsed else {
            throw RegistryError(.corrupt, "the cluster view \(path) is corrupt: the top level is not an object")
        }
        var document = RegistryDocument()
        document.generation = top["generation"]?.int64Value ?? 0
        for key in ["node", "etcd", "revision", "updatedAt"] {
            if let v = top[key] { document.extra[key] = v }
        }
        guard case .array(let items)? = top["servers"] else { return document }
        var seen = Set<String>()
        for item in items.prefix(limits.maxEntries) {
            guard case .object(let object) = item,
                  let entry = try? ServerEntry(json: object, source: .file, limits: limits),
                  !entry.isLegacy, let node = entry.node, ServerEntry.isValidNodeName(node),
                  seen.insert(entry.clusterKey).inserted
            else { continue }
            document.servers.append(entry)
        }
        return document
    }

    /// Whether a running agent holds the view's agent lock (a free lock, or no lock file: no agent).
    private func agentHoldsLock(_ store: RegistryStore) -> Bool {
        guard store.dirFD >= 0 else { return false }
        let name = ClusterView.agentLockName(forView: store.fileName)
        let fd = Sys.openAt(store.dirFD, name, O_RDONLY | O_NOFOLLOW, path: store.directory + "/" + name)
        guard fd >= 0 else { return false }
        defer { Sys.closeFD(fd) }
        if Sys.flock(fd, LOCK_SH | LOCK_NB, path: name) == 0 {
            Sys.unlock(fd)
            return false
        }
        return errno == EWOULDBLOCK
    }
}
