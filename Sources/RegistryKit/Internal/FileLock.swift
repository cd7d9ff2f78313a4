#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import CRegistryShims

/// The writers' lock on `servers.json.lock` (docs/FORMAT.md, "Writing"): the process-wide mutex
/// for the file, then `flock(LOCK_EX)`, with a deadline.
///
/// Uncontended, taking it is one non-blocking `flock`. Contended, a helper thread blocks in
/// `flock` on a descriptor of its own while the writer waits for it with the deadline: the kernel
/// wakes a blocked waiter the moment the lock is released, so a busy writer cannot starve the
/// others the way polling with sleeps would. There is at most one helper per lock file per
/// process (`LockHelper`): a writer that timed out leaves the helper blocked, and the next writer
/// waits on that same helper instead of starting another — threads and descriptors stay bounded
/// however many writes time out. If no thread can be started, the writer polls until its
/// deadline; it never blocks without one.
///
/// **Fair hand-off** (docs/FORMAT.md, "Writing"). `flock` is not FIFO: a process that releases
/// the lock and wants it again at once (register, then heartbeat) takes it again before the
/// waiters it woke have run, and under a startup storm some writers starve. So a writer that
/// has to wait marks itself waiting — a shared OFD byte lock on `waitingByte` of the lock file,
/// which the kernel drops if it dies — and a writer whose process holds the lock last (its pid is
/// in the file) and sees others waiting lets one of them take it first: it waits until another
/// pid is in the file, at most `handOffMicros`. Older library versions, and other tools taking
/// plain `flock`, neither mark nor yield; they are served as before.
final class FileLock: Sendable {
    /// The byte (far past the pid text) whose shared OFD locks say "waiting for the lock".
    static let waitingByte = 1 << 30
    /// How long a process that held the lock last gives a waiter to take it (µs; tests widen it).
    static let handOffMicros = Atomic<Int64>(5000)

    let fd: Int32
    let path: String
    let mutex: FileMutex

    /// The directory holding the lock file, and its name there (to open the helper's descriptor).
    let dirFD: Int32
    let name: String

    init(fd: Int32, dirFD: Int32, name: String, path: String) throws(RegistryError) {
        self.fd = fd
        self.dirFD = dirFD
        self.name = name
        self.path = path
        self.mutex = try FileMutex.forFile(fd, path: path)
    }

    /// Holds the lock while `body` runs. Waits at most `timeoutMicros`; the timeout error names
    /// the holder's pid. With a `request` (group commit, GroupCommit.swift), a writer that has to
    /// wait asks the holder to make its change; nil is returned, without running `body`, when a
    /// holder answered (the answer is in `request.outcome`).
    func withLock<T>(timeoutMicros: Int64, request: GroupRequest? = nil, _ body: () throws(RegistryError) -> T) throws(RegistryError) -> T? {
        try mutex.mutex.withLock { _ throws(RegistryError) -> T? in
            var held = fd
            var viaHelper = false
            let start = Sys.monotonicMicros()
            yieldToWaiters(until: start + min(Self.handOffMicros.load(ordering: .relaxed), timeoutMicros))
            var asking: GroupRequest?
            if Sys.flock(fd, LOCK_EX | LOCK_NB, path: path) != 0 {
                guard errno == EWOULDBLOCK else { throw Sys.ioError(.flock, path) }
                // Asked before marking itself waiting: a holder looks for requests only when
                // someone waits.
                if let request, request.deposit() { asking = request }
                let marked = Sys.markWaiting(fd, offset: Self.waitingByte, path: path)
                defer { if marked { Sys.unmarkWaiting(fd, offset: Self.waitingByte) } }
                var got = try wait(until: start + timeoutMicros, asking)
                var handedOff = false
                if case .timedOut = got, let asking {
                    switch asking.withdraw(holdingLock: false) {
                    case .withdrawn: break
                    case .answered: got = .answered
                    case .inProgress, .abandoned:
                        // A live holder took it and is writing it: wait for that write (or the
                        // lock) as long again, rather than return while it may still be made.
                        handedOff = true
                        got = try wait(until: Sys.monotonicMicros() + timeoutMicros, asking)
                    }
                }
                switch got {
                case .answered:
                    asking?.deliverAnswer()
                    return nil
                case .timedOut:
                    let note = handedOff ? " (the change was handed to the holder, which has not answered: it may still be made)" : ""
                    throw RegistryError(.timeout, "timed out after \(timeoutMicros / 1000) ms waiting for the lock on \(path)\(holderDescription())\(note)")
                case .locked(let helperFD):
                    held = helperFD
                    viaHelper = true
                }
            }
            defer {
                CrashPoint.beforeUnlock.reached()
                Sys.unlock(held)
                if viaHelper { mutex.helper.released() }
            }
            CrashPoint.afterLock.reached()
            Sys.overwriteSmall(held, "\(getpid())\n", path: path)
            if let asking {
                // Nobody else writes now: the request is still there, answered, or abandoned.
                switch asking.withdraw(holdingLock: true) {
                case .withdrawn: break
                case .answered:
                    asking.deliverAnswer()
                    return nil
                case .abandoned, .inProgress: asking.abandoned = true
                }
            }
            return try body()
        }
    }

    private func wait(until deadline: Int64, _ asking: GroupRequest?) throws(RegistryError) -> LockHelper.Acquired {
        try mutex.helper.acquire(dirFD: dirFD, name: name, path: path, deadline: deadline,
                                 alsoWake: asking?.wakeFD ?? -1, answered: { asking?.checkAnswered() ?? false })
    }

    /// Whether a writer of another open file description waits for the lock (held by us).
    func othersWaiting() -> Bool {
        Sys.othersWaiting(fd, offset: Self.waitingByte, path: path)
    }

    /// The pid the last holder wrote into the lock file.
    private func holderPID() -> Int32? {
        guard let bytes = Sys.pread(fd, count: 31, offset: 0, path: path), !bytes.isEmpty else { return nil }
        return Int32(String(decoding: bytes, as: UTF8.self).trimmingNewline)
    }

    private func holderDescription() -> String {
        guard let pid = holderPID() else { return "" }
        return "; held by pid \(pid)\(Sys.processExists(pid) ? "" : " (which has exited)")"
    }

    /// The fair hand-off: while this process was the last holder and another writer waits, wait
    /// (until `deadline`) for someone else to take the lock.
    private func yieldToWaiters(until deadline: Int64) {
        guard Sys.othersWaiting(fd, offset: Self.waitingByte, path: path) else { return }
        let me = getpid()
        var pause = 20
        while holderPID() == me, Sys.monotonicMicros() < deadline {
            Sys.sleepMicros(pause)
            pause = min(pause * 2, 500)
            if !Sys.othersWaiting(fd, offset: Self.waitingByte, path: path) { return }
        }
    }
}

/// One per lock file per process: the in-process mutex that queues threads and handles of this
/// process (keyed by device and inode, so two paths to the same file share it), and the helper
/// that waits in `flock` for it.
final class FileMutex: Sendable {
    let mutex = ForkSafeMutex(())
    let helper = LockHelper()
    private static let table = ForkSafeMutex<[String: FileMutex]>([:])

    static func forFile(_ fd: Int32, path: String) throws(RegistryError) -> FileMutex {
        let st = try Sys.fstatOrThrow(fd, path)
        // A forked child gets fresh ones: the parent's may be held by threads the child lacks.
        let key = "\(st.st_dev):\(st.st_ino):\(prshim_fork_generation())"
        return table.withLock { table in
            if let m = table[key] { return m }
            let m = FileMutex()
            table[key] = m
            return m
        }
    }
}

/// The single thread (at most) of a process that blocks in `flock(LOCK_EX)` on a lock file, on
/// a descriptor of its own, and hands the lock to whichever writer wants it when it gets it — or
/// lets go at once if none does any more. Writers of one lock file are serialised by its
/// `FileMutex`, so at most one writer waits on the helper at a time.
final class LockHelper: Sendable {
    private enum Phase: Sendable, Equatable {
        /// No thread; the descriptor (if opened) is unlocked.
        case idle
        /// A thread is blocked in flock.
        case blocking
        /// The thread got the lock and a writer holds it through `fd`.
        case handedOver
    }

    private struct State: Sendable {
        var phase = Phase.idle
        /// A writer is waiting for the lock now.
        var wanted = false
        /// The helper's own descriptor of the lock file, and the pipe that wakes the waiter.
        var fd: Int32 = -1
        var wakeRead: Int32 = -1
        var wakeWrite: Int32 = -1
    }

    private let state = ForkSafeMutex(State())

    enum Acquired {
        /// The lock, held through this descriptor.
        case locked(Int32)
        case timedOut
        /// `answered` said the writer no longer needs the lock (group commit).
        case answered
    }

    /// Waits until `deadline` (monotonic µs) for the lock, or until `answered()` (checked
    /// whenever `alsoWake` is readable) says the writer no longer needs it. Call with the file's
    /// `FileMutex` held.
    func acquire(dirFD: Int32, name: String, path: String, deadline: Int64, alsoWake: Int32 = -1,
                 answered: () -> Bool = { false }) throws(RegistryError) -> Acquired {
        let start = try state.withLock { s throws(RegistryError) -> (start: Bool, fd: Int32, wake: Int32) in
            if s.fd < 0 {
                // An open file description of its own: a dup would share the writer's lock.
                let own = Sys.openAtTracked(dirFD, name, O_RDWR | O_NOFOLLOW, path: path)
                guard own >= 0 else { throw Sys.ioError(.open, path) }
                let wake: (read: Int32, write: Int32)
                do throws(RegistryError) { wake = try Sys.pipe(path: path) } catch {
                    Sys.closeTracked(own)
                    throw error
                }
                s.fd = own
                s.wakeRead = wake.read
                s.wakeWrite = wake.write
            }
            s.wanted = true
            let start = s.phase == .idle
            if start { s.phase = .blocking }
            return (start, s.fd, s.wakeRead)
        }
        if start.start {
            do throws(RegistryError) {
                try Sys.startThread(path) { [self] in block(fd: start.fd, path: path) }
            } catch {
                state.withLock { $0.phase = .idle }
                return pollUntil(deadline: deadline, fd: start.fd, path: path).map(Acquired.locked) ?? .timedOut
            }
        }
        /// Stops wanting the lock; true if it was handed over meanwhile (then it is ours).
        func giveUp() -> Bool {
            state.withLock { s -> Bool in
                if s.phase == .handedOver { return true }
                s.wanted = false
                return false
            }
        }
        while true {
            if state.withLock({ $0.phase == .handedOver }) {
                drain(start.wake)
                return .locked(start.fd)
            }
            if answered() {
                if giveUp() {
                    drain(start.wake)
                    return .locked(start.fd)
                }
                return .answered
            }
            let left = deadline - Sys.monotonicMicros()
            if left <= 0 {
                if giveUp() {
                    drain(start.wake)
                    return .locked(start.fd)
                }
                return .timedOut
            }
            _ = Sys.pollReadable(start.wake, alsoWake, timeoutMillis: Int32(clamping: (left + 999) / 1000), path: path)
        }
    }

    /// The writer let go of the lock it got through `acquire`.
    func released() {
        state.withLock { $0.phase = .idle }
    }

    /// The helper thread: block until the lock is ours, then hand it over or let it go.
    private func block(fd: Int32, path: String) {
        guard Sys.flock(fd, LOCK_EX, path: path) == 0 else {
            // Not EINTR (retried): the lock cannot be had this way; the waiter times out.
            state.withLock { $0.phase = .idle }
            return
        }
        state.withLock { s in
            if s.wanted {
                s.phase = .handedOver
                s.wanted = false
                var byte: UInt8 = 1
                _ = write(s.wakeWrite, &byte, 1)
            } else {
                Sys.unlock(fd)
                s.phase = .idle
            }
        }
    }

    /// No thread could be started: try the lock every millisecond until the deadline.
    private func pollUntil(deadline: Int64, fd: Int32, path: String) -> Int32? {
        while Sys.monotonicMicros() < deadline {
            if Sys.flock(fd, LOCK_EX | LOCK_NB, path: path) == 0 {
                state.withLock { $0.phase = .handedOver; $0.wanted = false }
                return fd
            }
            Sys.sleepMicros(1000)
        }
        state.withLock { $0.wanted = false }
        return nil
    }

    private func drain(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 16)
        while Sys.readAvailable(fd, into: &buffer, path: "lock helper") > 0 {}
    }
}

extension String {
    var trimmingNewline: String {
        var s = self
        while let last = s.last, last == "\n" || last == " " || last == "\0" { s.removeLast() }
        return s
    }

    var replacingColons: String { String(map { $0 == ":" ? "-" : $0 }) }
}
