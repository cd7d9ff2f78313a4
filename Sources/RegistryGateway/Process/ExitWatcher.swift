import CSupervisorShims
import Synchronization

/// How a process ended.
public struct ExitStatus: Sendable, Equatable, CustomStringConvertible {
    /// The exit code, when it exited.
    public var code: Int32?
    /// The signal that killed it, when one did.
    public var signal: Int32?

    init(raw: Int32) {
        if sup_exited(raw) != 0 {
            code = sup_exit_code(raw)
        } else if sup_signaled(raw) != 0 {
            signal = sup_term_signal(raw)
        } else {
            code = -1
        }
    }

    public var description: String {
        if let signal { return "killed by signal \(signal)\(ExitStatus.signalName(signal).map { " (\($0))" } ?? "")" }
        return "exit status \(code ?? -1)"
    }

    static func signalName(_ s: Int32) -> String? {
        switch s {
        case 1: "SIGHUP"
        case 2: "SIGINT"
        case 6: "SIGABRT"
        case 9: "SIGKILL"
        case 11: "SIGSEGV"
        case 13: "SIGPIPE"
        case 15: "SIGTERM"
        default: nil
        }
    }
}

/// The one place exits are reported: the C reaper thread reaps every child (`waitpid(-1)`) and
/// calls `reaped`, which hands the status to whoever waits for that pid. An exit that comes
/// before anyone waits (a child that dies at once) is kept until it is asked for.
enum ExitWatcher {
    private struct State {
        var waiting: [Int32: [CheckedContinuation<ExitStatus, Never>]] = [:]
        var early: [Int32: (status: ExitStatus, sequence: UInt64)] = [:]
        var earlyOrder: [Int32] = []
        var sequence: UInt64 = 0
        var exited: Set<Int32> = []
    }
    private static let state = Mutex(State())
    private static let started = Mutex<Int32?>(nil)

    /// Starts the reaper and spawner threads (once). Returns an errno, or 0.
    static func start() -> Int32 {
        started.withLock { result in
            if let result { return result }
            let e = sup_init { pid, status in ExitWatcher.reaped(pid: pid, status: status) }
            result = e
            return e
        }
    }

    /// A number to pass to `wait(pid:since:)` for a pid about to be created.
    static func mark() -> UInt64 { state.withLock { $0.sequence } }

    static func reaped(pid: Int32, status: Int32) {
        let exit = ExitStatus(raw: status)
        let waiters: [CheckedContinuation<ExitStatus, Never>] = state.withLock { s in
            s.sequence += 1
            s.exited.insert(pid)
            if let w = s.waiting.removeValue(forKey: pid) { return w }
            s.early[pid] = (exit, s.sequence)
            s.earlyOrder.append(pid)
            // Orphaned grandchildren (we are a subreaper) are reaped here too; keep only a few.
            if s.earlyOrder.count > 4096 {
                let drop = s.earlyOrder.removeFirst()
                s.early[drop] = nil
            }
            return []
        }
        for w in waiters { w.resume(returning: exit) }
    }

    /// Whether `pid` was reaped since it was registered with `track` (so signalling its group
    /// would hit nobody, or worse, a reused pid).
    static func hasExited(_ pid: Int32) -> Bool { state.withLock { $0.exited.contains(pid) } }

    /// Starts tracking a new child.
    static func track(_ pid: Int32, since mark: UInt64) {
        state.withLock { s in
            if let e = s.early[pid], e.sequence > mark { return }  // it already died: keep that
            s.early[pid] = nil
            s.exited.remove(pid)
        }
    }

    /// Waits for `pid` to be reaped.
    static func wait(_ pid: Int32) async -> ExitStatus {
        await withCheckedContinuation { c in
            let early: ExitStatus? = state.withLock { s in
                if let e = s.early.removeValue(forKey: pid) {
                    s.earlyOrder.removeAll { $0 == pid }
                    return e.status
                }
                s.waiting[pid, default: []].append(c)
                return nil
            }
            if let early { c.resume(returning: early) }
        }
    }

    /// Forgets a pid whose exit was consumed.
    static func forget(_ pid: Int32) {
        state.withLock { _ = $0.exited.remove(pid) }
    }
}
