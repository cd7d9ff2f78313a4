import RegistryKit
import Synchronization

/// One downstream MCP session of the gateway (a stdio client, or one `Mcp-Session-Id` over
/// HTTP): answers its requests from the catalog or by routing them to a backend, and holds its
/// own upstream session with each backend that keeps per-client state.
public final class GatewaySession: Sendable {
    public let id: String
    let gateway: Gateway
    /// Sends a message to the client (a notification, or a server request).
    let output: @Sendable ([UInt8]) -> Void

    /// The session's own upstream session with one backend, and the port its messages come in by.
    final class Port: UpstreamClient, Sendable {
        let session: GatewaySession?
        let backend: String
        let upstream: any MCPUpstream
        init(session: GatewaySession, backend: String, upstream: any MCPUpstream) {
            self.session = session
            self.backend = backend
            self.upstream = upstream
        }
        func deliver(_ message: [UInt8]) {
            guard let m = try? RPCMessage(message) else { return }
            if m.kind == .request {
                // Sampling, roots and elicitation are not relayed: the backend gets a clear answer.
                upstream.connection.sendRaw(RPCMessage.error(id: m.id, code: RPCErrorCode.methodNotFound,
                    message: "\(m.method ?? "request") is not relayed by peer-registry gateway"))
                return
            }
            // A list changed: the gateway fetches it again and tells every session, itself.
            switch m.method {
            case "notifications/tools/list_changed": refresh(.tools)
            case "notifications/prompts/list_changed": refresh(.prompts)
            case "notifications/resources/list_changed": refresh(.resources)
            default: session?.output(message)
            }
        }

        private func refresh(_ kind: Backend.ListKind) {
            guard let gateway = session?.gateway, let backend = gateway.backend(self.backend) else { return }
            Task { await gateway.refresh(backend, [kind]) }
        }
    }

    private struct Slot {
        let backend: ObjectIdentifier
        let task: Task<Result<Port, UpstreamFailure>, Never>
    }

    private struct State {
        var initialized = false
        var protocolVersion = Gateway.protocolVersions[0]
        var slots: [String: Slot] = [:]
        /// Requests in flight by the client's id: where a `notifications/cancelled` goes.
        var inFlight: [[UInt8]: (UpstreamConnection, any UpstreamClient)] = [:]
        var closed = false
        var lastUsed = ContinuousClock.now
        var active = 0
    }
    private let state = Mutex(State())

    init(id: String, gateway: Gateway, output: @escaping @Sendable ([UInt8]) -> Void) {
        self.id = id
        self.gateway = gateway
        self.output = output
    }

    var isInitialized: Bool { state.withLock { $0.initialized && !$0.closed } }

    func idle(longerThan limit: Duration, now: ContinuousClock.Instant) -> Bool {
        state.withLock { $0.active == 0 && now - $0.lastUsed > limit }
    }

    /// Ends the session: its upstream sessions are closed (DELETE), requests answered.
    public func close() {
        let slots: [Slot] = state.withLock { s in
            s.closed = true
            defer { s.slots = [:] }
            return Array(s.slots.values)
        }
        for slot in slots {
            Task {
                if case .success(let port) = await slot.task.value {
                    port.upstream.connection.detach(port)
                    port.upstream.close(reason: "the session ended")
                }
            }
        }
        gateway.sessionClosed(self)
    }

    // MARK: - Messages from the client

    /// A request's answer, or nil for a notification or a response.
    /// - Parameter progress: where the request's progress notifications go (default: `output`).
    public func handle(_ message: RPCMessage, progress: (@Sendable ([UInt8]) -> Void)? = nil) async -> [UInt8]? {
        switch message.kind {
        case .notification:
            notification(message)
            return nil
        case .response:
            return nil  // the gateway sends no requests of its own
        case .request:
            state.withLock { s in s.active += 1; s.lastUsed = .now }
            defer { state.withLock { s in s.active -= 1; s.lastUsed = .now } }
            return await request(message, progress: progress)
        }
    }

    private func notification(_ message: RPCMessage) {
        guard message.method == "notifications/cancelled", let range = message.paramRange("requestId") else { return }
        let raw = Array(message.bytes[range])
        guard let (connection, port) = state.withLock({ $0.inFlight[raw] }) else { return }
        connection.notify(message, from: port)
    }

    private func request(_ m: RPCMessage, progress: (@Sendable ([UInt8]) -> Void)?) async -> [UInt8] {
        let method = m.method ?? ""
        if method != "initialize", method != "ping", !gateway.isReady { await gateway.waitUntilReady() }
        switch method {
        case "initialize": return initialize(m)
        case "ping": return Self.result(m, Array("{}".utf8))
        case "logging/setLevel": return Self.result(m, Array("{}".utf8))
        case "tools/list": return Self.result(m, gateway.catalog.toolsResult)
        case "prompts/list": return Self.result(m, gateway.catalog.promptsResult)
        case "resources/list": return Self.result(m, gateway.catalog.resourcesResult)
        case "resources/templates/list": return Self.result(m, gateway.catalog.templatesResult)
        case "tools/call":
            guard let name = m.stringParam("name") else { return Self.invalid(m, "tools/call needs params.name (a string)") }
            if Gateway.ownToolNames.contains(name) { return await gateway.callOwnTool(m) }
            switch gateway.route(tool: name) {
            case .failure(let why): return RPCMessage.error(id: m.id, code: why.code, message: why.message)
            case .success(let item): return await forward(m, to: item.backend, renaming: item.name, progress: progress)
            }
        case "prompts/get":
            guard let name = m.stringParam("name") else { return Self.invalid(m, "prompts/get needs params.name (a string)") }
            switch gateway.route(prompt: name) {
            case .failure(let why): return RPCMessage.error(id: m.id, code: why.code, message: why.message)
            case .success(let item): return await forward(m, to: item.backend, renaming: item.name, progress: progress)
            }
        case "resources/read", "resources/subscribe", "resources/unsubscribe":
            guard let uri = m.stringParam("uri") else { return Self.invalid(m, "\(method) needs params.uri (a string)") }
            switch gateway.route(resource: uri) {
            case .failure(let why): return RPCMessage.error(id: m.id, code: RPCErrorCode.resourceNotFound, message: why.message)
            case .success(let backend): return await forward(m, to: backend, renaming: nil, progress: progress)
            }
        case "completion/complete":
            return await complete(m, progress: progress)
        default:
            return RPCMessage.error(id: m.id, code: RPCErrorCode.methodNotFound, message: "Method not found: \(method.prefix(100))")
        }
    }

    /// `completion/complete`: a `ref/prompt` goes to the prompt's backend under its own name
    /// (the three name forms of prompts/get), a `ref/resource` (a template or a URI) to the
    /// backend `resources/read` of that URI would reach.
    private func complete(_ m: RPCMessage, progress: (@Sendable ([UInt8]) -> Void)?) async -> [UInt8] {
        guard let refRange = m.paramRange("ref"), let ref = try? JSONBytes.members(m.bytes, refRange),
              let typeRange = ref.first(where: { $0.key == "type" })?.value,
              let type = JSONBytes.decodeString(m.bytes, typeRange) else {
            return Self.invalid(m, "completion/complete needs params.ref, an object with a type (ref/prompt or ref/resource)")
        }
        switch type {
        case "ref/prompt":
            guard let nameRange = ref.first(where: { $0.key == "name" })?.value, let name = JSONBytes.decodeString(m.bytes, nameRange) else {
                return Self.invalid(m, "completion/complete: a ref/prompt needs a name (a string)")
            }
            switch gateway.route(prompt: name) {
            case .failure(let why): return RPCMessage.error(id: m.id, code: why.code, message: why.message)
            case .success(let item): return await forward(m, to: item.backend, renaming: item.name, at: nameRange, progress: progress)
            }
        case "ref/resource":
            guard let uriRange = ref.first(where: { $0.key == "uri" })?.value, let uri = JSONBytes.decodeString(m.bytes, uriRange) else {
                return Self.invalid(m, "completion/complete: a ref/resource needs a uri (a string)")
            }
            switch gateway.route(resource: uri) {
            case .failure(let why): return RPCMessage.error(id: m.id, code: RPCErrorCode.invalidParams, message: why.message)
            case .success(let backend): return await forward(m, to: backend, renaming: nil, progress: progress)
            }
        default:
            return Self.invalid(m, "completion/complete: ref.type \"\(type.prefix(40))\" is neither ref/prompt nor ref/resource")
        }
    }

    private func initialize(_ m: RPCMessage) -> [UInt8] {
        let asked = m.paramRange("protocolVersion").flatMap { JSONBytes.decodeString(m.bytes, $0) }
        let version = asked.flatMap { Gateway.protocolVersions.contains($0) ? $0 : nil } ?? Gateway.protocolVersions[0]
        state.withLock { s in
            s.initialized = true
            s.protocolVersion = version
        }
        return Self.result(m, gateway.initializeResult(version: version))
    }

    /// Sends `m` to `backendID` (with `params.name`, or the string at `nameRange`, set to the
    /// backend's own name), over this session's own upstream session when the backend keeps
    /// per-client state.
    private func forward(_ m: RPCMessage, to backendID: String, renaming name: String?, at nameRange: Range<Int>? = nil,
                         progress: (@Sendable ([UInt8]) -> Void)?) async -> [UInt8] {
        guard let backend = gateway.backend(backendID) else {
            return RPCMessage.error(id: m.id, code: RPCErrorCode.serverUnavailable, message: "backend \"\(backendID)\" is gone")
        }
        var message = m
        if let name, let range = nameRange ?? m.paramRange("name") {
            guard let renamed = try? RPCMessage(m.replacing([(range, JSONBytes.quote(name))])) else {
                return RPCMessage.error(id: m.id, code: RPCErrorCode.internalError, message: "could not rewrite the request")
            }
            message = renamed
        }
        let port: any UpstreamClient
        let connection: UpstreamConnection
        if backend.usesSessions {
            switch await self.port(for: backend) {
            case .failure(let f): return RPCMessage.error(id: m.id, code: RPCErrorCode.serverUnavailable, message: f.message)
            case .success(let p):
                port = p
                connection = p.upstream.connection
            }
        } else {
            guard let upstream = backend.upstream else {
                return RPCMessage.error(id: m.id, code: RPCErrorCode.serverUnavailable, message: "backend \"\(backendID)\" is not connected")
            }
            let p = Port(session: self, backend: backendID, upstream: upstream)
            upstream.connection.attach(p)
            port = p
            connection = upstream.connection
        }
        let shared = !backend.usesSessions
        defer { if shared { connection.detach(port) } }
        if let id = m.id { state.withLock { $0.inFlight[id] = (connection, port) } }
        defer { if let id = m.id { _ = state.withLock { $0.inFlight.removeValue(forKey: id) } } }
        return await connection.request(message, from: port, timeout: gateway.options.requestTimeout,
                                        timeoutOption: "backend \"\(backendID)\", --request-timeout", progress: progress)
    }

    /// This session's upstream session with `backend`, started on first use.
    private func port(for backend: Backend) async -> Result<Port, UpstreamFailure> {
        let key = ObjectIdentifier(backend)
        let task: Task<Result<Port, UpstreamFailure>, Never>? = state.withLock { s in
            if s.closed { return nil }
            if let slot = s.slots[backend.id], slot.backend == key { return slot.task }
            let gateway = self.gateway
            let t = Task { [weak self] () -> Result<Port, UpstreamFailure> in
                guard let self, let url = backend.entry.url else { return .failure(.init(message: "backend \"\(backend.id)\" has no url")) }
                let upstream = Upstreams.make(
                    transport: backend.entry.transport, backendID: backend.id, url: url, headers: backend.entry.headers ?? [:], client: gateway.client,
                    initializeParams: Gateway.initializeParams, requestTimeout: gateway.options.requestTimeout, exclusive: true,
                    local: gateway.localServer(behind: backend.entry),
                    onFailure: { [weak backend, weak gateway] why in
                        guard let backend, let gateway else { return }
                        gateway.backendFailed(backend, why)
                    })
                let port = Port(session: self, backend: backend.id, upstream: upstream)
                upstream.connection.attach(port)
                switch await upstream.start() {
                case .success: return .success(port)
                case .failure(let f):
                    upstream.close(reason: f.message)
                    gateway.backendFailed(backend, f.message)
                    return .failure(f)
                }
            }
            let old = s.slots[backend.id]
            s.slots[backend.id] = Slot(backend: key, task: t)
            if let old {
                Task { if case .success(let p) = await old.task.value { p.upstream.close(reason: "backend \"\(backend.id)\" was replaced") } }
            }
            return t
        }
        guard let task else { return .failure(.init(message: "the session ended")) }
        let result = await task.value
        if case .failure = result {
            // Not kept: the next call tries again.
            state.withLock { s in if let slot = s.slots[backend.id], slot.task == task { s.slots[backend.id] = nil } }
        }
        return result
    }

    /// Drops the upstream session with a backend that left (or came back: see
    /// `Gateway.backendConnected`).
    func forget(backend id: String, reason: String? = nil) {
        let slot = state.withLock { $0.slots.removeValue(forKey: id) }
        if let slot {
            let why = reason ?? "backend \"\(id)\" left the registry"
            Task { if case .success(let p) = await slot.task.value { p.upstream.close(reason: why) } }
        }
    }

    // MARK: - Answers

    static func result(_ m: RPCMessage, _ result: [UInt8]) -> [UInt8] {
        var out = Array(#"{"jsonrpc":"2.0","id":"#.utf8)
        out.append(contentsOf: m.id ?? Array("null".utf8))
        out.append(contentsOf: #","result":"#.utf8)
        out.append(contentsOf: result)
        out.append(UInt8(ascii: "}"))
        return out
    }

    static func invalid(_ m: RPCMessage, _ why: String) -> [UInt8] {
        RPCMessage.error(id: m.id, code: RPCErrorCode.invalidParams, message: why)
    }
}

extension RPCMessage {
    /// `params.<key>` when it is a string.
    func stringParam(_ key: String) -> String? {
        paramRange(key).flatMap { JSONBytes.decodeString(bytes, $0) }
    }
}
