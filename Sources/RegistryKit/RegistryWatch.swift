#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import CRegistryShims

/// One change to the registry as a watcher sees it: the difference between the live entries
/// it saw last and the live entries now.
public struct RegistryEvent: Sendable, Hashable {
    /// The file generation the new state comes from.
    public var generation: Int64
    public var added: [ServerEntry]
    /// For each removed entry, the last version seen.
    public var removed: [ServerEntry]
    public var changed: [ServerEntry]

    public init(generation: Int64, added: [ServerEntry] = [], removed: [ServerEntry] = [], changed: [ServerEntry] = []) {
        self.generation = generation
        self.added = added
        self.removed = removed
        self.changed = changed
    }

    public var isEmpty: Bool { added.isEmpty && removed.isEmpty && changed.isEmpty }

    /// `{"generation":N,"added":[...],"removed":[...],"changed":[...]}`, as the C ABI hands it out.
    public var jsonText: String {
        var out: [UInt8] = []
        out.append(contentsOf: "{\"generation\":\(generation),\"added\":".utf8)
        ServerEntry.appendJSONArray(added, into: &out)
        out.append(contentsOf: ",\"removed\":".utf8)
        ServerEntry.appendJSONArray(removed, into: &out)
        out.append(contentsOf: ",\"changed\":".utf8)
        ServerEntry.appendJSONArray(changed, into: &out)
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }
}

/// Watches a registry for changes (docs/FORMAT.md, "Watching").
///
/// inotify watches the registry's directory (the file's inode changes at every rename, so the
/// file itself cannot be watched) and `leases/`: when a lease owner dies, the kernel closes its
/// lease file and inotify reports the close, so the death is seen without waiting for another
/// writer. ttl expiry and `pid` entries are covered by a timer. Where inotify is unavailable the
/// watch polls every `pollingInterval`. Events are diffs against the last state this watch
/// returned, so bursts of writes coalesce and nothing is missed.
///
/// Thread-safe: calls to `next` are served one at a time; `close()` may be called from any
/// thread, and wakes a `next` blocked in another one (which then throws `.closed`);
/// `fileDescriptor` may be polled from any thread.
public final class RegistryWatch: Sendable {
    /// How often the registry is re-read when inotify is unavailable, and how often `pid`
    /// entries are re-checked (a process's death gives no file event).
    public static let pollingInterval: Int64 = 250  // milliseconds

    private let registry: Registry
    /// What the watch reports: the live entries this filter lists (`scope: .cluster` adds the
    /// other machines' entries, keyed by `node/id`).
    public let filter: ServerFilter
    private let epollFD: Int32
    private let inotifyFD: Int32
    private let timerFD: Int32
    /// Written by `close()` to wake a blocked `next`.
    private let wake: (read: Int32, write: Int32)
    private struct Baseline: Sendable {
        var byID: [String: ServerEntry] = [:]
        var order: [String] = []
    }
    /// Held by `next` while it runs: one at a time.
    private let baseline = ForkSafeMutex(Baseline())
    private struct Life: Sendable {
        var closed = false
        var inNext = 0
    }
    private let life = ForkSafeMutex(Life())
    /// True when inotify could not be set up and the watch polls instead.
    public let isPolling: Bool

    /// Starts watching; the current live entries are the baseline (the first event is a change,
    /// not a replay). With a `filter`, only the entries it lists are watched: an entry that
    /// stops matching is `removed`; `scope: .cluster` includes the cluster view (whose changes
    /// are renames in the same directory, so they wake the watch like the registry's own).
    /// - Throws: `.io` when epoll or the timer cannot be created; the read errors of `list`.
    public init(_ registry: Registry, filter: ServerFilter = ServerFilter()) throws(RegistryError) {
        self.filter = filter
        try registry.checkUsable()
        // A handle of its own on the same file: the watch outlives the caller's handle, and its
        // reads never contend with the caller's.
        self.registry = try Registry(path: registry.path, options: registry.options)
        let store = self.registry.store
        let ep = Sys.epollCreate(path: registry.path)
        guard ep >= 0 else {
            self.registry.close()
            throw Sys.ioError(.epoll, registry.path)
        }
        let tfd = Sys.timerCreate(path: registry.path)
        guard tfd >= 0 else {
            Sys.closeTracked(ep)
            self.registry.close()
            throw Sys.ioError(.timerfd, registry.path)
        }
        let wake: (read: Int32, write: Int32)
        do throws(RegistryError) { wake = try Sys.pipe(path: registry.path) } catch {
            Sys.closeTracked(ep)
            Sys.closeTracked(tfd)
            self.registry.close()
            throw error
        }
        var ifd = Sys.inotifyInit(path: store.directory)
        if ifd >= 0 {
            let dirMask = UInt32(IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_CLOSE_WRITE)
            // leases/ first: creating it after watching the directory would queue an event.
            let leasesOK = (try? store.leasesDirectory(create: true)) != nil
                && Sys.inotifyWatch(ifd, store.leasesPath, UInt32(IN_CLOSE_WRITE | IN_DELETE))
            let ok = store.dirFD >= 0 && Sys.inotifyWatch(ifd, store.directory, dirMask)
            if !ok || !leasesOK {
                Sys.closeTracked(ifd)
                ifd = -1
            }
        }
        self.epollFD = ep
        self.timerFD = tfd
        self.inotifyFD = ifd
        self.wake = wake
        self.isPolling = ifd < 0
        for fd in [tfd, ifd, wake.read] where fd >= 0 { _ = Sys.epollAdd(ep, fd, path: registry.path) }
        do throws(RegistryError) {
            let listing = try self.registry.list(filter)
            baseline.withLock { b in
                for e in listing.servers { b.byID[e.clusterKey] = e }
                b.order = listing.servers.map(\.clusterKey)
            }
        } catch {
            // Every stored property is set, so deinit runs after this throw: mark the watch
            // closed first, or deinit's close() would close these descriptors a second time.
            life.withLock { $0.closed = true }
            closeDescriptors()
            self.registry.close()
            throw error
        }
        armTimer(baseline.withLock { $0 })
    }

    deinit { close() }

    /// A descriptor that is readable when an event may be pending (an epoll set of the inotify
    /// descriptor and the timer). Poll it, then call `next(timeoutMilliseconds: 0)`. -1 once closed.
    public var fileDescriptor: Int32 { life.withLock { $0.closed } ? -1 : epollFD }

    /// Closes the watch, waking a `next` blocked in another thread (it throws `.closed`).
    /// Idempotent; returns once no `next` uses the watch any more.
    public func close() {
        let wasOpen = life.withLock { l -> Bool in
            defer { l.closed = true }
            return !l.closed
        }
        guard wasOpen else { return }
        guard registry.inOwnerProcess else {
            registry.close()
            return
        }
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
        while life.withLock({ $0.inNext }) > 0 { Sys.sleepMicros(200) }
        closeDescriptors()
        registry.close()
    }

    private func closeDescriptors() {
        Sys.closeTracked(inotifyFD)
        Sys.closeTracked(timerFD)
        Sys.closeTracked(epollFD)
        Sys.closeTracked(wake.read)
        Sys.closeTracked(wake.write)
    }

    /// Waits up to `timeoutMilliseconds` (0: don't wait; negative: forever) for the next change.
    /// Returns nil when nothing changed in time.
    /// - Throws: `.closed` after (or during) `close()`; the read errors of `list` (e.g. `.corrupt`).
    public func next(timeoutMilliseconds: Int) throws(RegistryError) -> RegistryEvent? {
        try life.withLock { l throws(RegistryError) in
            guard !l.closed, registry.inOwnerProcess else { throw RegistryError(.closed, "the watch is closed") }
            l.inNext += 1
        }
        defer { life.withLock { $0.inNext -= 1 } }
        return try baseline.withLock { b throws(RegistryError) -> RegistryEvent? in
            let deadline = timeoutMilliseconds < 0 ? Int64.max : Sys.monotonicMicros() / 1000 + Int64(timeoutMilliseconds)
            while true {
                if life.withLock({ $0.closed }) { throw RegistryError(.closed, "the watch was closed") }
                drain()
                if let event = try diff(&b) { return event }
                let now = Sys.monotonicMicros() / 1000
                if now >= deadline { return nil }
                armTimer(b)
                let wait = deadline == Int64.max ? -1 : Int32(clamping: deadline - now)
                if Sys.epollWait(epollFD, timeoutMillis: wait, path: registry.path) < 0 {
                    throw Sys.ioError(.epoll, registry.path)
                }
            }
        }
    }

    /// Empties the inotify queue and the timer, so the fd is not readable until something new.
    private func drain() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        if inotifyFD >= 0 {
            while Sys.readAvailable(inotifyFD, into: &buffer, path: registry.path) > 0 {}
        }
        var expirations = [UInt8](repeating: 0, count: 8)
        _ = Sys.readAvailable(timerFD, into: &expirations, path: registry.path)
    }

    /// The difference between the baseline and the live entries now; nil when there is none.
    private func diff(_ baseline: inout Baseline) throws(RegistryError) -> RegistryEvent? {
        let listing = try registry.list(filter)
        var event = RegistryEvent(generation: listing.generation, added: [], removed: [], changed: [])
        var current: [String: ServerEntry] = [:]
        current.reserveCapacity(listing.servers.count)
        for e in listing.servers {
            current[e.clusterKey] = e
            if let old = baseline.byID[e.clusterKey] {
                if old != e { event.changed.append(e) }
            } else {
                event.added.append(e)
            }
        }
        for id in baseline.order where current[id] == nil {
            if let old = baseline.byID[id] { event.removed.append(old) }
        }
        guard !event.isEmpty else { return nil }
        baseline.byID = current
        baseline.order = listing.servers.map(\.clusterKey)
        return event
    }

    /// Arms the timer for the earliest moment the live set can change without a file event:
    /// a ttl entry's expiry, the next check of `pid` entries, or the polling interval.
    private func armTimer(_ baseline: Baseline) {
        var next: Int64? = isPolling ? RegistryWatch.pollingInterval : nil
        let now = Timestamp.nowMillis()
        for e in baseline.byID.values where e.node == nil {  // remote entries are not judged here
            switch e.liveness {
            case .ttl:
                if let seen = (e.lastSeen ?? e.startedAt).flatMap(Timestamp.parse) {
                    let left = max(1, seen + Int64(e.ttlSeconds ?? 30) * 1000 - now + 1)
                    next = min(next ?? left, left)
                }
            case .pid:
                next = min(next ?? RegistryWatch.pollingInterval, RegistryWatch.pollingInterval)
            default:
                break
            }
        }
        Sys.timerArm(timerFD, millis: next ?? 0)
    }
}
