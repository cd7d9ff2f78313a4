import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RegistryServerPolicy
import Synchronization

/// The events waiting for one SSE response, within the client's byte budget
/// (`ServerLimits.clientBufferBytes`, counted by the project's `ClientBudget`): a client that
/// lets more wait loses its stream, not the supervisor's memory. The writer calls `written`.
final class SSEOutbox: Sendable {
    let stream: AsyncStream<[UInt8]>
    private let continuation: AsyncStream<[UInt8]>.Continuation
    private let budget: ClientBudget

    init(budget: Int) {
        (stream, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .unbounded)
        self.budget = ClientBudget(limit: budget)
    }

    /// Queues one event; over the budget the stream ends instead.
    func send(_ event: [UInt8]) {
        if !offer(event) { continuation.finish() }
    }

    /// Queues one event if it fits the budget; false (nothing queued) when it does not.
    /// Ends nothing, so it may be called under a lock that `onEnd`'s action takes.
    func offer(_ event: [UInt8]) -> Bool {
        guard budget.reserve(event.count) else { return false }
        continuation.yield(event)
        return true
    }

    /// `count` bytes of queued events were written to the client.
    func written(_ count: Int) { budget.release(count) }

    func finish() { continuation.finish() }

    /// Runs `action` once the stream has ended (finished, over budget, or its writer gone).
    func onEnd(_ action: @escaping @Sendable () -> Void) {
        continuation.onTermination = { _ in action() }
    }
}

/// One downstream session of a bridge (`Mcp-Session-Id`, or a legacy `/sse` stream): the process
/// slot it uses, its server-to-client SSE stream, and what arrived while no stream was open.
final class BridgeSession: UpstreamClient, Sendable {
    let id: String
    let slot: ProcessSlot
    /// Bytes that may wait for the client on its stream (`ServerLimits.clientBufferBytes`).
    let bufferBytes: Int
    /// Legacy HTTP+SSE: the one stream the session was opened with (GET /sse), which carries
    /// everything, answers included. nil: GET /mcp streams that come and go.
    let fixedStream: SSEOutbox?

    private struct State {
        var lastUsed = ContinuousClock.now
        var inFlight = 0
        var stream: SSEOutbox?
        var backlog: [[UInt8]] = []
        var closed = false
    }
    private let state: Mutex<State>
    static let maxBacklog = 256

    init(id: String, slot: ProcessSlot, bufferBytes: Int, fixedStream: SSEOutbox? = nil) {
        self.id = id
        self.slot = slot
        self.bufferBytes = bufferBytes
        self.fixedStream = fixedStream
        self.state = Mutex(State(stream: fixedStream))
    }

    func deliver(_ message: [UInt8]) {
        let event = Self.sseEvent(message)
        let stream: SSEOutbox? = state.withLock { s in
            if let stream = s.stream { return stream }
            if !s.closed {
                s.backlog.append(event)
                if s.backlog.count > Self.maxBacklog { s.backlog.removeFirst() }
            }
            return nil
        }
        stream?.send(event)
    }

    func begin() { state.withLock { s in s.inFlight += 1; s.lastUsed = .now } }
    func end() { state.withLock { s in s.inFlight -= 1; s.lastUsed = .now } }

    func idle(longerThan limit: Duration, now: ContinuousClock.Instant) -> Bool {
        state.withLock { s in s.inFlight == 0 && now - s.lastUsed > limit }
    }

    /// A server-to-client stream (GET /mcp); nil when one is already open (or the session has
    /// its fixed legacy stream). When it ends, messages wait in the backlog for the next one.
    func openStream() -> SSEOutbox? {
        guard fixedStream == nil else { return nil }
        let outbox = SSEOutbox(budget: bufferBytes)
        outbox.onEnd { [weak self, weak outbox] in
            self?.state.withLock { s in if s.stream === outbox { s.stream = nil } }
        }
        // The backlog goes first, in order, under the lock; a backlog over the budget ends the
        // stream at once (after the lock: the end takes it).
        let opened: (ok: Bool, over: Bool) = state.withLock { s in
            guard s.stream == nil, !s.closed else { return (false, false) }
            s.stream = outbox
            var over = false
            for e in s.backlog where !over { over = !outbox.offer(e) }
            s.backlog = []
            return (true, over)
        }
        if !opened.ok || opened.over {
            outbox.finish()
            if !opened.ok { return nil }
        }
        return outbox
    }

    func close() {
        let stream = state.withLock { s -> SSEOutbox? in
            s.closed = true
            s.backlog = []
            defer { s.stream = nil }
            return s.stream
        }
        stream?.finish()
    }

    static func sseEvent(_ message: [UInt8]) -> [UInt8] {
        Array("event: message\ndata: ".utf8) + message + [0x0A, 0x0A]
    }
}

/// The HTTP endpoints of one supervised server, both served under the project's one
/// `ServerPolicy` (loopback Host and Origin, the bearer token, connection caps, timeouts,
/// per-client byte budget), applied before this (`Supervisor.serve`):
///
/// - `/mcp`, streamable HTTP (MCP 2025-03-26 and later): POST carries client messages (answered
///   with JSON, or with an SSE stream when a request asks for progress), GET opens the session's
///   server-to-client stream (with keep-alive comments), DELETE ends the session.
/// - `/sse` + `/messages`, the legacy HTTP+SSE transport (MCP 2024-11-05): `Bridge+LegacySSE.swift`.
///
/// A session of either kind is a `BridgeSession` with its process slot.
final class Bridge: Sendable {
    let server: ServerSupervisor
    private let sessions = Mutex<[String: BridgeSession]>([:])
    /// Legacy HTTP+SSE sessions by their `session_id` (a separate namespace from `Mcp-Session-Id`).
    let legacySessions = Mutex<[String: LegacySession]>([:])
    /// Bytes that may wait for one client on a stream.
    let bufferBytes: Int
    static let maxBodyBytes = 16 << 20
    static let sessionHeader = HTTPField.Name("Mcp-Session-Id")

    init(server: ServerSupervisor) {
        self.server = server
        self.bufferBytes = Self.limits.clientBufferBytes
    }

    /// The project's limits, with request bodies up to `maxBodyBytes`.
    static var limits: ServerLimits {
        var limits = ServerLimits()
        limits.maxBodyBytes = maxBodyBytes
        return limits
    }

    /// The policy of every bridge: loopback only, the server's token, the project's limits.
    static func policy(token: AccessToken) -> ServerPolicy {
        ServerPolicy(access: AccessPolicy(), token: token, limits: limits)
    }

    var sessionCount: Int { sessions.withLock { $0.count } + legacySessions.withLock { $0.count } }

    /// `/mcp`. `channel`: the request's connection (a GET stream ends as soon as it closes).
    func respond(to request: Request, channel: (any Channel)? = nil) async throws -> Response {
        let sessionID = Self.sessionHeader.flatMap { request.headers[$0] }
        switch request.method {
        case .post: return try await post(request, sessionID: sessionID)
        case .get: return get(request, sessionID: sessionID, channel: channel)
        case .delete: return await delete(sessionID: sessionID)
        default:
            return Self.json(RPCMessage.error(id: nil, code: RPCErrorCode.invalidRequest, message: "Method Not Allowed: use POST, GET or DELETE"), status: .methodNotAllowed)
        }
    }

    // MARK: POST

    private func post(_ request: Request, sessionID: String?) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: Self.maxBodyBytes)
        let bytes = Array(body.readableBytesView)
        var i = 0
        JSONBytes.skipSpace(bytes, &i)
        if i < bytes.count, bytes[i] == UInt8(ascii: "[") {
            return await batch(bytes, sessionID: sessionID)
        }
        let message: RPCMessage
        do {
            message = try RPCMessage(bytes)
        } catch {
            return Self.json(RPCMessage.error(id: nil, code: RPCErrorCode.parseError, message: "Parse error: \(error)"), status: .badRequest)
        }
        guard let sessionID else {
            guard message.kind == .request, message.method == "initialize" else {
                return Self.json(RPCMessage.error(id: message.id, code: RPCErrorCode.invalidRequest, message: "Bad Request: no Mcp-Session-Id header (send initialize first)"), status: .badRequest)
            }
            return await initialize(message)
        }
        guard let session = sessions.withLock({ $0[sessionID] }) else {
            return Self.json(RPCMessage.error(id: message.id, code: RPCErrorCode.invalidRequest, message: "Not Found: no such session (it ended or expired); initialize a new one"), status: .notFound)
        }
        switch message.kind {
        case .request:
            let wantsStream = message.progressTokenRange != nil && (request.headers[.accept]?.contains("text/event-stream") ?? false)
            if wantsStream, let live = session.slot.current {
                return streamed(message, session: session, live: live)
            }
            let answer = await handle(message, session: session)
            return Self.json(answer, session: sessionID)
        case .notification:
            forward(message, session: session)
            return Self.accepted(sessionID)
        case .response:
            session.slot.current?.connection.respond(message, from: session)
            return Self.accepted(sessionID)
        }
    }

    func forward(_ message: RPCMessage, session: BridgeSession) {
        // The supervisor sends notifications/initialized itself after each initialize (replays too).
        guard message.method != "notifications/initialized" else { return }
        session.slot.current?.connection.notify(message, from: session)
    }

    /// One request of a session: to its process, started or restarted as needed.
    func handle(_ message: RPCMessage, session: BridgeSession) async -> [UInt8] {
        session.begin()
        defer { session.end() }
        let live: ProcessSlot.Live
        if let current = session.slot.current {
            live = current
        } else {
            switch await session.slot.ready(within: server.requestTimeout) {
            case .success(let l): live = l
            case .failure(let f): return RPCMessage.error(id: message.id, code: f.code, message: f.message)
            }
        }
        if message.method == "initialize" {
            return Self.withID(live.initializeResponse, message.id)
        }
        return await live.connection.request(message, from: session, timeout: server.requestTimeout)
    }

    private func initialize(_ message: RPCMessage) async -> Response {
        let (session, answer) = await openSession(message, id: ServerSupervisor.newToken(), fixedStream: nil)
        guard let session else { return Self.json(answer) }
        sessions.withLock { $0[session.id] = session }
        return Self.json(answer, session: session.id)
    }

    /// A new session for a client's `initialize`: a process slot (its own process, or the
    /// shared one) that is ready, and the answer with the client's id. No session when it could
    /// not be had (the answer is the error).
    func openSession(_ message: RPCMessage, id: String, fixedStream: SSEOutbox?) async -> (BridgeSession?, [UInt8]) {
        let params = message.paramsRange.map { String(decoding: message.bytes[$0], as: UTF8.self) } ?? "{}"
        let slot: ProcessSlot
        switch server.slotForNewSession(initializeParams: params) {
        case .success(let s): slot = s
        case .failure(let f): return (nil, RPCMessage.error(id: message.id, code: f.code, message: f.message))
        }
        let session = BridgeSession(id: id, slot: slot, bufferBytes: bufferBytes, fixedStream: fixedStream)
        slot.attach(session)
        // The initialize is the session's first request: its idle time starts when it is
        // answered, not before its process started (which may take longer than idleTimeout).
        session.begin()
        defer { session.end() }
        switch await slot.ready(within: server.startTimeout + .seconds(1)) {
        case .failure(let f):
            await server.sessionEnded(session, slot: slot)
            return (nil, RPCMessage.error(id: message.id, code: f.code, message: f.message))
        case .success(let live):
            server.log(.debug, "session opened", ["session": session.id, "pid": "\(live.process.pid)", "transport": fixedStream == nil ? "streamable" : "sse"])
            server.changed()
            return (session, Self.withID(live.initializeResponse, message.id))
        }
    }

    private func streamed(_ message: RPCMessage, session: BridgeSession, live: ProcessSlot.Live) -> Response {
        let timeout = server.requestTimeout
        var headers = Self.sseHeaders
        if let name = Self.sessionHeader { headers[name] = session.id }
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            session.begin()
            defer { session.end() }
            let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    let answer = await live.connection.request(message, from: session, timeout: timeout) { note in
                        continuation.yield(BridgeSession.sseEvent(note))
                    }
                    continuation.yield(BridgeSession.sseEvent(answer))
                    continuation.finish()
                }
                for await event in stream {
                    do { try await writer.write(ByteBuffer(bytes: event)) } catch { break }
                }
                group.cancelAll()
            }
            try await writer.finish(nil)
        })
    }

    private func batch(_ bytes: [UInt8], sessionID: String?) async -> Response {
        guard let sessionID, let session = sessions.withLock({ $0[sessionID] }) else {
            return Self.json(RPCMessage.error(id: nil, code: RPCErrorCode.invalidRequest, message: "Bad Request: a batch needs a session (initialize alone first)"), status: .badRequest)
        }
        let items: [RPCMessage]
        switch Self.parseMessages(bytes) {
        case .success(let m): items = m
        case .failure(let f): return Self.json(RPCMessage.error(id: nil, code: f.code, message: f.message), status: .badRequest)
        }
        var answers: [[UInt8]] = []
        await withTaskGroup(of: [UInt8]?.self) { group in
            for m in items {
                switch m.kind {
                case .request: group.addTask { await self.handle(m, session: session) }
                case .notification: forward(m, session: session)
                case .response: session.slot.current?.connection.respond(m, from: session)
                }
            }
            for await a in group { if let a { answers.append(a) } }
        }
        if answers.isEmpty { return Self.accepted(sessionID) }
        var out: [UInt8] = [UInt8(ascii: "[")]
        for (k, a) in answers.enumerated() {
            if k > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: a)
        }
        out.append(UInt8(ascii: "]"))
        return Self.json(out, session: sessionID)
    }

    // MARK: GET / DELETE

    private func get(_ request: Request, sessionID: String?, channel: (any Channel)?) -> Response {
        guard let sessionID, let session = sessions.withLock({ $0[sessionID] }) else {
            return Self.json(RPCMessage.error(id: nil, code: RPCErrorCode.invalidRequest, message: sessionID == nil ? "Bad Request: no Mcp-Session-Id header" : "Not Found: no such session"),
                             status: sessionID == nil ? .badRequest : .notFound)
        }
        guard let outbox = session.openStream() else {
            return Self.json(RPCMessage.error(id: nil, code: RPCErrorCode.invalidRequest, message: "Conflict: this session already has a stream open"), status: .conflict)
        }
        // A client that goes away ends its stream now, not at the next keep-alive.
        if let channel { ConnectionGuard.whenClientGone(channel) { outbox.finish() } }
        let keepAlive = server.keepAlive
        var headers = Self.sseHeaders
        if let name = Self.sessionHeader { headers[name] = sessionID }
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            // When it ends (client gone, over its budget), messages wait for the next GET.
            await Self.writeEvents(outbox.stream, keepAlive: keepAlive, to: &writer) { outbox.written($0.count) }
            outbox.finish()
            try? await writer.finish(nil)
        })
    }

    private func delete(sessionID: String?) async -> Response {
        guard let sessionID, let session = sessions.withLock({ $0.removeValue(forKey: sessionID) }) else {
            return Self.json(RPCMessage.error(id: nil, code: RPCErrorCode.invalidRequest, message: "Not Found: no such session"), status: .notFound)
        }
        session.close()
        await server.sessionEnded(session, slot: session.slot)
        server.log(.debug, "session closed", ["session": sessionID])
        return Response(status: .ok)
    }

    // MARK: Housekeeping

    /// Closes sessions idle (no request) longer than `idleTimeout`, until cancelled.
    func expireIdleSessions() async {
        let limit = server.idleTimeout
        let period = min(max(limit / 4, .milliseconds(25)), .seconds(10))
        while !Task.isCancelled {
            do { try await Task.sleep(for: period) } catch { return }
            let now = ContinuousClock.now
            let expired: [BridgeSession] = sessions.withLock { all in
                let idle = all.values.filter { $0.idle(longerThan: limit, now: now) }
                for s in idle { all[s.id] = nil }
                return idle
            }
            for s in expired {
                s.close()
                server.log(.info, "session expired", ["session": s.id, "idleTimeout": formatSeconds(server.config.idleTimeout)])
                await server.sessionEnded(s, slot: s.slot)
            }
            let expiredLegacy = legacySessions.withLock { all in all.values.filter { $0.idle(longerThan: limit, now: now) }.map(\.id) }
            for id in expiredLegacy {
                server.log(.info, "session expired", ["session": id, "transport": "sse", "idleTimeout": formatSeconds(server.config.idleTimeout)])
                await endLegacySession(id)
            }
        }
    }

    func closeAll() async {
        let all: [BridgeSession] = sessions.withLock { s in
            defer { s = [:] }
            return Array(s.values)
        }
        for s in all {
            s.close()
            await server.sessionEnded(s, slot: s.slot)
        }
        for id in legacySessions.withLock({ Array($0.keys) }) { await endLegacySession(id) }
    }

    // MARK: Responses

    /// Writes `stream`'s SSE events to `writer`, with a keep-alive comment every `keepAlive`,
    /// until the stream ends or the client goes; `written` sees each event (not the comments)
    /// once it was written. The GET stream of the bridge and of the gateway.
    static func writeEvents(_ stream: AsyncStream<[UInt8]>, keepAlive: Duration, to writer: inout any ResponseBodyWriter,
                            written: @Sendable ([UInt8]) -> Void) async {
        let (ticks, tick) = AsyncStream<[UInt8]>.makeStream()
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await event in stream { tick.yield(event) }
                tick.finish()
            }
            group.addTask {
                while !Task.isCancelled {
                    do { try await Task.sleep(for: keepAlive) } catch { break }
                    tick.yield(Array(": keep-alive\n\n".utf8))
                }
            }
            for await chunk in ticks {
                do { try await writer.write(ByteBuffer(bytes: chunk)) } catch { break }
                if chunk.first != UInt8(ascii: ":") { written(chunk) }
            }
            group.cancelAll()
        }
    }

    static let sseHeaders: HTTPFields = {
        var h = HTTPFields()
        h[.contentType] = "text/event-stream"
        h[.cacheControl] = "no-cache"
        return h
    }()

    static func json(_ bytes: [UInt8], status: HTTPResponse.Status = .ok, session: String? = nil) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if let session, let name = sessionHeader { headers[name] = session }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func accepted(_ session: String) -> Response {
        var headers = HTTPFields()
        if let name = sessionHeader { headers[name] = session }
        return Response(status: .accepted, headers: headers)
    }

    static func withID(_ message: RPCMessage, _ id: [UInt8]?) -> [UInt8] {
        guard let range = message.idRange else { return message.bytes }
        return message.replacing([(range, id ?? Array("null".utf8))])
    }
}

/// True for the first caller of `claim` only.
final class Once: Sendable {
    private let flag = Atomic<Bool>(false)
    func claim() -> Bool { !flag.exchange(true, ordering: .acquiringAndReleasing) }
}
