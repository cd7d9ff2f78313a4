import HTTPTypes
import Hummingbird
import NIOCore
import RegistryServerPolicy
import Synchronization

/// A legacy HTTP+SSE session (MCP 2024-11-05): the `GET /sse` stream it was opened with —
/// which carries everything the server sends, the answers to the messages POSTed to
/// `/messages?session_id=ID` included — and, once its `initialize` was answered, the
/// `BridgeSession` (process slot) that does the work, as for a streamable session.
final class LegacySession: Sendable {
    let id: String
    let outbox: SSEOutbox

    private struct State {
        var session: BridgeSession?
        var initializing = false
        var closed = false
        var opened = ContinuousClock.now
    }
    private let state = Mutex(State())

    init(id: String, outbox: SSEOutbox) {
        self.id = id
        self.outbox = outbox
    }

    var session: BridgeSession? { state.withLock { $0.session } }

    /// Sends one message to the client as a `message` event.
    func send(_ message: [UInt8]) { outbox.send(BridgeSession.sseEvent(message)) }

    /// True for the one `initialize` that may open the session.
    func beginInitialize() -> Bool {
        state.withLock { s in
            guard !s.closed, !s.initializing, s.session == nil else { return false }
            s.initializing = true
            return true
        }
    }

    /// The `initialize` opened `session`; false when the stream closed meanwhile (end it).
    func adopt(_ session: BridgeSession) -> Bool {
        state.withLock { s in
            s.initializing = false
            guard !s.closed else { return false }
            s.session = session
            return true
        }
    }

    /// The `initialize` failed (its error went to the stream): another may be tried.
    func initializeFailed() {
        state.withLock { s in
            s.initializing = false
            s.opened = .now
        }
    }

    /// No request for `limit`: the session's, or, before `initialize`, since the stream opened.
    func idle(longerThan limit: Duration, now: ContinuousClock.Instant) -> Bool {
        let (session, initializing, opened) = state.withLock { ($0.session, $0.initializing, $0.opened) }
        if let session { return session.idle(longerThan: limit, now: now) }
        return !initializing && now - opened > limit
    }

    /// Ends the stream; returns the session to end, if it had one.
    func close() -> BridgeSession? {
        let session = state.withLock { s -> BridgeSession? in
            s.closed = true
            return s.session
        }
        outbox.finish()
        return session
    }
}

/// The legacy HTTP+SSE transport (MCP 2024-11-05) on the bridge's port, beside `/mcp`: a client
/// GETs `/sse`; the first event, `endpoint`, names `/messages?session_id=ID`; each message it
/// POSTs there is answered 202 Accepted at once, and every answer, notification and server
/// request comes as a `message` event on its stream. The stream is the session: when it closes
/// the session ends (its process is stopped, as after a DELETE of a streamable session). Same
/// policy, sessions, process slots, timeouts, keep-alives and idle expiry as `/mcp`.
extension Bridge {
    static let legacyStreamPath = "/sse"
    static let legacyMessagesPath = "/messages"

    /// `GET /sse`: a new session's stream.
    func legacyStream(_ request: Request, channel: (any Channel)?) -> Response {
        let id = ServerSupervisor.newToken()
        let outbox = SSEOutbox(budget: bufferBytes)
        let legacy = LegacySession(id: id, outbox: outbox)
        legacySessions.withLock { $0[id] = legacy }
        // A client that goes away ends its session now, not at the next keep-alive.
        if let channel { ConnectionGuard.whenClientGone(channel) { outbox.finish() } }
        var endpoint = Self.legacyMessagesPath + "?session_id=" + id
        // A client that was given the URL with ?token= (an EventSource cannot send headers)
        // gets an endpoint that carries it too: every path needs the token. Only the server's
        // own token is repeated, never other text of the request.
        if request.headers[.authorization] == nil, let query = request.uri.query,
           let shown = AccessToken.queryValue(query, name: "token"), server.token.matches(shown) {
            endpoint += "&token=" + server.token.value
        }
        let keepAlive = server.keepAlive
        let first = Array("event: endpoint\ndata: \(endpoint)\n\n".utf8)
        server.log(.debug, "legacy SSE stream opened", ["session": id])
        return Response(status: .ok, headers: Self.sseHeaders, body: ResponseBody { writer in
            if (try? await writer.write(ByteBuffer(bytes: first))) != nil {
                await Self.writeEvents(outbox.stream, keepAlive: keepAlive, to: &writer) { outbox.written($0.count) }
            }
            await self.endLegacySession(id)
            try? await writer.finish(nil)
        })
    }

    /// Ends a legacy session (its stream closed, it expired, or the bridge stops): once.
    func endLegacySession(_ id: String) async {
        guard let legacy = legacySessions.withLock({ $0.removeValue(forKey: id) }) else { return }
        guard let session = legacy.close() else {
            server.log(.debug, "legacy SSE stream closed before initialize", ["session": id])
            return
        }
        session.close()
        await server.sessionEnded(session, slot: session.slot)
        server.log(.debug, "session closed", ["session": id, "transport": "sse"])
    }

    /// `POST /messages?session_id=ID`: one message (or a batch), answered 202; what it asks
    /// is answered on the session's stream.
    func legacyPost(_ request: Request) async throws -> Response {
        guard let id = request.uri.query.flatMap({ AccessToken.queryValue($0, name: "session_id") }) else {
            return Self.json(RPCMessage.error(id: nil, code: RPCErrorCode.invalidRequest, message: "Bad Request: session_id is required (the URL of the endpoint event of GET \(Self.legacyStreamPath))"), status: .badRequest)
        }
        guard let legacy = legacySessions.withLock({ $0[id] }) else {
            return Self.json(RPCMessage.error(id: nil, code: RPCErrorCode.invalidRequest, message: "Not Found: no such session (its stream closed or it expired); open a new one with GET \(Self.legacyStreamPath)"), status: .notFound)
        }
        var request = request
        let body = try await request.collectBody(upTo: Self.maxBodyBytes)
        let messages: [RPCMessage]
        switch Self.parseMessages(Array(body.readableBytesView)) {
        case .success(let m): messages = m
        case .failure(let why): return Self.json(RPCMessage.error(id: nil, code: why.code, message: why.message), status: .badRequest)
        }
        for m in messages { dispatchLegacy(m, legacy) }
        return Response(status: .accepted)
    }

    private func dispatchLegacy(_ message: RPCMessage, _ legacy: LegacySession) {
        switch message.kind {
        case .request:
            if message.method == "initialize" {
                guard legacy.beginInitialize() else {
                    legacy.send(RPCMessage.error(id: message.id, code: RPCErrorCode.invalidRequest, message: "this session was initialized already (one initialize per GET \(Self.legacyStreamPath) stream)"))
                    return
                }
                Task {
                    let (session, answer) = await self.openSession(message, id: legacy.id, fixedStream: legacy.outbox)
                    if let session {
                        if !legacy.adopt(session) {
                            session.close()
                            await self.server.sessionEnded(session, slot: session.slot)
                            return
                        }
                    } else {
                        legacy.initializeFailed()
                    }
                    legacy.send(answer)
                }
                return
            }
            guard let session = legacy.session else {
                if message.method == "ping" {
                    legacy.send(Array(#"{"jsonrpc":"2.0","id":"#.utf8) + (message.id ?? Array("null".utf8)) + Array(#","result":{}}"#.utf8))
                } else {
                    legacy.send(RPCMessage.error(id: message.id, code: RPCErrorCode.invalidRequest, message: "Bad Request: send initialize first"))
                }
                return
            }
            Task { legacy.send(await self.handle(message, session: session)) }
        case .notification:
            if let session = legacy.session { forward(message, session: session) }
        case .response:
            if let session = legacy.session { session.slot.current?.connection.respond(message, from: session) }
        }
    }

    struct ParseFailure: Error {
        let code: Int
        let message: String
    }

    /// One JSON-RPC message, or the messages of a batch (`[...]`).
    static func parseMessages(_ bytes: [UInt8]) -> Result<[RPCMessage], ParseFailure> {
        var i = 0
        JSONBytes.skipSpace(bytes, &i)
        guard i < bytes.count, bytes[i] == UInt8(ascii: "[") else {
            do { return .success([try RPCMessage(bytes)]) } catch {
                return .failure(ParseFailure(code: RPCErrorCode.parseError, message: "Parse error: \(error)"))
            }
        }
        var items: [RPCMessage] = []
        i += 1
        JSONBytes.skipSpace(bytes, &i)
        while i < bytes.count, bytes[i] != UInt8(ascii: "]") {
            let start = i
            do { try JSONBytes.skipValue(bytes, &i) } catch {
                return .failure(ParseFailure(code: RPCErrorCode.parseError, message: "Parse error: \(error)"))
            }
            guard let m = try? RPCMessage(Array(bytes[start..<i])) else {
                return .failure(ParseFailure(code: RPCErrorCode.invalidRequest, message: "Invalid Request in batch"))
            }
            items.append(m)
            JSONBytes.skipSpace(bytes, &i)
            if i < bytes.count, bytes[i] == UInt8(ascii: ",") { i += 1; JSONBytes.skipSpace(bytes, &i) }
        }
        return .success(items)
    }
}
