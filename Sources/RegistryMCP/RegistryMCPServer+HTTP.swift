import struct Foundation.Data
import HTTPTypes
import Hummingbird
import Logging
import MCP
import NIOCore
import RegistryKit
import RegistryServerPolicy
import ServiceLifecycle

/// Streamable HTTP (MCP 2025-03-26 and later) for `RegistryMCPServer`.
///
/// The SDK's `StatefulHTTPServerTransport` speaks the protocol for one session and leaves the
/// listening socket to the application; this puts it behind a Hummingbird server: POST, GET
/// (server-to-client SSE stream, where notifications go) and DELETE on one endpoint, one SDK
/// session per `MCP-Session-Id`. The project's `ServerPolicy` applies first: a loopback `Host`
/// (DNS rebinding), a loopback `Origin` when there is one, the token (`Authorization: Bearer`
/// or `?token=`), and the connection limits. Then the transport's own checks: POST must accept
/// `text/event-stream`, the protocol version header must be one the SDK knows.
extension RegistryMCPServer {
    /// Options for `serveHTTP`.
    public struct HTTPOptions: Sendable {
        /// The address to listen on; loopback by default (the registry is this machine's).
        public var host = "127.0.0.1"
        /// The TCP port; 0 picks a free one (see `onListening`).
        public var port = 0
        /// The MCP endpoint path.
        public var endpoint = "/mcp"
        /// Sessions at most; an `initialize` beyond that closes the session used least recently.
        public var maxSessions = 64
        /// A session unused for this long is closed.
        public var idleTimeout: Duration = .seconds(600)
        /// The largest request body accepted (413 beyond).
        public var maxBodyBytes = 4 << 20
        /// The token every request must show; nil: none (tests, embedding).
        public var token: AccessToken?
        public var access = AccessPolicy()
        public var limits = ServerLimits()
        /// Appended to 401 answers: where the token can be found.
        public var tokenHint = ""

        /// Loopback, a free port and `/mcp` unless given.
        public init(host: String = "127.0.0.1", port: Int = 0, endpoint: String = "/mcp", token: AccessToken? = nil) {
            self.host = host
            self.port = port
            self.endpoint = endpoint
            self.token = token
        }
    }

    /// Serves MCP over streamable HTTP until SIGINT or SIGTERM (then within
    /// `limits.shutdownDeadline`).
    /// - Parameter onListening: called with the bound port once the server accepts connections.
    /// - Throws: `PolicyError` for a policy that would let any page in; when the address cannot
    ///   be bound.
    public func serveHTTP(_ options: HTTPOptions, stopOnSignals: Bool = true, onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        var policy = ServerPolicy(access: options.access, token: options.token, limits: options.limits)
        policy.limits.maxBodyBytes = options.maxBodyBytes
        try policy.validate()
        let sessions = HTTPSessions(server: self, options: options)
        let router = Router(context: PolicyRequestContext.self)
        router.add(middleware: PolicyMiddleware(
            policy: policy, allowedMethods: "GET, POST, DELETE, OPTIONS",
            allowedHeaders: "Accept, Authorization, Content-Type, Last-Event-ID, Mcp-Session-Id, Mcp-Protocol-Version",
            exposedHeaders: "Mcp-Session-Id", cookiePaths: [], tokenHint: options.tokenHint))
        let endpoint = RouterPath(options.endpoint)
        let bufferBytes = policy.limits.clientBufferBytes
        for method in [HTTPTypes.HTTPRequest.Method.post, .get, .delete] {
            router.on(endpoint, method: method) { request, context in
                try await sessions.respond(to: request, channel: context.channel, bufferBytes: bufferBytes)
            }
        }
        let tracker = ConnectionTracker(limits: policy.limits)
        let logger = Logger(label: "peer-registry.mcp.http", factory: { _ in SwiftLogNoOpLogHandler() })
        let app = Application(
            router: router,
            server: PolicedServer.http1(tracker),
            configuration: ApplicationConfiguration(address: .hostname(options.host, port: options.port), serverName: "peer-registry-mcp"),
            services: [SessionCloser(sessions: sessions)],
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? options.port) },
            logger: logger
        )
        try await PolicedServer.run(app, tracker: tracker, stopOnSignals: stopOnSignals, logger: logger)
    }
}

/// The HTTP sessions of one server, by `MCP-Session-Id`.
actor HTTPSessions {
    struct Live {
        let session: RegistryMCPSession
        let transport: StatefulHTTPServerTransport
        var lastUsed: ContinuousClock.Instant
    }

    let server: RegistryMCPServer
    let options: RegistryMCPServer.HTTPOptions
    private var live: [String: Live] = [:]

    init(server: RegistryMCPServer, options: RegistryMCPServer.HTTPOptions) {
        self.server = server
        self.options = options
    }

    func respond(to request: Request, channel: (any Channel)? = nil, bufferBytes: Int = ServerLimits().clientBufferBytes) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: options.maxBodyBytes)
        var headers: [String: String] = [:]
        for field in request.headers {
            let name = field.name.canonicalName
            headers[name] = headers[name].map { $0 + ", " + field.value } ?? field.value
        }
        let mcpRequest = MCP.HTTPRequest(
            method: request.method.rawValue,
            headers: headers,
            body: body.readableBytes > 0 ? Data(body.readableBytesView) : nil,
            path: request.uri.path
        )
        return Self.response(await handle(mcpRequest), channel: channel, bufferBytes: bufferBytes)
    }

    /// Routes to the request's session, or starts one for an `initialize`.
    func handle(_ request: MCP.HTTPRequest) async -> MCP.HTTPResponse {
        let sessionID = request.header(HTTPHeaderName.sessionID)
        if let sessionID, var entry = live[sessionID] {
            entry.lastUsed = .now
            live[sessionID] = entry
            let response = await entry.transport.handleRequest(request)
            if request.method.uppercased() == "DELETE", response.statusCode == 200 {
                live[sessionID] = nil
                await entry.session.stop()
            }
            return response
        }
        if request.method.uppercased() == "POST", let body = request.body, Self.isInitialize(body) {
            return await startSession(request)
        }
        if sessionID != nil {
            return .error(statusCode: 404, .invalidRequest("Not Found: no such session (it ended or expired); initialize a new one"))
        }
        return .error(statusCode: 400, .invalidRequest("Bad Request: missing \(HTTPHeaderName.sessionID) header (send initialize first)"))
    }

    private func startSession(_ request: MCP.HTTPRequest) async -> MCP.HTTPResponse {
        await closeIdle()
        // Full: the session used least recently makes room, so that no number of initialize
        // requests locks the others out (its client gets 404 and initializes again).
        while live.count >= max(1, options.maxSessions), let oldest = live.min(by: { $0.value.lastUsed < $1.value.lastUsed }) {
            live[oldest.key] = nil
            await oldest.value.session.stop()
        }
        let id = Self.newSessionID()
        let transport = StatefulHTTPServerTransport(sessionIDGenerator: FixedSessionID(id: id))
        let session = await server.makeSession()
        do {
            try await session.start(transport: transport)
        } catch {
            await session.stop()
            return .error(statusCode: 500, .internalError("could not start a session: \(error)"))
        }
        live[id] = Live(session: session, transport: transport, lastUsed: .now)
        let response = await transport.handleRequest(request)
        if case .error = response {
            live[id] = nil
            await session.stop()
        }
        return response
    }

    func closeIdle() async {
        let cutoff = ContinuousClock.now - options.idleTimeout
        for (id, entry) in live where entry.lastUsed < cutoff {
            live[id] = nil
            await entry.session.stop()
        }
    }

    func closeAll() async {
        let all = live.values
        live = [:]
        for entry in all { await entry.session.stop() }
    }

    static func isInitialize(_ body: Data) -> Bool {
        guard case .object(let o)? = try? JSONValue.parse(String(decoding: body, as: UTF8.self)) else { return false }
        return o["method"]?.stringValue == "initialize" && o["id"] != nil
    }

    /// 128 random bits in hex: visible ASCII, as the specification requires.
    static func newSessionID() -> String {
        var rng = SystemRandomNumberGenerator()
        return (0..<2).map { _ in
            let s = String(rng.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }.joined()
    }

    /// The SDK's answer as a Hummingbird response. A streamed one (SSE) is relayed so that it
    /// ends as soon as its connection closes (not at the next message), and a client that lets
    /// more than `bufferBytes` wait is disconnected.
    static func response(_ r: MCP.HTTPResponse, channel: (any Channel)? = nil, bufferBytes: Int = ServerLimits().clientBufferBytes) -> Response {
        var fields = HTTPFields()
        for (name, value) in r.headers {
            if let field = HTTPField.Name(name) { fields.append(HTTPField(name: field, value: value)) }
        }
        let status = HTTPTypes.HTTPResponse.Status(code: r.statusCode)
        switch r {
        case .stream(let stream, _):
            return Response(status: status, headers: fields, body: ResponseBody { writer in
                let (relay, continuation) = AsyncStream<Data>.makeStream()
                let budget = ClientBudget(limit: bufferBytes)
                let pump = Task {
                    do {
                        for try await chunk in stream {
                            guard budget.reserve(chunk.count) else {
                                channel?.close(promise: nil)
                                break
                            }
                            continuation.yield(chunk)
                        }
                    } catch {
                        // The session ended or the client went away: end the response.
                    }
                    continuation.finish()
                }
                defer { pump.cancel() }
                channel?.closeFuture.whenComplete { _ in
                    pump.cancel()
                    continuation.finish()
                }
                for await chunk in relay {
                    try await writer.write(ByteBuffer(bytes: chunk))
                    budget.release(chunk.count)
                }
                try await writer.finish(nil)
            })
        default:
            let body = r.bodyData.map { ResponseBody(byteBuffer: ByteBuffer(bytes: $0)) } ?? ResponseBody()
            return Response(status: status, headers: fields, body: body)
        }
    }
}

private struct FixedSessionID: SessionIDGenerator {
    let id: String
    func generateSessionID() -> String { id }
}

/// Closes idle sessions as they expire, and every session when the server shuts down, so open
/// SSE streams do not hold it up.
private struct SessionCloser: Service {
    let sessions: HTTPSessions

    func run() async throws {
        let sessions = self.sessions
        await cancelWhenGracefulShutdown {
            while (try? await Task.sleep(for: .seconds(15))) != nil {
                await sessions.closeIdle()
            }
        }
        await sessions.closeAll()
    }
}
