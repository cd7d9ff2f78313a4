import Synchronization

/// One MCP session with a server the gateway supervises itself (`peer-registry gateway
/// --config`): its messages go straight to the server's process slot, as its bridge sends those
/// of an HTTP client, without the loopback HTTP round trip (and its encoding, parsing and
/// connection pool) to the same process. Chosen by `Upstreams.make` for an entry whose id, URL
/// and token are the supervisor's own (`Supervisor.server(behind:)`); everything else about the
/// session is the bridge's:
///
/// - a slot from `ServerSupervisor.slotForNewSession` (its own process, or the shared one; the
///   server's `maxSessions` and `maxProcesses` apply), released when the session closes;
/// - a request waits for the process to start or restart, up to the server's `requestTimeout`;
///   a process that dies answers its in-flight requests with an error and is restarted with
///   `initialize` replayed, so the session carries on;
/// - progress, cancellation and the server's own requests (per-session processes only) pass
///   through the slot's connection, ids and tokens mapped at each of the two connections.
final class LocalUpstream: MCPUpstream, UpstreamClient {
    let backendID: String
    let url: String
    let connection: UpstreamConnection
    let requestTimeout: Duration
    let server: ServerSupervisor
    private let initializeParams: String

    private struct State {
        var slot: ProcessSlot?
        var closed = false
    }
    private let state = Mutex(State())

    init(server: ServerSupervisor, backendID: String, url: String, initializeParams: String,
         requestTimeout: Duration, exclusive: Bool) {
        self.server = server
        self.backendID = backendID
        self.url = url
        self.initializeParams = initializeParams
        self.requestTimeout = requestTimeout
        let sink = WeakSink<LocalUpstream>()
        self.connection = UpstreamConnection(exclusive: exclusive, eventLoop: server.group.next()) { bytes in
            sink.target?.send(bytes)
        }
        sink.target = self
    }

    var isClosed: Bool { state.withLock { $0.closed } }

    func start() async -> Result<UpstreamHandshake, UpstreamFailure> {
        if isClosed { return .failure(.init(message: "backend \"\(backendID)\": the session was closed")) }
        let slot: ProcessSlot
        switch server.slotForNewSession(initializeParams: initializeParams) {
        case .success(let s): slot = s
        case .failure(let f): return .failure(.init(message: "backend \"\(backendID)\": \(f.message)"))
        }
        slot.attach(self)
        let kept = state.withLock { s -> Bool in
            guard !s.closed else { return false }
            s.slot = slot
            return true
        }
        guard kept else {
            await server.sessionEnded(self, slot: slot)
            return .failure(.init(message: "backend \"\(backendID)\": the session was closed"))
        }
        switch await slot.ready(within: server.startTimeout + .seconds(1)) {
        case .failure(let f):
            close(reason: f.message)
            return .failure(.init(message: "backend \"\(backendID)\": \(f.message)"))
        case .success(let live):
            server.changed()
            // A session of its own process, or of the shared one: either way, per downstream session.
            return .success(UpstreamHandshake(response: live.initializeResponse, hasSessionID: true))
        }
    }

    func close(reason: String) {
        let slot: ProcessSlot? = state.withLock { s in
            if s.closed { return nil }
            s.closed = true
            defer { s.slot = nil }
            return s.slot
        }
        connection.close(reason: reason)
        if let slot { Task { await server.sessionEnded(self, slot: slot) } }
    }

    /// What the server sends this session unasked (notifications, its own requests): to the
    /// gateway's side of the session.
    func deliver(_ message: [UInt8]) { connection.received(message) }

    /// A message from the gateway's side (ids already the connection's own), to the process.
    private func send(_ bytes: [UInt8]) {
        guard let slot = state.withLock({ $0.closed ? nil : $0.slot }), let message = try? RPCMessage(bytes) else { return }
        switch message.kind {
        case .request:
            Task {
                let live: ProcessSlot.Live
                switch await slot.ready(within: server.requestTimeout) {
                case .success(let l): live = l
                case .failure(let f):
                    connection.received(RPCMessage.error(id: message.id, code: f.code, message: f.message))
                    return
                }
                connection.received(await live.connection.request(message, from: self, timeout: server.requestTimeout))
            }
        case .notification:
            slot.current?.connection.notify(message, from: self)
        case .response:
            slot.current?.connection.respond(message, from: self)
        }
    }
}
