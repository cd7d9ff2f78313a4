import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// One MCP session with a streamable HTTP server (MCP 2025-03-26 and later), carried by an
/// `UpstreamConnection`: each message the connection sends is POSTed; the answer (JSON, or an
/// SSE stream of notifications then the answer) and the session's GET stream are fed back to
/// it. The connection does the request-id bookkeeping, timeouts and cancellation, as it does
/// for a stdio process.
///
/// - The entry's `headers` go with every request (the supervisor's bridges want their token).
/// - A 404 for the session id means the server forgot the session (it restarted): the session
///   re-initializes with the same `initialize` params and the request is sent again, once.
/// - A server that cannot be reached answers each request with a JSON-RPC error naming the
///   backend at once (connect timeout 1 s, no connection retries) and reports `onFailure`.
public final class HTTPUpstream: MCPUpstream {
    public typealias Failure = UpstreamFailure
    public typealias Handshake = UpstreamHandshake

    public let backendID: String
    public let url: String
    public let headers: [(String, String)]
    public let connection: UpstreamConnection
    let client: HTTPClient
    let initializeParams: String
    public let requestTimeout: Duration

    private struct State {
        var sessionID: String?
        var protocolVersion: String?
        var handshake: Handshake?
        /// A re-initialization under way (after a 404), awaited by every request that saw one.
        var restarting: Task<Result<Handshake, Failure>, Never>?
        var stream: Task<Void, Never>?
        var closed = false
    }
    private let state = Mutex(State())
    private let onFailure: @Sendable (String) -> Void

    static let maxBodyBytes = 16 << 20
    static let accept = "application/json, text/event-stream"

    /// - Parameters:
    ///   - onFailure: called when the server cannot be reached (the gateway marks the backend down).
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
        let sink = WeakSink<HTTPUpstream>()
        self.connection = UpstreamConnection(exclusive: exclusive, eventLoop: client.eventLoopGroup.next()) { bytes in
            sink.target?.post(bytes)
        }
        sink.target = self
    }

    /// A client for upstream sessions: a 1 s connect timeout (a backend that went away fails
    /// fast), no read timeout (SSE streams stay open), no connection retries.
    public static func makeClient() -> HTTPClient {
        var pool = HTTPClient.Configuration.ConnectionPool(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 128)
        pool.retryConnectionEstablishment = false
        let configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: .seconds(1), read: nil),
            connectionPool: pool)
        return HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
    }

    public var handshake: Handshake? { state.withLock { $0.handshake } }
    public var isClosed: Bool { state.withLock { $0.closed } }

    /// `initialize`, `notifications/initialized`, then the session's GET stream.
    public func start() async -> Result<Handshake, Failure> {
        let result = await initialize()
        if case .success = result { openStream() }
        return result
    }

    /// Ends the session: pending requests get an error, the stream closes, the server gets a DELETE.
    public func close(reason: String) {
        let (stream, sessionID): (Task<Void, Never>?, String?) = state.withLock { s in
            s.closed = true
            defer { s.stream = nil }
            return (s.stream, s.sessionID)
        }
        stream?.cancel()
        connection.close(reason: reason)
        if let sessionID {
            var request = baseRequest(method: .DELETE)
            request.headers.replaceOrAdd(name: "Mcp-Session-Id", value: sessionID)
            let client = self.client
            Task { _ = try? await client.execute(request, timeout: .seconds(2)) }
        }
    }

    // MARK: - Handshake

    private func initialize() async -> Result<Handshake, Failure> {
        state.withLock { s in s.sessionID = nil; s.protocolVersion = nil }
        guard let message = try? RPCMessage(RPCMessage.request(id: 0, method: "initialize", params: initializeParams)) else {
            return .failure(Failure(message: "backend \"\(backendID)\": the initialize params are not valid JSON"))
        }
        var response: RPCMessage?
        let outcome = await exchange(message, sessionID: nil) { bytes in
            if let m = try? RPCMessage(bytes), m.kind == .response { response = m } else { self.connection.received(bytes) }
        }
        switch outcome {
        case .failed(let why): return .failure(Failure(message: why))
        case .sessionGone: return .failure(Failure(message: "backend \"\(backendID)\" answered initialize with 404"))
        case .done(let sessionID):
            guard let response else { return .failure(Failure(message: "backend \"\(backendID)\" did not answer initialize")) }
            if let errorRange = response.member("error") {
                let text = String(decoding: response.bytes[errorRange].prefix(300), as: UTF8.self)
                return .failure(Failure(message: "backend \"\(backendID)\" refused initialize: \(text)"))
            }
            let version = response.member("result").flatMap { r in
                (try? JSONBytes.members(response.bytes, r))?.first(where: { $0.key == "protocolVersion" }).flatMap { JSONBytes.decodeString(response.bytes, $0.value) }
            }
            let handshake = Handshake(response: response, hasSessionID: sessionID != nil)
            state.withLock { s in
                s.sessionID = sessionID
                s.protocolVersion = version
                s.handshake = handshake
            }
            if let note = try? RPCMessage(RPCMessage.notification(method: "notifications/initialized", params: nil)) {
                _ = await exchange(note, sessionID: sessionID) { _ in }
            }
            return .success(handshake)
        }
    }

    /// One re-initialization for every request that found the session gone.
    private func restart(after staleSessionID: String?) async -> Result<Handshake, Failure> {
        let task: Task<Result<Handshake, Failure>, Never>? = state.withLock { s in
            if s.closed { return nil }
            if let running = s.restarting { return running }
            // Someone already re-initialized since this request was sent: use that session.
            if s.sessionID != staleSessionID, let h = s.handshake { return Task { .success(h) } }
            let t = Task { await self.initialize() }
            s.restarting = t
            return t
        }
        guard let task else { return .failure(Failure(message: "backend \"\(backendID)\": the session was closed")) }
        let result = await task.value
        state.withLock { s in if s.restarting == task { s.restarting = nil } }
        if case .success = result { openStream() }
        return result
    }

    // MARK: - Sending

    private func post(_ bytes: [UInt8]) {
        Task { await self.deliver(bytes) }
    }

    private func deliver(_ bytes: [UInt8]) async {
        guard let message = try? RPCMessage(bytes) else { return }
        var sessionID = state.withLock { $0.sessionID }
        for attempt in 0..<2 {
            let outcome = await exchange(message, sessionID: sessionID) { self.connection.received($0) }
            switch outcome {
            case .done: return
            case .failed(let why):
                fail(message, why)
                if why.contains("unreachable") { onFailure(why) }
                return
            case .sessionGone:
                guard attempt == 0 else { fail(message, "backend \"\(backendID)\" lost the session again after re-initializing"); return }
                switch await restart(after: sessionID) {
                case .success: sessionID = state.withLock { $0.sessionID }
                case .failure(let f):
                    fail(message, f.message)
                    onFailure(f.message)
                    return
                }
            }
        }
    }

    /// A request that could not be delivered gets its error now (the connection restores the
    /// caller's id).
    private func fail(_ message: RPCMessage, _ why: String) {
        guard message.kind == .request else { return }
        connection.received(RPCMessage.error(id: message.id, code: RPCErrorCode.serverUnavailable, message: why))
    }

    private enum Outcome {
        case done(sessionID: String?)
        case sessionGone
        case failed(String)
    }

    private func baseRequest(method: HTTPMethod) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let version = state.withLock({ $0.protocolVersion }) { request.headers.replaceOrAdd(name: "MCP-Protocol-Version", value: version) }
        return request
    }

    /// POSTs one message; every message of the answer goes to `received`.
    private func exchange(_ message: RPCMessage, sessionID: String?, received: ([UInt8]) -> Void) async -> Outcome {
        var request = baseRequest(method: .POST)
        request.headers.replaceOrAdd(name: "Content-Type", value: "application/json")
        request.headers.replaceOrAdd(name: "Accept", value: Self.accept)
        if let sessionID { request.headers.replaceOrAdd(name: "Mcp-Session-Id", value: sessionID) }
        request.body = .bytes(ByteBuffer(bytes: message.bytes))
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .nanoseconds(Int64(clamping: (requestTimeout + .seconds(5)).nanosecondsRounded)))
        } catch {
            return .failed("backend \"\(backendID)\" is unreachable at \(url): \(Self.describe(error))")
        }
        let newSessionID = response.headers.first(name: "Mcp-Session-Id") ?? sessionID
        if response.status == .notFound, sessionID != nil { return .sessionGone }
        guard (200..<300).contains(response.status.code) else {
            let body = (try? await response.body.collect(upTo: 4096)).map { String(buffer: $0) } ?? ""
            return .failed("backend \"\(backendID)\" answered HTTP \(response.status.code)\(body.isEmpty ? "" : ": " + String(body.prefix(300)))")
        }
        let type = response.headers.first(name: "Content-Type")?.lowercased() ?? ""
        do {
            if type.hasPrefix("text/event-stream") {
                var parser = SSEParser()
                for try await chunk in response.body {
                    parser.feed(chunk.readableBytesView) { received($0) }
                }
            } else if response.status != .accepted {
                let body = try await response.body.collect(upTo: Self.maxBodyBytes)
                let bytes = Array(body.readableBytesView)
                if !bytes.isEmpty { received(bytes) }
            }
        } catch {
            return .failed("backend \"\(backendID)\" broke off its answer: \(Self.describe(error))")
        }
        return .done(sessionID: newSessionID)
    }

    // MARK: - The session's stream

    /// The GET stream of server-initiated messages (list_changed, logging, requests), reopened
    /// while the session lives; a server without one (405) is fine.
    private func openStream() {
        let task = Task { await self.streamLoop() }
        let old: Task<Void, Never>? = state.withLock { s in
            if s.closed { return task }
            defer { s.stream = task }
            return s.stream
        }
        old?.cancel()
        if isClosed { task.cancel() }
    }

    private func streamLoop() async {
        var failures = 0
        while !Task.isCancelled, !isClosed {
            guard let sessionID = state.withLock({ $0.sessionID }) else { return }
            var request = baseRequest(method: .GET)
            request.headers.replaceOrAdd(name: "Accept", value: "text/event-stream")
            request.headers.replaceOrAdd(name: "Mcp-Session-Id", value: sessionID)
            do {
                let response = try await client.execute(request, deadline: .distantFuture)
                if response.status == .methodNotAllowed { return }
                if response.status == .notFound {
                    _ = await restart(after: sessionID)
                    return  // the new session opens its own stream
                }
                if (200..<300).contains(response.status.code) {
                    failures = 0
                    var parser = SSEParser()
                    for try await chunk in response.body {
                        parser.feed(chunk.readableBytesView) { self.connection.received($0) }
                    }
                }
            } catch {
                if Task.isCancelled || isClosed { return }
                failures += 1
                if failures >= 3 { onFailure("backend \"\(backendID)\" is unreachable at \(url): \(Self.describe(error))") }
            }
            do { try await Task.sleep(for: .milliseconds(min(2000, 100 << min(failures, 5)))) } catch { return }
        }
    }

    static func describe(_ error: any Error) -> String {
        let text = String(describing: error)
        if text.contains("connectTimeout") || text.contains("onnection refused") || text.contains("connect(descriptor") {
            return "connection refused or timed out"
        }
        return String(text.prefix(200))
    }
}

/// Breaks the cycle between an upstream session and the send closure of its connection.
final class WeakSink<Target: AnyObject>: @unchecked Sendable {
    private let lock = Mutex<Void>(())
    private weak var _target: Target?
    var target: Target? {
        get { lock.withLock { _ in _target } }
        set { lock.withLock { _ in _target = newValue } }
    }
}

/// The events of a `text/event-stream` body (WHATWG HTML, "Server-sent events"), fed in
/// chunks. Events without data (a priming event, comments) are not dispatched.
struct SSEParser {
    private var line: [UInt8] = []
    private var data: [UInt8] = []
    private var type: [UInt8] = []
    private var hasData = false
    private var lastWasCR = false
    static let maxEventBytes = 16 << 20

    /// Feeds bytes; `dispatch` gets the `data` of each complete event.
    mutating func feed<C: Collection>(_ bytes: C, dispatch: ([UInt8]) -> Void) where C.Element == UInt8 {
        feedEvents(bytes) { _, data in dispatch(data) }
    }

    /// Feeds bytes; `dispatch` gets each complete event's type (`message` when it names none)
    /// and `data`.
    mutating func feedEvents<C: Collection>(_ bytes: C, dispatch: (String, [UInt8]) -> Void) where C.Element == UInt8 {
        for b in bytes {
            if b == 0x0A, lastWasCR { lastWasCR = false; continue }
            lastWasCR = b == 0x0D
            if b == 0x0A || b == 0x0D {
                endLine(dispatch)
            } else if line.count < Self.maxEventBytes {
                line.append(b)
            }
        }
    }

    private mutating func endLine(_ dispatch: (String, [UInt8]) -> Void) {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            if hasData, !data.isEmpty { dispatch(type.isEmpty ? "message" : String(decoding: type, as: UTF8.self), data) }
            data.removeAll(keepingCapacity: true)
            type.removeAll(keepingCapacity: true)
            hasData = false
            return
        }
        let colon = line.firstIndex(of: UInt8(ascii: ":")) ?? line.endIndex
        let field = line[..<colon]
        var value = line[colon...].dropFirst()
        if value.first == 0x20 { value = value.dropFirst() }
        if field.elementsEqual("data".utf8) {
            if hasData { data.append(0x0A) }
            data.append(contentsOf: value)
            hasData = true
        } else if field.elementsEqual("event".utf8) {
            type = Array(value)
        }
    }
}

extension Duration {
    var nanosecondsRounded: Int64 {
        let c = components
        return c.seconds.multipliedReportingOverflow(by: 1_000_000_000).partialValue &+ c.attoseconds / 1_000_000_000
    }
}
