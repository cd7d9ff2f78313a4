#if canImport(Glibc)
import Glibc
#endif
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

/// Watches a registry for changes (docs/FORMAT.md, "Watching"). Use from one thread at a time.
///
/// inotify watches the registry's directory (the file's inode changes at every rename, so the
/// file itself cannot be watched) and `leases/`: when a lease owner dies, the kernel closes its
/// lease file and inotify reports the close, so the death is seen without waiting for another
/// writer. ttl expiry and `pid` entries are covered by a timer. Where inotify is unavailable the
/// watch polls every `pollingInterval`. Events are diffs against the last state this watch
/// returned, so bursts of writes coalesce and nothing is missed.
public final class RegistryWatch: @unchecked Sendable {
    /// How often the registry is re-read when inotify is unavailable, and how often `pid`
    /// entries are re-checked (a process's death gives no file event).
    public static let pollingInterval: Int64 = 250  // milliseconds

    private let registry: Registry
    private let epollFD: Int32
    private let inotifyFD: Int32
    private let timerFD: Int32
    private var baseline: [String: ServerEntry]
    private var baselineOrder: [String]
    private var closed = false
    /// True when inotify could not be set up and the watch polls instead.
    public let isPolling: Bool

    /// Starts watching; the current live entries are the baseline (the first event is a change,
    /// not a replay).
    /// - Throws: `.io` when epoll or the timer cannot be created; the read errors of `list`.
    public init(_ registry: Registry) throws(RegistryError) {
        try registry.checkUsable()
        // A handle of its own on the same file: the watch outlives the caller's handle, and its
        // reads never contend with the caller's.
        self.registry = try Registry(path: registry.path, options: registry.options)
        let ep = prshim_epoll_create()
        guard ep >= 0 else { throw Sys.ioError("epoll_create1", registry.path) }
        let tfd = prshim_timerfd_create()
        guard tfd >= 0 else {
            Glibc.close(ep)
            throw Sys.ioError("timerfd_create", registry.path)
        }
        var ifd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        if ifd >= 0 {
            let store = registry.store
            let dirMask = UInt32(IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_CLOSE_WRITE)
            // leases/ first: creating it after watching the directory would queue an event.
            let leasesOK = (try? store.leasesDirectory(create: true)) != nil
                && inotify_add_watch(ifd, store.leasesPath, UInt32(IN_CLOSE_WRITE | IN_DELETE)) >= 0
            let ok = inotify_add_watch(ifd, store.directory, dirMask) >= 0
            if !ok || !leasesOK {
                Glibc.close(ifd)
                ifd = -1
            }
        }
        self.epollFD = ep
        self.timerFD = tfd
        self.inotifyFD = ifd
        self.isPolling = ifd < 0
        for fd in [tfd, ifd] where fd >= 0 { _ = prshim_epoll_add(ep, fd) }
        Sys.track(ep)
        Sys.track(tfd)
        if ifd >= 0 { Sys.track(ifd) }
        self.baseline = [:]
        self.baselineOrder = []
        do throws(RegistryError) {
            let listing = try self.registry.list()
            for e in listing.servers { baseline[e.id] = e }
            baselineOrder = listing.servers.map(\.id)
        } catch {
            closeDescriptors()
            self.registry.close()
            throw error
        }
        armTimer()
    }

    deinit { close() }

    /// A descriptor that is readable when an event may be pending (an epoll set of the inotify
    /// descriptor and the timer). Poll it, then call `next(timeoutMilliseconds: 0)`. -1 once closed.
    public var fileDescriptor: Int32 { closed ? -1 : epollFD }

    /// Closes the watch. Idempotent.
    public func close() {
        guard !closed else { return }
        closed = true
        if registry.inOwnerProcess { closeDescriptors() }
        registry.close()
    }

    private func closeDescriptors() {
        Sys.closeTracked(inotifyFD)
        Sys.closeTracked(timerFD)
        Sys.closeTracked(epollFD)
    }

    /// Waits up to `timeoutMilliseconds` (0: don't wait; negative: forever) for the next change.
    /// Returns nil when nothing changed in time.
    /// - Throws: `.closed` after `close()`; the read errors of `list` (e.g. `.corrupt`).
    public func next(timeoutMilliseconds: Int) throws(RegistryError) -> RegistryEvent? {
        guard !closed, registry.inOwnerProcess else { throw RegistryError(.closed, "the watch is closed") }
        let deadline = timeoutMilliseconds < 0 ? Int64.max : Sys.monotonicMicros() / 1000 + Int64(timeoutMilliseconds)
        while true {
            drain()
            if let event = try diff() { return event }
            let now = Sys.monotonicMicros() / 1000
            if now >= deadline { return nil }
            armTimer()
            let wait = deadline == Int64.max ? -1 : Int32(clamping: deadline - now)
            let n = prshim_epoll_wait(epollFD, wait)
            if n < 0 && errno != EINTR { throw Sys.ioError("epoll_wait", registry.path) }
        }
    }

    /// Empties the inotify queue and the timer, so the fd is not readable until something new.
    private func drain() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        if inotifyFD >= 0 {
            while buffer.withUnsafeMutableBytes({ read(inotifyFD, $0.baseAddress, $0.count) }) > 0 {}
        }
        var expirations: UInt64 = 0
        _ = read(timerFD, &expirations, 8)
    }

    /// The difference between the baseline and the live entries now; nil when there is none.
    private func diff() throws(RegistryError) -> RegistryEvent? {
        let listing = try registry.list()
        var event = RegistryEvent(generation: listing.generation, added: [], removed: [], changed: [])
        var current: [String: ServerEntry] = [:]
        current.reserveCapacity(listing.servers.count)
        for e in listing.servers {
            current[e.id] = e
            if let old = baseline[e.id] {
                if old != e { event.changed.append(e) }
            } else {
                event.added.append(e)
            }
        }
        for id in baselineOrder where current[id] == nil {
            if let old = baseline[id] { event.removed.append(old) }
        }
        guard !event.isEmpty else { return nil }
        baseline = current
        baselineOrder = listing.servers.map(\.id)
        return event
    }

    /// Arms the timer for the earliest moment the live set can change without a file event:
    /// a ttl entry's expiry, the next check of `pid` entries, or the polling interval.
    private func armTimer() {
        var next: Int64? = isPolling ? RegistryWatch.pollingInterval : nil
        let now = Timestamp.nowMillis()
        for e in baseline.values {
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
        _ = prshim_timerfd_arm(timerFD, next ?? 0)
    }
}
