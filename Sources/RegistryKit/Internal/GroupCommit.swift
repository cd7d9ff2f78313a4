#if canImport(Glibc)
import Glibc
#endif
import Synchronization

// Group commit (docs/FORMAT.md, "Group commit"): under contention, one durable write carries the
// changes of every process waiting for the lock.
//
// A writer that finds the lock taken and has one of the hot changes to make (register, heartbeat,
// unregister) leaves it as a request file in `servers.json.pending/` and then waits for either
// the lock or an answer. The process holding the lock takes every request it finds (renames
// `<key>.req` to `<key>.claimed`), applies them by the same rules as its own change, writes the
// file once, durably, and only then answers each (`<key>.done`). Nothing is acknowledged before
// it is durable: an answer is written after the fsync of the directory.
//
// - The requester withdraws its request (unlinks `<key>.req`) when it gets the lock first or its
//   deadline passes; exactly one of that unlink and a holder's rename succeeds.
// - A holder whose write fails puts the requests back (`.claimed` → `.req`): their owners, or
//   the next holder, make them.
// - A holder that dies between its write and its answers leaves `.claimed` without `.done`: the
//   requester, once it has the lock (the dead holder's is released by the kernel), makes its
//   change itself, idempotently (an unregister of an entry already gone succeeds).
// - A lease entry's lease is taken by the requester before it asks (a lease is a flock only its
//   own process can hold).
// - Older library versions neither ask nor answer; they take the lock as before.
// - `PEERREG_GROUP_COMMIT=0` in the environment turns asking off (benchmarks compare both).

/// A change another process's write can make for this handle.
enum QueuedChange {
    case register(ServerEntry)
    case heartbeat(id: String, lastSeen: String)
    case unregister(id: String)

    var id: String {
        switch self {
        case .register(let e): e.id
        case .heartbeat(let id, _), .unregister(let id): id
        }
    }
}

/// What a holder answered.
enum GroupOutcome {
    /// Made and durable, at `generation`; for a register, the entry as stored.
    case applied(generation: Int64, entry: ServerEntry?)
    /// Refused by the rules (e.g. `.exists`, `.notFound`, `.permission`); nothing changed.
    case refused(RegistryError)
}

enum GroupCommit {
    /// Asking is on unless `PEERREG_GROUP_COMMIT=0`.
    static let enabled: Bool = {
        guard let raw = getenv("PEERREG_GROUP_COMMIT") else { return true }
        return String(cString: raw) != "0"
    }()
    /// Most requests one write takes.
    static let maxPerWrite = 64
    /// Largest request or answer file read.
    static func maxFileBytes(_ limits: RegistryLimits) -> Int { limits.maxEntryBytes + 4096 }

    private static let counter = Atomic<Int>(0)

    /// A fresh request key: monotonic time (shared by every process, so names sort in the order
    /// they were made), pid, and a per-process counter.
    static func newKey() -> String {
        let micros = String(Sys.monotonicMicros())
        let padded = String(repeating: "0", count: max(0, 16 - micros.count)) + micros
        return "\(padded)-\(getpid())-\(counter.wrappingAdd(1, ordering: .relaxed).newValue)"
    }

    /// The pid in a key or file name made by `newKey` (nil if it is not one).
    static func pid(inName name: String) -> Int32? {
        let parts = name.split(separator: "-", maxSplits: 2)
        guard parts.count == 3, parts[0].allSatisfy(\.isNumber) else { return nil }
        return Int32(parts[1])
    }
}

extension RegistryStore {
    var pendingName: String { fileName + ".pending" }
    var pendingPath: String { directory + "/" + pendingName }

    /// `servers.json.pending/`, created 0700 on first use and checked like `leases/` (not
    /// durably: what it holds is never acknowledged).
    func pendingDirectory(create: Bool) throws(RegistryError) -> Int32? {
        guard dirFD >= 0, !readOnly else { return nil }
        return try pendingFD.withLock { fd throws(RegistryError) -> Int32? in
            if fd >= 0 { return fd }
            guard let opened = try openSubdirectory(pendingName, path: pendingPath, create: create, durable: false) else { return nil }
            fd = opened
            return opened
        }
    }

    /// Writes `bytes` as `name` in the pending directory: a temp name, then a rename, so that a
    /// reader never sees half a file. Not fsynced: a request or answer lost in a crash was never
    /// acknowledged.
    func writePending(_ dir: Int32, _ name: String, _ bytes: [UInt8], temp: String) throws(RegistryError) {
        let tempPath = pendingPath + "/" + temp
        let fd = Sys.openAt(dir, temp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0o600, path: tempPath)
        guard fd >= 0 else { throw Sys.ioError(.open, tempPath) }
        do throws(RegistryError) {
            try Sys.writeAll(fd, bytes, path: tempPath)
            Sys.closeFD(fd)
            try Sys.renameAt(dir, temp, name, path: tempPath)
        } catch {
            Sys.closeFD(fd)
            Sys.unlinkAt(dir, temp, path: tempPath)
            throw error
        }
    }

    /// The descriptor that becomes readable when a file is renamed into the pending directory
    /// (an answer, among others), made on first use; -1 if inotify cannot be had.
    func pendingWatch() -> Int32 {
        pendingWatchFD.withLock { fd in
            if fd >= 0 { return fd }
            let w = Sys.inotifyInit(path: pendingPath)
            guard w >= 0 else { return -1 }
            guard Sys.inotifyWatch(w, pendingPath, UInt32(IN_MOVED_TO)) else {
                Sys.closeTracked(w)
                return -1
            }
            fd = w
            return w
        }
    }

    /// The bytes of `name` in the pending directory, or nil if it cannot be read.
    func readPending(_ dir: Int32, _ name: String) -> [UInt8]? {
        let path = pendingPath + "/" + name
        let fd = Sys.openAt(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, path: path)
        guard fd >= 0 else { return nil }
        defer { Sys.closeFD(fd) }
        return try? Sys.readAll(fd, path: path, sizeHint: 1024, limit: GroupCommit.maxFileBytes(limits))
    }
}

/// One change this handle asked another process to make, from the moment the lock was found
/// taken until it was answered, withdrawn, or found abandoned.
final class GroupRequest {
    let change: QueuedChange
    let store: RegistryStore
    /// The lease taken for a lease register before asking (handed to the transaction if this
    /// process ends up making the change itself).
    var lease: (id: String, fd: Int32)?
    /// Whether this handle held the entry's lease before this change.
    let heldBefore: Bool
    private(set) var key: String?
    private var dir: Int32 = -1
    private var watch: Int32 = -1
    private(set) var outcome: GroupOutcome?
    /// Run with the answer while the process's lock mutex is still held: the handle's record of
    /// what it holds must change before anything else of the process writes (its anti-entropy
    /// would otherwise put back an entry the answered unregister removed).
    var onAnswer: ((GroupOutcome) -> Void)?
    /// A holder took it and died before answering: the change is made again, idempotently.
    var abandoned = false
    private let takeLease: (String) -> Int32?
    private let releaseLease: (String, Int32) -> Void

    /// `takeLease` takes an id's lease at once or not at all; `releaseLease` gives one back.
    init(_ change: QueuedChange, store: RegistryStore, heldBefore: Bool, takeLease: @escaping (String) -> Int32?,
         releaseLease: @escaping (String, Int32) -> Void) {
        self.change = change
        self.store = store
        self.heldBefore = heldBefore
        self.takeLease = takeLease
        self.releaseLease = releaseLease
    }

    /// The descriptor that becomes readable when an answer may have arrived (-1: none).
    var wakeFD: Int32 { watch }

    /// The lock is taken: leaves the request. False (nothing left behind) when it cannot be, and
    /// the writer then just waits for the lock.
    func deposit() -> Bool {
        guard GroupCommit.enabled, key == nil else { return false }
        guard let dirFD = try? store.pendingDirectory(create: true) else { return false }
        self.dir = dirFD
        // The watch first: an answer written between the deposit and the watch would be missed.
        let w = store.pendingWatch()
        guard w >= 0 else { return false }
        drainWatch(w)
        var object: [JSONObject.Member] = [.init(key: "v", value: .int(1)), .init(key: "pid", value: .int(Int(getpid())))]
        switch change {
        case .register(let entry):
            if entry.liveness == .lease, !heldBefore {
                guard let fd = takeLease(entry.id) else { return false }
                lease = (entry.id, fd)
            }
            object += [.init(key: "op", value: .string("register")), .init(key: "heldBefore", value: .bool(heldBefore)),
                       .init(key: "entry", value: .object(entry.fileObject))]
        case .heartbeat(let id, let lastSeen):
            object += [.init(key: "op", value: .string("heartbeat")), .init(key: "id", value: .string(id)),
                       .init(key: "lastSeen", value: .string(lastSeen))]
        case .unregister(let id):
            object += [.init(key: "op", value: .string("unregister")), .init(key: "id", value: .string(id)),
                       .init(key: "held", value: .bool(heldBefore))]
        }
        var bytes: [UInt8] = []
        JSONWriter.write(.object(JSONObject(uncheckedMembers: object)), into: &bytes)
        let key = GroupCommit.newKey()
        do throws(RegistryError) {
            try store.writePending(dirFD, key + ".req", bytes, temp: key + ".rtmp")
        } catch {
            releaseTakenLease()
            return false
        }
        watch = w
        self.key = key
        return true
    }

    /// Whether the answer is there (reading it, and removing its file).
    func checkAnswered() -> Bool {
        guard let key else { return false }
        if outcome != nil { return true }
        if watch >= 0 { drainWatch(watch) }
        guard let bytes = store.readPending(dir, key + ".done") else { return false }
        Sys.unlinkAt(dir, key + ".done", path: store.pendingPath + "/" + key + ".done")
        outcome = Self.parseAnswer(bytes, limits: store.limits) ?? .refused(RegistryError(.io, "the answer to a queued change in \(store.pendingPath) could not be read"))
        return true
    }

    private func drainWatch(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Sys.readAvailable(fd, into: &buffer, path: store.pendingPath) > 0 {}
    }

    /// Hands the answer to `onAnswer` (FileLock calls this with the mutex held).
    func deliverAnswer() {
        if let outcome { onAnswer?(outcome) }
        onAnswer = nil
    }

    enum Withdrawal {
        /// Nobody took the request: the writer makes the change itself.
        case withdrawn
        /// It was made (or refused) by another process: `outcome` says which.
        case answered
        /// A holder took it and died before answering: the writer makes it itself, idempotently.
        case abandoned
        /// A live holder has it and has not answered yet (only on a deadline).
        case inProgress
    }

    /// Takes the request back. Called with the lock held (then `.inProgress` cannot happen) or
    /// at the deadline.
    func withdraw(holdingLock: Bool) -> Withdrawal {
        guard let key else { return .withdrawn }
        if checkAnswered() { return .answered }
        if Sys.unlinkAt(dir, key + ".req", path: store.pendingPath + "/" + key + ".req") { return .withdrawn }
        if checkAnswered() { return .answered }
        guard holdingLock else { return .inProgress }
        Sys.unlinkAt(dir, key + ".claimed", path: store.pendingPath + "/" + key + ".claimed")
        return .abandoned
    }

    /// Releases a lease taken for the request that the change did not keep.
    func releaseTakenLease() {
        if let (id, fd) = lease {
            lease = nil
            releaseLease(id, fd)
        }
    }

    // MARK: Answers

    static func answer(_ outcome: GroupOutcome) -> [UInt8] {
        var head: [JSONObject.Member]
        var tail: [UInt8] = []
        switch outcome {
        case .applied(let generation, let entry):
            head = [.init(key: "ok", value: .bool(true)), .init(key: "generation", value: .int(Int(generation)))]
            if let bytes = entry?.encoded?.bytes { tail = bytes }
        case .refused(let error):
            head = [.init(key: "ok", value: .bool(false)), .init(key: "code", value: .int(Int(error.code.rawValue))),
                    .init(key: "message", value: .string(error.message))]
        }
        var out: [UInt8] = []
        JSONWriter.write(.object(JSONObject(uncheckedMembers: head)), into: &out)
        out.append(UInt8(ascii: "\n"))
        out += tail
        return out
    }

    static func parseAnswer(_ bytes: [UInt8], limits: RegistryLimits) -> GroupOutcome? {
        let cut = bytes.firstIndex(of: UInt8(ascii: "\n")) ?? bytes.endIndex
        guard case .object(let head)? = try? JSONValue.parse(String(decoding: bytes[..<cut], as: UTF8.self), limits: limits) else { return nil }
        if head["ok"] == .bool(true) {
            guard let generation = head["generation"]?.int64Value else { return nil }
            var entry: ServerEntry?
            if cut + 1 < bytes.endIndex {
                let line = Array(bytes[(cut + 1)...])
                guard case .object(let o)? = try? JSONValue.parse(String(decoding: line, as: UTF8.self), limits: limits),
                      var e = try? ServerEntry(json: o, source: .file, limits: limits) else { return nil }
                e.encoded = EncodedBytes(line)
                entry = e
            }
            return .applied(generation: generation, entry: entry)
        }
        guard let raw = head["code"]?.int64Value, let code = RegistryError.Code(rawValue: Int32(clamping: raw)),
              let message = head["message"]?.stringValue else { return nil }
        return .refused(RegistryError(code, message))
    }
}

// MARK: - The holder's side

/// A request this write took, and what became of it.
struct AbsorbedRequest {
    let key: String
    let id: String
    /// nil: applied (answered with the stored entry after the write); else refused.
    var refusal: RegistryError?
}

extension Registry {
    /// Under the lock: the keys of the requests waiting, oldest first (empty, at the cost of one
    /// `fcntl`, when nobody waits). Requests of processes that have exited are dropped, with any
    /// files such processes left.
    func queuedRequests() -> [String] {
        guard let lock = store.lock, lock.othersWaiting(), let dir = try? store.pendingDirectory(create: false),
              let names = try? Sys.listDirectory(dir, path: store.pendingPath) else { return [] }
        var requests: [String] = []
        for name in names {
            guard let pid = GroupCommit.pid(inName: name) else { continue }
            if name.hasSuffix(".req") {
                if Sys.processExists(pid) { requests.append(String(name.dropLast(4))) } else { Sys.unlinkAt(dir, name, path: store.pendingPath + "/" + name) }
            } else if !Sys.processExists(pid) {
                Sys.unlinkAt(dir, name, path: store.pendingPath + "/" + name)
            }
        }
        return requests.sorted()
    }

    /// Takes the waiting requests `keys` and applies them to `txn` in that order, after this
    /// handle's own change.
    func absorbQueued(_ keys: [String], into txn: inout Transaction) {
        guard let dir = try? store.pendingDirectory(create: false) else { return }
        let judge = judge()
        for key in keys.prefix(GroupCommit.maxPerWrite) {
            // Claiming is the rename: a requester withdrawing at the same moment unlinks the
            // `.req`, and exactly one of the two succeeds.
            guard (try? Sys.renameAt(dir, key + ".req", key + ".claimed", path: store.pendingPath + "/" + key + ".req")) != nil else { continue }
            var absorbed = AbsorbedRequest(key: key, id: "", refusal: nil)
            guard let bytes = store.readPending(dir, key + ".claimed") else {
                // Unreadable now (EMFILE, say): back for its owner, rather than left claimed.
                returnAbsorbed([absorbed])
                continue
            }
            do throws(RegistryError) {
                guard let id = try applyQueued(bytes, to: &txn, judge: judge) else {
                    returnAbsorbed([absorbed])
                    continue
                }
                absorbed = AbsorbedRequest(key: key, id: id, refusal: nil)
                txn.changed = true
            } catch {
                absorbed.refusal = error
            }
            txn.absorbed.append(absorbed)
        }
    }

    /// Applies one request's change by the rules of the change itself (Registry.swift); returns
    /// the entry id, or nil to leave it to its requester (a new entry in a full file: its own
    /// write prunes first). Throws what the change would throw for its requester.
    private func applyQueued(_ bytes: [UInt8], to txn: inout Transaction, judge: LivenessJudge) throws(RegistryError) -> String? {
        let malformed = RegistryError(.invalid, "a queued change in \(store.pendingPath) is malformed")
        guard case .object(let o) = try JSONValue.parse(String(decoding: bytes, as: UTF8.self), limits: options.limits), o["v"] == .int(1),
              case .string(let op)? = o["op"] else { throw malformed }
        switch op {
        case "register":
            guard case .object(let eo)? = o["entry"], case .bool(let heldBefore)? = o["heldBefore"] else { throw malformed }
            var entry = try ServerEntry(json: eo, source: .file, limits: options.limits)
            guard !entry.isLegacy, ServerEntry.isValidID(entry.id) else { throw malformed }
            if txn.document.servers.count >= options.limits.maxEntries,
               !txn.document.servers.contains(where: { !$0.isLegacy && $0.id == entry.id }) { return nil }
            // A lease entry's lease is the requester's (it took it before asking): nobody else
            // holds the id.
            try Self.applyRegister(&entry, holds: entry.liveness == .lease, heldBefore: heldBefore, onlyIfAbsent: false,
                                   judge: judge, to: &txn.document)
            return entry.id
        case "heartbeat":
            guard case .string(let id)? = o["id"], case .string(let lastSeen)? = o["lastSeen"], Timestamp.parse(lastSeen) != nil else { throw malformed }
            try Self.applyUpdate(id, judge: judge, path: path, to: &txn.document) { $0.lastSeen = lastSeen }
            return id
        case "unregister":
            guard case .string(let id)? = o["id"], case .bool(let held)? = o["held"] else { throw malformed }
            try Self.applyUnregister(id, held: held, idempotent: false, judge: judge, store: store, path: path, to: &txn.document)
            return id
        default:
            throw malformed
        }
    }

    /// After the durable write: answers every request it applied or refused.
    func answerAbsorbed(_ txn: Transaction) {
        guard !txn.absorbed.isEmpty, let dir = try? store.pendingDirectory(create: false) else { return }
        CrashPoint.afterGroupWrite.reached()
        for a in txn.absorbed {
            let outcome: GroupOutcome
            if let refusal = a.refusal {
                outcome = .refused(refusal)
            } else {
                let entry = txn.document.servers.first { !$0.isLegacy && $0.id == a.id }
                outcome = .applied(generation: txn.document.generation, entry: entry)
            }
            try? store.writePending(dir, a.key + ".done", GroupRequest.answer(outcome), temp: a.key + ".otmp")
            Sys.unlinkAt(dir, a.key + ".claimed", path: store.pendingPath + "/" + a.key + ".claimed")
        }
    }

    /// The write failed: the requests go back for their owners or the next holder to make.
    func returnAbsorbed(_ absorbed: [AbsorbedRequest]) {
        guard !absorbed.isEmpty, let dir = try? store.pendingDirectory(create: false) else { return }
        for a in absorbed {
            try? Sys.renameAt(dir, a.key + ".claimed", a.key + ".req", path: store.pendingPath + "/" + a.key + ".claimed")
        }
    }
}
