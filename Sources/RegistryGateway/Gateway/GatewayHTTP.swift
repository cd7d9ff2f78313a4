import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RegistryServerPolicy
import ServiceLifecycle
import Synchronization

/// The gateway over streamable HTTP (MCP 2025-03-26 and later) on 127.0.0.1: POST carries
/// client messages (answered with JSON, or an SSE stream when a request asks for progress), GET
/// opens the session's stream (list_changed and backend notifications; keep-alive comments),
/// DELETE ends the session. The project's `ServerPolicy` applies first: loopback Host (DNS
/// rebinding), no foreign Origin (403), the bearer token (401), connection caps and timeouts;
/// what waits for one client is bounded by `limits.clientBufferBytes` (past it the stream is
/// closed and the client must reconnect).
public final class GatewayHTTP: Sendable {
    public struct Options: Sendable {
        public var host = "127.0.0.1"
        public var port = 0
        public var endpoint = "/mcp"
        /// nil: no token (`--no-auth`).
        public var token: AccessToken?
        public var access = AccessPolicy()
        public var limits = ServerLimits()
        public var maxSessions = 1024
        public var idleTimeout: Duration = .seconds(600)
        public var keepAlive: Duration = .seconds(30)
        public var tokenHint = ""
        public init() {}
    }

    /// One HTTP session: the gateway session and its server-to-client stream.
    final class Session: Sendable {
        let id: String
        let budget: ClientBudget
        private struct State {
            var gateway: GatewaySession?
            var stream: AsyncStream<[UInt8]>.Continuation?
            var backlog: [[UInt8]] = []
            var closed = false
            var lastUsed = ContinuousClock.now
        }
        private let state = Mutex(State())
        static let maxBacklog = 256

        init(id: String, budget: Int) {
            self.id = id
            self.budget = ClientBudget(limit: budget)
        }

        var gateway: GatewaySession? { state.withLock { $0.gateway } }
        func attach(_ g: GatewaySession) { state.withLock { $0.gateway = g } }
        func touch() { state.withLock { $0.lastUsed = .now } }
        var lastUsed: ContinuousClock.Instant { state.withLock { $0.lastUsed } }
        func idle(longerThan limit: Duration, now: ContinuousClock.Instant) -> Bool {
            guard state.withLock({ now - $0.lastUsed > limit }) else { return false }
            return gateway?.idle(longerThan: limit, now: now) ?? true
        }

        func send(_ message: [UInt8]) {
            let event = Self.event(message)
            let stream: AsyncStream<[UInt8]>.Continuation? = state.withLock { s in
                if let stream = s.stream { return stream }
                if !s.closed {
                    s.backlog.append(event)
                    if s.backlog.count > Self.maxBacklog { s.backlog.removeFirst() }
                }
                return nil
            }
            guard let stream else { return }
            // A client that does not read its stream loses it, not the gateway's memory.
            guard budget.reserve(event.count) else {
                stream.finish()
                return
            }
            stream.yield(event)
        }

        func openStream() -> AsyncStream<[UInt8]>? {
            let (stream, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .unbounded)
            let ok = state.withLock { s -> Bool in
                guard s.stream == nil, !s.closed else { return false }
                s.stream = continuation
                for e in s.backlog where budget.reserve(e.count) { continuation.yield(e) }
                s.backlog = []
                return true
            }
            if !ok { continuation.finish(); return nil }
            continuation.onTermination = { [weak self] _ in self?.state.withLock { s in s.stream = nil } }
            return stream
        }

        func close() {
            let (stream, g) = state.withLock { s -> (AsyncStream<[UInt8]>.Continuation?, GatewaySession?) in
                s.closed = true
                s.backlog = []
                defer { s.stream = nil; s.gateway = nil }
                return (s.stream, s.gateway)
            }
            stream?.finish()
            g?.close()
        }

        static func event(_ message: [UInt8]) -> [UInt8] { Array("event: message\ndata: ".utf8) + message + [0x0A, 0x0A] }
    }

    public let gateway: Gateway
    public let options: Options
    private let sessions = Mutex<[String: Session]>([:])
    static let sessionHeader = HTTPField.Name("Mcp-Session-Id")

    public init(gateway: Gateway, options: Options) {
        self.gateway = gateway
        self.options = options
    }

    public var sessionCount: Int { sessions.withLock { $0.count } }

    /// Serves until cancelled or a graceful shutdown.
    /// - Parameter onListening: gets the bound port.
    /// - Throws: `PolicyError` for a policy that would let any page in; when it cannot listen.
    public func run(onListening: @escaping @Sendable (Int) async -> Void) async throws {
        var policy = ServerPolicy(access: options.access, token: options.token, limits: options.limits)
        policy.limits.maxBodyBytes = min(policy.limits.maxBodyBytes, 16 << 20)
        try policy.validate()
        let router = Router(context: PolicyRequestContext.self)
        router.add(middleware: PolicyMiddleware(
            policy: policy, allowedMethods: "GET, POST, DELETE, OPTIONS",
            allowedHeaders: "Accept, Authorization, Content-Type, Last-Event-ID, Mcp-Session-Id, Mcp-Protocol-Version",
            exposedHeaders: "Mcp-Session-Id", cookiePaths: [], tokenHint: options.tokenHint))
        let maxBody = policy.limits.maxBodyBytes
        for method in [HTTPRequest.Method.post, .get, .delete] {
            router.on(RouterPath(options.endpoint), method: method) { request, _ in try await self.respond(to: request, maxBody: maxBody) }
        }
        let tracker = ConnectionTracker(limits: policy.limits)
        let logger = Logger(label: "peer-registry.gateway.http", factory: { _ in SwiftLogNoOpLogHandler() })
        let app = Application(
            router: router,
            server: PolicedServer.http1(tracker),
            configuration: ApplicationConfiguration(address: .hostname(options.host, port: options.port), serverName: "peer-registry-gateway"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? self.options.port) },
            logger: logger
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await PolicedServer.run(app, tracker: tracker, stopOnSignals: false, logger: logger) }
            group.addTask { await self.expireIdleSessions() }
            group.addTask {
                try? await gracefulShutdown()
            }
            _ = try await group.next()
            group.cancelAll()
        }
        closeAll()
    }

    func respond(to request: Request, maxBody: Int) async throws -> Response {
        let sessionID = Self.sessionHeader.flatMap { request.headers[$0] }
        switch request.method {
        case .post: return try await post(request, sessionID: sessionID, maxBody: maxBody)
        case .get: return get(sessionID: sessionID)
        case .delete:
            guard let sessionID, let session = sessions.withLock({ $0.removeValue(forKey: sessionID) }) else {
                return Bridge.json(RPCMessage.error(id: nil, code: RPCErrorCode.invalidRequest, message: "Not Found: no such session"), status: .notFound)
            }
            session.close()
            return Response(status: .ok)
        default:
            return Bridge.json(RPCMessage.error(id: nil, code: RPCErrorCode.invalidRequest, message: "Method Not Allowed: use POST, GET or DELETE"), status: .methodNotAllowed)
        }
    }

    private func post(_ request: Request, sessionID: String?, maxBody: Int) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: maxBody)
        let bytes = Array(body.readableBytesView)
        var i = 0
        JSONBytes.skipSpace(bytes, &i)
        if i < bytes.count, bytes[i] == UInt8(ascii: "[") {
            return Bridge.json(RPCMessage.error(id: nil, code: RPCErrorCode.invalidRequest, message: "Bad Request: JSON-RPC batches are not accepted (MCP 2025-06-18 and later send one message per POST)"), status: .badRequest)
        }
        let message: RPCMessage
        do { message = try RPCMessage(bytes) } catch {
            return Bridge.json(RPCMessage.error(id: nil, code: RPCErrorCode.parseError, message: "Parse error: \(error)"), status: .badRequest)
        }
        guard let sessionID else {
            guard message.kind == .request, message.method == "initialize" else {
                return Bridge.json(RPCMessage.error(id: message.id, code: RPCErrorCode.invalidRequest, message: "Bad Request: no Mcp-Session-Id header (send initialize first)"), status: .badRequest)
            }
            return await initialize(message)
        }
        guard let session = sessions.withLock({ $0[sessionID] }), let g = session.gateway else {
            return Bridge.json(RPCMessage.error(id: message.id, code: RPCErrorCode.invalidRequest, message: "Not Found: no such session (it ended or expired); initialize a new one"), status: .notFound)
        }
        session.touch()
        switch message.kind {
        case .request:
            let wantsStream = message.progressTokenRange != nil && (request.headers[.accept]?.contains("text/event-stream") ?? false)
            if wantsStream { return streamed(message, session: session, gateway: g) }
            let answer = await g.handle(message) ?? []
            session.touch()
            return Bridge.json(answer, session: sessionID)
        case .notification, .response:
            _ = await g.handle(message)
            return Bridge.accepted(sessionID)
        }
    }

    private func initialize(_ message: RPCMessage) async -> Response {
        let id = ServerSupervisor.newToken()
        let session = Session(id: id, budget: options.limits.clientBufferBytes)
        let g = gateway.makeSession(id: id) { [weak session] bytes in session?.send(bytes) }
        session.attach(g)
        let answer = await g.handle(message) ?? []
        let evicted: Session? = sessions.withLock { all in
            var oldest: Session?
            if all.count >= options.maxSessions {
                // The least recently used one makes room (a client that forgot to DELETE),
                // among those with no request in flight when there are any.
                let now = ContinuousClock.now
                let idle = all.values.filter { $0.idle(longerThan: .zero, now: now) }
                oldest = (idle.isEmpty ? Array(all.values) : idle).min { $0.lastUsed < $1.lastUsed }
                if let o = oldest { all[o.id] = nil }
            }
            all[id] = session
            return oldest
        }
        evicted?.close()
        return Bridge.json(answer, session: id)
    }

    private func streamed(_ message: RPCMessage, session: Session, gateway g: GatewaySession) -> Response {
        var headers = Bridge.sseHeaders
        if let name = Self.sessionHeader { headers[name] = session.id }
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    let answer = await g.handle(message) { note in continuation.yield(Session.event(note)) } ?? []
                    continuation.yield(Session.event(answer))
                    continuation.finish()
                }
                for await event in stream {
                    do { try await writer.write(ByteBuffer(bytes: event)) } catch { break }
                }
                group.cancelAll()
            }
            session.touch()
            try await writer.finish(nil)
        })
    }

    private func get(sessionID: String?) -> Response {
        guard let sessionID, let session = sessions.withLock({ $0[sessionID] }) else {
            return Bridge.json(RPCMessage.error(id: nil, code: RPCErrorCode.invalidRequest, message: sessionID == nil ? "Bad Request: no Mcp-Session-Id header" : "Not Found: no such session"),
                               status: sessionID == nil ? .badRequest : .notFound)
        }
        guard let stream = session.openStream() else {
            return Bridge.json(RPCMessage.error(id: nil, code: RPCErrorCode.invalidRequest, message: "Conflict: this session already has a stream open"), status: .conflict)
        }
        let keepAlive = options.keepAlive
        var headers = Bridge.sseHeaders
        if let name = Self.sessionHeader { headers[name] = sessionID }
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            await Bridge.writeEvents(stream, keepAlive: keepAlive, to: &writer) { session.budget.release($0.count) }
            try? await writer.finish(nil)
        })
    }

    private func expireIdleSessions() async {
        let limit = options.idleTimeout
        let period = min(max(limit / 4, .milliseconds(25)), .seconds(10))
        while !Task.isCancelled {
            do { try await Task.sleep(for: period) } catch { return }
            let now = ContinuousClock.now
            let expired: [Session] = sessions.withLock { all in
                let idle = all.values.filter { $0.idle(longerThan: limit, now: now) }
                for s in idle { all[s.id] = nil }
                return idle
            }
            for s in expired { s.close() }
        }
    }

    private func closeAll() {
        let all = sessions.withLock { s in
            defer { s = [:] }
            return Array(s.values)
        }
        for s in all { s.close() }
    }
}
