import Logging
import NIOCore
import Synchronization

/// A slot for one server process: started when first needed, restarted (with the supervisor's
/// backoff) when it dies while wanted, with `initialize` replayed so the clients attached to it
/// carry on with the new process as if nothing happened (their in-flight requests got an error
/// at once). One slot per session by default; one for everyone with `shared`.
public final class ProcessSlot: Sendable {
    /// A started, initialized process.
    public struct Live: Sendable {
        public let process: ChildProcess
        public let connection: UpstreamConnection
        /// The server's answer to `initialize` (id 0), handed to each client with its own id.
        public let initializeResponse: RPCMessage
    }

    public struct Failure: Error, Sendable {
        public var message: String
        public var code = RPCErrorCode.serverUnavailable
    }

    private enum Phase {
        case idle
        case starting(Task<Result<Live, Failure>, Never>)
        case running(Live)
        case stopped
    }

    private struct WeakClient {
        weak var client: (any UpstreamClient)?
    }

    private struct State {
        var phase: Phase = .idle
        var keepRunning = false
        var clients: [ObjectIdentifier: WeakClient] = [:]
    }

    /// Strong: the server clears its slots when it shuts down, which ends the cycle.
    let server: ServerSupervisor
    /// `initialize` params sent to every process of this slot (a client's own, or the supervisor's).
    let initializeParams: String
    let exclusive: Bool
    private let state = Mutex(State())

    init(server: ServerSupervisor, initializeParams: String, exclusive: Bool) {
        self.server = server
        self.initializeParams = initializeParams
        self.exclusive = exclusive
    }

    /// The running process at once, when there is one (the fast path of every request).
    public var current: Live? {
        state.withLock { if case .running(let live) = $0.phase { return live } else { return nil } }
    }

    public var isRunning: Bool { current != nil }

    /// Keep a process running (restart it) even with no client: shared/eager slots.
    func setKeepRunning(_ keep: Bool) { state.withLock { $0.keepRunning = keep } }

    /// A client now uses this slot: it gets the notifications of this and every later process.
    func attach(_ client: any UpstreamClient) {
        let live: Live? = state.withLock { s in
            s.clients[ObjectIdentifier(client)] = WeakClient(client: client)
            if case .running(let l) = s.phase { return l }
            return nil
        }
        live?.connection.attach(client)
    }

    /// A client is done; returns how many remain.
    func detach(_ client: any UpstreamClient) -> Int {
        let (live, left): (Live?, Int) = state.withLock { s in
            s.clients[ObjectIdentifier(client)] = nil
            s.clients = s.clients.filter { $0.value.client != nil }
            if case .running(let l) = s.phase { return (l, s.clients.count) }
            return (nil, s.clients.count)
        }
        live?.connection.detach(client)
        return left
    }

    var clients: Int { state.withLock { s in s.clients.values.filter { $0.client != nil }.count } }

    /// The running process, starting it (or waiting for a restart under way) when needed.
    public func ready() async -> Result<Live, Failure> {
        while true {
            enum Next { case live(Live), wait(Task<Result<Live, Failure>, Never>), fail(Failure) }
            let refusal = server.refusal()
            let next: Next = state.withLock { s in
                switch s.phase {
                case .running(let live): return .live(live)
                case .starting(let task): return .wait(task)
                case .stopped: return .fail(Failure(message: "the server \"\(server.config.id)\" was stopped"))
                case .idle:
                    if let refusal { return .fail(Failure(message: refusal)) }
                    let task = launch(after: .zero)
                    s.phase = .starting(task)
                    return .wait(task)
                }
            }
            switch next {
            case .live(let live): return .success(live)
            case .fail(let f): return .failure(f)
            case .wait(let task):
                let result = await task.value
                if case .success = result { return result }
                // A failed start leaves the slot idle (or restarting): one answer per request.
                return result
            }
        }
    }

    /// `ready()`, or a timeout error after `limit` (the start goes on for whoever comes next).
    public func ready(within limit: Duration) async -> Result<Live, Failure> {
        if let live = current { return .success(live) }
        let timeoutFailure = Failure(
            message: "the server process did not become ready within \(formatSeconds(server.config.requestTimeout)) (requestTimeout)",
            code: RPCErrorCode.requestTimeout)
        return await withCheckedContinuation { continuation in
            let answered = Once()
            let timer = Task {
                do { try await Task.sleep(for: limit) } catch { return }
                if answered.claim() { continuation.resume(returning: .failure(timeoutFailure)) }
            }
            Task {
                let result = await self.ready()
                timer.cancel()
                if answered.claim() { continuation.resume(returning: result) }
            }
        }
    }

    /// Stops the process (SIGTERM, SIGKILL after the grace period); the slot stays usable
    /// (idle) unless `final`.
    func stop(final: Bool) async {
        let (live, task): (Live?, Task<Result<Live, Failure>, Never>?) = state.withLock { s in
            defer { s.phase = final ? .stopped : .idle; s.keepRunning = false }
            switch s.phase {
            case .running(let live): return (live, nil)
            case .starting(let task): return (nil, task)
            default: return (nil, nil)
            }
        }
        if let task {
            task.cancel()
            if case .success(let live) = await task.value {
                live.connection.close(reason: "the server was stopped")
                await live.process.stop(grace: server.stopGrace)
            }
        }
        if let live {
            live.connection.close(reason: "the server \"\(server.config.id)\" was stopped")
            let status = await live.process.stop(grace: server.stopGrace)
            server.log(.info, "stopped", ["pid": "\(live.process.pid)", "status": "\(status)"])
            server.stderr.note("pid \(live.process.pid) stopped: \(status)")
        }
        server.changed()
    }

    private func launch(after delay: Duration) -> Task<Result<Live, Failure>, Never> {
        Task {
            if delay > .zero {
                do { try await Task.sleep(for: delay) } catch { return .failure(Failure(message: "stopped while waiting to restart")) }
            }
            let result = await start()
            let clients: [any UpstreamClient] = state.withLock { s in
                guard case .starting = s.phase else { return [] }  // stopped meanwhile
                switch result {
                case .success(let live): s.phase = .running(live)
                case .failure: s.phase = .idle
                }
                return s.clients.values.compactMap(\.client)
            }
            if case .success(let live) = result { for c in clients { live.connection.attach(c) } }
            if case .success(let live) = result {
                if case .stopped = state.withLock({ $0.phase }) {
                    live.connection.close(reason: "the server was stopped")
                    await live.process.stop(grace: server.stopGrace)
                    return .failure(Failure(message: "the server \"\(server.config.id)\" was stopped"))
                }
                await server.processStarted(live)
            } else if case .failure = result {
                server.changed()
                scheduleRestartIfWanted()
            }
            return result
        }
    }

    private func start() async -> Result<Live, Failure> {
        let config = server.config
        let box = Mutex<ChildProcess?>(nil)
        // The process's pipes and its connection's timer on one event loop.
        let loop = server.group.next()
        let connection = UpstreamConnection(exclusive: exclusive, eventLoop: loop) { bytes in
            box.withLock { $0 }?.send(bytes)
        }
        let process: ChildProcess
        do {
            process = try await ChildProcess.spawn(
                command: config.command, args: config.args, environment: config.environment, cwd: config.cwd,
                group: loop, stderr: server.stderr,
                onMessage: { connection.received($0) },
                onClose: { [weak self, server] in
                    connection.close(reason: server.goneMessage("the server process closed its output"))
                    if let process = box.withLock({ $0 }) { self?.outputClosed(process) }
                })
        } catch {
            server.stderr.note("cannot start: \(error.message)")
            server.log(.error, "cannot start", ["error": "\(error.message)"])
            let decision = server.recordFailure("cannot start: \(error.message)")
            return .failure(Failure(message: server.failureMessage(error.message, decision)))
        }
        box.withLock { $0 = process }
        server.stderr.note("pid \(process.pid) started: \(([config.command] + config.args).joined(separator: " "))")
        server.log(.info, "process started", ["pid": "\(process.pid)"])
        let request = RPCMessage.request(id: 0, method: "initialize", params: initializeParams)
        let response: [UInt8] = await {
            guard let message = try? RPCMessage(request) else { return RPCMessage.error(id: nil, code: RPCErrorCode.internalError, message: "bad initialize params") }
            return await connection.request(message, from: nil, timeout: server.startTimeout, timeoutOption: "startTimeout")
        }()
        guard let parsed = try? RPCMessage(response), let members = try? JSONBytes.members(parsed.bytes, 0..<parsed.bytes.count),
              members.contains(where: { $0.key == "result" }) else {
            let detail = Self.errorMessage(response) ?? "an invalid answer"
            connection.close(reason: "initialize failed")
            let status = await process.stop(grace: server.stopGrace)
            server.stderr.note("pid \(process.pid) initialize failed (\(detail)); \(status)")
            server.log(.error, "initialize failed", ["pid": "\(process.pid)", "error": "\(detail)", "status": "\(status)"])
            let decision = server.recordFailure("initialize failed: \(detail); \(status)")
            return .failure(Failure(message: server.failureMessage("initialize failed: \(detail)", decision)))
        }
        connection.sendRaw(RPCMessage.notification(method: "notifications/initialized", params: nil))
        let live = Live(process: process, connection: connection, initializeResponse: parsed)
        connection.observeNotifications { [server] note in
            if let method = note.method, ServerSupervisor.listChangedMethods.contains(method) { server.listsChanged(live) }
        }
        Task { [weak self] in
            let status = await process.exitStatus
            ExitWatcher.forget(process.pid)
            self?.exited(live, status)
        }
        return .success(live)
    }

    /// The process closed its output: it can answer nothing more, so it stops being the slot's
    /// process at once — a request arriving before it is reaped waits for the restart instead of
    /// failing on the closed connection (as one did when the exit was seen a moment later).
    private func outputClosed(_ process: ChildProcess) {
        guard !process.isStopping, takeOut(process) else { return }
        server.log(.warning, "process closed its output", ["pid": "\(process.pid)"])
        _ = server.recordFailure("the process closed its output")
        // One that closed its output but lingers is ended like a stopped one: no child outlives
        // its slot, and the restart does not run beside it.
        Task { [server] in
            let status = await process.stop(grace: server.stopGrace)
            server.stderr.note("pid \(process.pid) closed its output: \(status)")
        }
        scheduleRestartIfWanted()
    }

    private func exited(_ live: Live, _ status: ExitStatus) {
        live.connection.close(reason: server.goneMessage("the server process ended (\(status))"))
        guard !live.process.isStopping else { return }
        server.stderr.note("pid \(live.process.pid) exited: \(status)")
        // Usually its closed output took it out already (and counted the failure).
        guard takeOut(live.process) else { return }
        server.log(.warning, "process exited", ["pid": "\(live.process.pid)", "status": "\(status)"])
        _ = server.recordFailure("the process exited: \(status)")
        scheduleRestartIfWanted()
    }

    /// Makes the slot idle if `process` is its running one; true when it was.
    private func takeOut(_ process: ChildProcess) -> Bool {
        state.withLock { s -> Bool in
            guard case .running(let l) = s.phase, l.process === process else { return false }
            s.phase = .idle
            return true
        }
    }

    /// After a failure: restart with backoff while someone needs the process, unless in a crash loop.
    private func scheduleRestartIfWanted() {
        guard let delay = server.restartDelay() else { server.changed(); return }
        let restarted = state.withLock { s -> Bool in
            guard case .idle = s.phase, s.clients.values.contains(where: { $0.client != nil }) || s.keepRunning else { return false }
            s.phase = .starting(launch(after: delay))
            return true
        }
        if restarted {
            server.restarted()
            server.log(.info, "restarting", ["delay": "\(delay)"])
        }
        server.changed()
    }

    static func errorMessage(_ response: [UInt8]) -> String? {
        guard let members = try? JSONBytes.members(response, 0..<response.count),
              let error = members.first(where: { $0.key == "error" }),
              let inner = try? JSONBytes.members(response, error.value),
              let message = inner.first(where: { $0.key == "message" }) else { return nil }
        return JSONBytes.decodeString(response, message.value)
    }
}
