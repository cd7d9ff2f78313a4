#if canImport(Glibc)
import Glibc
#endif

/// Decides whether an entry's server is still there (docs/FORMAT.md, "Liveness").
struct LivenessJudge {
    let store: RegistryStore
    /// Ids whose lease this handle holds: alive without a system call.
    let ownLeases: Set<String>
    let nowMillis: Int64
    /// The process's lease tracker for this directory, if any.
    private let tracker: LeaseTracker?
    /// Leases the tracker knew held once its queue was drained, when this judge was made: a pass
    /// over 1,000 leased entries is one set lookup each, with no lock, closure or system call
    /// (it was 1,200 instructions an entry through `leaseHeld`, a third of a write's CPU).
    private let knownHeld: Set<String>

    init(store: RegistryStore, ownLeases: Set<String>, nowMillis: Int64) {
        self.store = store
        self.ownLeases = ownLeases
        self.nowMillis = nowMillis
        tracker = store.leaseTracker
        tracker?.refresh()
        knownHeld = tracker?.knownHeld() ?? []
    }

    /// Whether `entry` is alive. For a dead lease entry found while holding the write lock
    /// (`claimDeadLeases`), the lease fd is returned in `claimed` still locked, so the caller can
    /// unlink the lease file after its write without racing a new registrant.
    func isAlive(_ entry: ServerEntry, claimed: inout [String: Int32], claimDeadLeases: Bool) -> Bool {
        switch entry.liveness {
        case .none:
            return true
        case .ttl:
            let ttl = Int64(entry.ttlSeconds ?? 30) * 1000
            guard let seen = (entry.lastSeen ?? entry.startedAt).flatMap(Timestamp.parse) else { return false }
            return nowMillis - seen < ttl
        case .pid:
            guard let pid = entry.pid else { return false }
            return LivenessJudge.processAlive(pid: pid, startTime: entry.pidStartTime)
        case .lease:
            let id = entry.id
            if knownHeld.contains(id) || ownLeases.contains(id) { return true }
            return leaseHeld(id, claimed: &claimed, claim: claimDeadLeases)
        }
    }

    func isAlive(_ entry: ServerEntry) -> Bool {
        var none: [String: Int32] = [:]
        return isAlive(entry, claimed: &none, claimDeadLeases: false)
    }

    /// A lease is held while someone has `flock` on its file. A shared try-lock that succeeds
    /// means nobody holds it: the owner is gone. A missing file means the same.
    private func leaseHeld(_ id: String, claimed: inout [String: Int32], claim: Bool) -> Bool {
        guard let dir = try? store.leasesDirectory(create: false) else { return false }
        var claimedFD: Int32 = -1
        let probe: () -> Bool = {
            let path = store.leasesPath + "/" + id + ".lease"
            let fd = claim ? Sys.openAtTracked(dir, id + ".lease", O_RDONLY | O_NOFOLLOW | O_NONBLOCK, path: path)
                : Sys.openAt(dir, id + ".lease", O_RDONLY | O_NOFOLLOW | O_NONBLOCK, path: path)
            guard fd >= 0 else { return false }
            if Sys.flock(fd, (claim ? LOCK_EX : LOCK_SH) | LOCK_NB, path: path) != 0 {
                // Busy (a live holder), or the lock cannot be taken at all: count it as held, so
                // a fault never makes a live entry look dead.
                if claim { Sys.closeTracked(fd) } else { Sys.closeFD(fd) }
                return true
            }
            if claim { claimedFD = fd } else { Sys.closeFD(fd) }
            return false
        }
        let held = tracker.map { $0.isHeld(id, probe: probe) } ?? probe()
        if claimedFD >= 0 { claimed[id] = claimedFD }
        return held
    }

    /// `/proc/<pid>/stat` exists, is not a zombie, and (when recorded) field 22 — the
    /// start time — matches, so a reused pid is not mistaken for the server.
    static func processAlive(pid: Int32, startTime: UInt64?) -> Bool {
        guard pid > 0 else { return false }
        guard let stat = procStat(pid) else { return false }
        if stat.state == UInt8(ascii: "Z") || stat.state == UInt8(ascii: "X") { return false }
        if let startTime { return stat.startTime == startTime }
        return true
    }

    /// The state letter and start time of `pid` from `/proc/<pid>/stat`.
    static func procStat(_ pid: Int32) -> (state: UInt8, startTime: UInt64)? {
        let fd = Sys.openReadOnly("/proc/\(pid)/stat")
        guard fd >= 0 else { return nil }
        defer { Sys.closeFD(fd) }
        guard let bytes = try? Sys.readAll(fd, path: "/proc/\(pid)/stat", sizeHint: 512, limit: 4096) else { return nil }
        // comm (field 2) may hold spaces and parentheses: fields resume after the last ')'.
        guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count > 19, let state = fields[0].first,
              let start = UInt64(String(decoding: fields[19], as: UTF8.self).trimmingNewline)
        else { return nil }
        return (state, start)
    }
}
