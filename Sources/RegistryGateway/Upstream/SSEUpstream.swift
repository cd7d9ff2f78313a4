import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import Synchronization

/// One MCP session with a server of the legacy HTTP+SSE transport (MCP 2024-11-05), carried by
/// an `UpstreamConnection` like every other upstream: the session is a GET of the entry's url
/// (an event stream); its first event, `endpoint`, gives the URL to POST messages to; each POST
/// is answered 202 and everything the server sends — responses, notifications, its own
/// requests — arrives as `message` events on the stream, which go to the connection (request
/// ids, timeouts, cancellation, progress).
///
/// - The entry's `headers` go with the GET and every POST. An `endpoint` on another origin is
///   refused (the headers hold the backend's token).
/// - The stream is the session: when it ends, requests waiting for an answer get an error at
///   once, and the stream is opened again at once; the new session is initialized with the same
///   `initialize` params before anything else is sent, so the client sees nothing but the
///   requests that were in flight. A stream that cannot be reopened reports `onFailure` (the
///   gateway hides the backend); it is tried again, backing off to 5 s, until `close`.
/// - Each attempt must have its endpoint and its `initialize` answer within the request timeout.
public final class SSEUpstream: MCPUpstream {
    public let backendID: String
    public let url: String
    public let headers: [(String, String)]
    public let connection: UpstreamConnection
    public let requestTimeout: Duration
    let client: HTTPClient
    let initializeParams: String
    private let onFailure: @Sendable (String) -> Void

    private struct State {
        /// The message endpoint of the current stream, once its session is initialized.
        var endpoint: String?
        /// Why there is no session now: deliveries fail at once with it. nil while connecting.
        var down: String?
        /// Deliveries waiting for the current attempt to have a session (or to fail).
        var waiters: [UInt64: CheckedContinuation<Result<String, UpstreamFailure>, Never>] = [:]
        var nextWaiter: UInt64 = 0
        /// One attempt per GET stream; events of an older one are ignored.
        var attempt: UInt64 = 0
        var sawEndpoint = false
        var ready = false
        /// Why the current attempt was cut short (no endpoint in time, initialize refused, ...).
        var abort: String?
        var reader: Task<String?, Never>?
        /// The current attempt's `initialize`: its id, and its answer or who waits for it.
        var initID: [UInt8]?
        var initAnswer: RPCMessage?
        var initWaiter: CheckedContinuation<RPCMessage?, Never>?
        var handshake: UpstreamHandshake?
        /// `start()` waiting for the first session.
        var starting: CheckedContinuation<Result<UpstreamHandshake, UpstreamFailure>, Never>?
        var loop: Task<Void, Never>?
        var closed = false
        var closedReason = ""
    }
    private let state = Mutex(State())

    static let maxBodyBytes = 16 << 20

    public init(backendID: String, url: String, headers: [String: String], client: HTTPClient,
                initializeParams: String, requestTimeout: Duration, exclusive: Bool,
                onFailure: @escaping @Sendable (String) -> Void) {
        self.backendID = backendID
        self.url = url
        self.headers = headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        self.client = client
        self.initializeParams = initializeParams
        self.requestTimeout = requestTimeout
        self.onFailure = onFailure
        let sink = WeakSink<SSEUpstream>()
        self.connection = UpstreamConnection(exclusive: exclusive, eventLoop: client.eventLoopGroup.next()) { bytes in
            sink.target?.send(bytes)
        }
        sink.target = self
    }

    public var isClosed: Bool { state.withLock { $0.closed } }
    public var handshake: UpstreamHandshake? { state.withLock { $0.handshake } }

    /// Opens the stream and initializes the session; a failure stops here (nothing is retried).
    public func start() async -> Result<UpstreamHandshake, UpstreamFailure> {
        await withCheckedContinuation { continuation in
            let refused: String? = state.withLock { s in
                if s.closed { return "backend \"\(backendID)\": the session was closed" }
                if s.loop != nil { return "backend \"\(backendID)\": the session was started already" }
                s.starting = continuation
                s.loop = Task { await self.run() }
                return nil
            }
            if let refused { continuation.resume(returning: .failure(UpstreamFailure(message: refused))) }
        }
    }

    /// Ends the session: the stream is closed (the legacy transport's only way to end one) and
    /// pending requests get an error.
    public func close(reason: String) {
        let (loop, reader, waiters, starting, initWaiter) = state.withLock { s in
            s.closed = true
            s.closedReason = reason
            s.endpoint = nil
            defer { s.waiters = [:]; s.starting = nil; s.initWaiter = nil; s.loop = nil; s.reader = nil }
            return (s.loop, s.reader, Array(s.waiters.values), s.starting, s.initWaiter)
        }
        loop?.cancel()
        reader?.cancel()
        connection.close(reason: reason)
        initWaiter?.resume(returning: nil)
        for w in waiters { w.resume(returning: .failure(UpstreamFailure(message: reason))) }
        starting?.resume(returning: .failure(UpstreamFailure(message: reason)))
    }

    // MARK: - The stream

    private func run() async {
        var failures = 0
        while !isClosed {
            let attempt: UInt64 = state.withLock { s in
                s.attempt += 1
                s.down = nil
                s.abort = nil
                s.sawEndpoint = false
                s.ready = false
                return s.attempt
            }
            let (why, wasReady) = await stream(attempt)
            if isClosed { return }
            if lose(why) { return }  // start() got the failure: the gateway makes a new session later
            if wasReady {
                failures = 0
            } else {
                failures += 1
                onFailure(why)
            }
            let delay: Duration = wasReady ? .milliseconds(20) : .milliseconds(min(5000, 100 << min(failures, 6)))
            do { try await Task.sleep(for: delay) } catch { return }
        }
    }

    /// One GET stream, until it ends; returns why it ended and whether it had a session.
    private func stream(_ attempt: UInt64) async -> (String, Bool) {
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.headers.replaceOrAdd(name: "Accept", value: "text/event-stream")
        request.headers.replaceOrAdd(name: "Cache-Control", value: "no-cache")
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, deadline: .distantFuture)
        } catch {
            return ("backend \"\(backendID)\" is unreachable at \(url): \(HTTPUpstream.describe(error))", false)
        }
        guard (200..<300).contains(response.status.code) else {
            let body = (try? await response.body.collect(upTo: 4096)).map { String(buffer: $0) } ?? ""
            return ("backend \"\(backendID)\" answered HTTP \(response.status.code) to GET \(url)\(body.isEmpty ? "" : ": " + String(body.prefix(300)))", false)
        }
        let type = response.headers.first(name: "Content-Type")?.lowercased() ?? ""
        guard type.hasPrefix("text/event-stream") else {
            return ("backend \"\(backendID)\" did not answer GET \(url) with an event stream (Content-Type \"\(type.prefix(80))\"): is it a legacy SSE server?", false)
        }
        let body = response.body
        let reader = Task<String?, Never> {
            var parser = SSEParser()
            do {
                for try await chunk in body {
                    parser.feedEvents(chunk.readableBytesView) { type, data in self.event(type, data, attempt: attempt) }
                }
                return nil
            } catch {
                return HTTPUpstream.describe(error)
            }
        }
        let registered = state.withLock { s -> Bool in
            guard s.attempt == attempt, !s.closed else { return false }
            s.reader = reader
            return true
        }
        if !registered { reader.cancel() }
        let limit = requestTimeout
        let watchdog = Task {
            do { try await Task.sleep(for: limit) } catch { return }
            self.abort(attempt, "backend \"\(self.backendID)\" did not send its endpoint event and initialize answer within \(formatSeconds(Self.seconds(limit))) on \(self.url)", unlessReady: true)
        }
        let error = await withTaskCancellationHandler { await reader.value } onCancel: { reader.cancel() }
        watchdog.cancel()
        let (abort, ready) = state.withLock { s in
            if s.reader == reader { s.reader = nil }
            return (s.abort, s.ready)
        }
        if let abort { return (abort, ready) }
        if let error { return ("backend \"\(backendID)\" broke off its SSE stream (\(url)): \(error)", ready) }
        return ("backend \"\(backendID)\" ended its SSE stream (\(url))", ready)
    }

    /// Ends the current attempt early, for `why`.
    private func abort(_ attempt: UInt64, _ why: String, unlessReady: Bool = false) {
        let reader: Task<String?, Never>? = state.withLock { s in
            guard s.attempt == attempt, s.abort == nil, !(unlessReady && s.ready) else { return nil }
            s.abort = why
            return s.reader
        }
        reader?.cancel()
    }

    /// The session is gone (`why`): waiting deliveries and requests get an error. True when
    /// `start()` was still waiting (it fails now).
    private func lose(_ why: String) -> Bool {
        let (waiters, starting, initWaiter) = state.withLock { s in
            s.endpoint = nil
            s.ready = false
            s.down = why
            s.initID = nil
            s.initAnswer = nil
            defer { s.waiters = [:]; s.starting = nil; s.initWaiter = nil }
            return (Array(s.waiters.values), s.starting, s.initWaiter)
        }
        initWaiter?.resume(returning: nil)
        for w in waiters { w.resume(returning: .failure(UpstreamFailure(message: why))) }
        connection.failPending(reason: why)
        starting?.resume(returning: .failure(UpstreamFailure(message: why)))
        return starting != nil
    }

    private func event(_ type: String, _ data: [UInt8], attempt: UInt64) {
        switch type {
        case "endpoint":
            let first = state.withLock { s -> Bool in
                guard s.attempt == attempt, !s.sawEndpoint else { return false }
                s.sawEndpoint = true
                return true
            }
            guard first else { return }
            let text = String(decoding: data, as: UTF8.self)
            guard let target = Self.resolve(text, against: url) else {
                abort(attempt, "backend \"\(backendID)\" sent the endpoint \"\(text.prefix(200))\", which is not a URL on the origin of \(url)")
                return
            }
            Task { await self.handshake(at: target, attempt: attempt) }
        case "message":
            message(data, attempt: attempt)
        default:
            break
        }
    }

    /// A message from the server: the answer to this attempt's `initialize`, or the connection's.
    private func message(_ data: [UInt8], attempt: UInt64) {
        if let m = try? RPCMessage(data), m.kind == .response, let id = m.id {
            let (mine, waiter): (Bool, CheckedContinuation<RPCMessage?, Never>?) = state.withLock { s in
                guard s.attempt == attempt, let initID = s.initID, initID == id else { return (false, nil) }
                s.initID = nil
                if let w = s.initWaiter {
                    s.initWaiter = nil
                    return (true, w)
                }
                s.initAnswer = m
                return (true, nil)
            }
            if mine {
                waiter?.resume(returning: m)
                return
            }
        }
        connection.received(data)
    }

    // MARK: - The handshake

    /// `initialize` (answered on the stream), `notifications/initialized`, then the session is
    /// open: waiting deliveries go, and a first `start()` returns.
    private func handshake(at endpoint: String, attempt: UInt64) async {
        let id = Array("\"peer-registry-init-\(attempt)\"".utf8)
        guard state.withLock({ s -> Bool in
            guard s.attempt == attempt, !s.closed else { return false }
            s.initID = id
            s.initAnswer = nil
            return true
        }) else { return }
        let initialize = Array(#"{"jsonrpc":"2.0","id":"#.utf8) + id + Array(#","method":"initialize","params":"#.utf8)
            + Array(initializeParams.utf8) + [UInt8(ascii: "}")]
        if let why = await post(initialize, to: endpoint, attempt: attempt) {
            abort(attempt, why)
            return
        }
        let answer: RPCMessage? = await withCheckedContinuation { continuation in
            let now: RPCMessage?? = state.withLock { s in
                guard s.attempt == attempt, !s.closed else { return .some(nil) }
                if let a = s.initAnswer {
                    s.initAnswer = nil
                    return .some(a)
                }
                guard s.initID == id else { return .some(nil) }  // the attempt ended meanwhile
                s.initWaiter = continuation
                return nil
            }
            if let now { continuation.resume(returning: now) }
        }
        guard let answer else { return }
        if let errorRange = answer.member("error") {
            abort(attempt, "backend \"\(backendID)\" refused initialize: \(String(decoding: answer.bytes[errorRange].prefix(300), as: UTF8.self))")
            return
        }
        if let why = await post(RPCMessage.notification(method: "notifications/initialized", params: nil), to: endpoint, attempt: attempt) {
            abort(attempt, why)
            return
        }
        let handshake = UpstreamHandshake(response: answer, hasSessionID: true)
        let opened: ([CheckedContinuation<Result<String, UpstreamFailure>, Never>], CheckedContinuation<Result<UpstreamHandshake, UpstreamFailure>, Never>?)? = state.withLock { s in
            guard s.attempt == attempt, s.abort == nil, !s.closed else { return nil }
            s.endpoint = endpoint
            s.ready = true
            s.down = nil
            s.handshake = handshake
            defer { s.waiters = [:]; s.starting = nil }
            return (Array(s.waiters.values), s.starting)
        }
        guard let (waiters, starting) = opened else { return }
        for w in waiters { w.resume(returning: .success(endpoint)) }
        starting?.resume(returning: .success(handshake))
    }

    // MARK: - Sending

    private func send(_ bytes: [UInt8]) {
        Task { await self.deliver(bytes) }
    }

    private func deliver(_ bytes: [UInt8]) async {
        guard let message = try? RPCMessage(bytes) else { return }
        let attempt = state.withLock { $0.attempt }
        switch await currentEndpoint() {
        case .failure(let f):
            fail(message, f.message)
        case .success(let endpoint):
            if let why = await post(message.bytes, to: endpoint, attempt: attempt) {
                fail(message, why)
                if why.contains("unreachable") { onFailure(why) }
            }
        }
    }

    /// The session's endpoint: at once when open, else once the attempt under way opens it (or fails).
    private func currentEndpoint() async -> Result<String, UpstreamFailure> {
        await withCheckedContinuation { continuation in
            let now: Result<String, UpstreamFailure>? = state.withLock { s in
                if s.closed { return .failure(UpstreamFailure(message: s.closedReason)) }
                if let e = s.endpoint { return .success(e) }
                if let d = s.down { return .failure(UpstreamFailure(message: d)) }
                let key = s.nextWaiter
                s.nextWaiter += 1
                s.waiters[key] = continuation
                return nil
            }
            if let now { continuation.resume(returning: now) }
        }
    }

    /// A request that could not be delivered gets its error now (the connection restores the caller's id).
    private func fail(_ message: RPCMessage, _ why: String) {
        guard message.kind == .request else { return }
        connection.received(RPCMessage.error(id: message.id, code: RPCErrorCode.serverUnavailable, message: why))
    }

    /// POSTs one message to the session's endpoint; nil when the server accepted it. A JSON
    /// body (some servers answer there too) is read as a message of the stream.
    private func post(_ bytes: [UInt8], to endpoint: String, attempt: UInt64) async -> String? {
        var request = HTTPClientRequest(url: endpoint)
        request.method = .POST
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.headers.replaceOrAdd(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: bytes))
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .nanoseconds(Int64(clamping: (requestTimeout + .seconds(5)).nanosecondsRounded)))
        } catch {
            return "backend \"\(backendID)\" is unreachable at \(endpoint): \(HTTPUpstream.describe(error))"
        }
        let body = (try? await response.body.collect(upTo: Self.maxBodyBytes)).map { Array($0.readableBytesView) } ?? []
        guard (200..<300).contains(response.status.code) else {
            let text = String(decoding: body.prefix(300), as: UTF8.self)
            let gone = response.status == .notFound ? " (the server no longer knows this session)" : ""
            return "backend \"\(backendID)\" answered HTTP \(response.status.code) to POST \(endpoint)\(gone)\(text.isEmpty ? "" : ": " + text)"
        }
        let type = response.headers.first(name: "Content-Type")?.lowercased() ?? ""
        if type.hasPrefix("application/json"), !body.isEmpty { message(body, attempt: attempt) }
        return nil
    }

    // MARK: - URLs

    /// Where an `endpoint` event points, resolved against the stream's URL: an absolute URL on
    /// the same origin, an absolute path, a query, or a path relative to the stream's. nil for
    /// another origin (the entry's headers must not go there) or something that is not a URL.
    static func resolve(_ endpoint: String, against base: String) -> String? {
        var e = Substring(endpoint)
        while let c = e.first, c == " " || c == "\t" || c == "\r" || c == "\n" { e.removeFirst() }
        while let c = e.last, c == " " || c == "\t" || c == "\r" || c == "\n" { e.removeLast() }
        guard !e.isEmpty, e.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else { return nil }
        guard let (origin, path) = splitOrigin(base) else { return nil }
        if e.contains("://") {
            guard let (other, _) = splitOrigin(String(e)), other.lowercased() == origin.lowercased() else { return nil }
            return String(e)
        }
        if e.hasPrefix("//") { return nil }
        if e.hasPrefix("/") { return origin + e }
        let basePath = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? "/"
        if e.hasPrefix("?") { return origin + basePath + e }
        let directory = basePath.lastIndex(of: "/").map { String(basePath[...$0]) } ?? "/"
        return origin + directory + e
    }

    /// `scheme://authority` and the rest (`/` at least) of an http(s) URL.
    private static func splitOrigin(_ url: String) -> (String, String)? {
        guard let range = url.firstRange(of: "://") else { return nil }
        let scheme = url[..<range.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { return nil }
        let rest = url[range.upperBound...]
        let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        guard slash > rest.startIndex else { return nil }
        var path = String(rest[slash...])
        if path.isEmpty || path.first != "/" { path = "/" + path }
        return (String(url[..<slash]), path)
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
