import AsyncHTTPClient
import Foundation
import Logging
import MCP
import RegistryKit
import RegistryMCP
import ServiceLifecycle
import Synchronization

/// `peer-registry gateway`: one MCP server in front of every live server in the registry
/// (docs/GATEWAY.md). Follows the registry's watch; connects to each entry with transport
/// http or sse (with its `headers`); shows their tools and prompts as `<id>__<name>` and their
/// resources as they are; routes each call; tells every downstream session when the lists
/// change; hides servers that are DOWN or cannot be reached and writes what it saw back as
/// their health.
///
/// The downstream transports (stdio, streamable HTTP) make `GatewaySession`s with
/// `makeSession` and hand each client message to `GatewaySession.handle`.
public final class Gateway: Service, Sendable {
    public struct Options: Sendable {
        /// `--include` / `--exclude`.
        public var filter = GatewayFilter()
        /// How long a routed request may wait for its backend.
        public var requestTimeout: Duration = .seconds(30)
        /// Write what the gateway observes (reachable or not) as the entries' health (this
        /// machine's entries only: another machine's belong to its own registry).
        public var writeHealth = true
        /// `.cluster`: also the other machines' servers that `peer-registry agent` mirrors
        /// (docs/CLUSTER.md), exposed as `<node>__<id>__<name>`.
        public var scope: EntryScope = .local
        /// The supervisor of `--config`: its servers are reached in process (`LocalUpstream`)
        /// instead of through their HTTP bridges, unless `supervisedOverHTTP`.
        public var supervisor: Supervisor?
        /// `--supervised-over-http`: reach the supervisor's servers through their bridges, as
        /// any other client does (to compare, or to debug the bridge).
        public var supervisedOverHTTP = false
        public init() {}
    }

    /// The protocol versions a client may ask for, newest first (the answer to any other).
    static let protocolVersions = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"]
    static let version = "0.1.0"
    static let initializeParams =
        #"{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"peer-registry-gateway","version":"\#(version)"}}"#
    static let jsonLimits: RegistryLimits = {
        var l = RegistryLimits()
        l.maxFileBytes = 16 << 20
        l.maxDepth = 64
        return l
    }()
    /// The gateway's own tool (`instances/list` of `peer-registry mcp`, under a name LLM APIs accept).
    static let ownToolNames: Set<String> = ["instances_list", RegistryTools.list]

    public let registry: Registry
    public let options: Options
    let logger: Logger
    let client: HTTPClient

    private struct WeakSession { weak var session: GatewaySession? }
    private struct State {
        var backends: [String: Backend] = [:]
        var catalog = Catalog()
        var sessions: [ObjectIdentifier: WeakSession] = [:]
        var ready = false
        /// Servers that left the registry, newest last (at most 256): a call to one of their
        /// tools says so instead of "unknown tool".
        var departed: [String] = []
    }
    private let state = Mutex(State())
    private let ownTools: [JSONObject]

    public init(registry: Registry, options: Options = Options(), logger: Logger) {
        self.registry = registry
        self.options = options
        self.logger = logger
        self.client = HTTPUpstream.makeClient()
        self.ownTools = Self.ownToolDefinitions()
        rebuild()
    }

    var catalog: Catalog { state.withLock { $0.catalog } }

    /// The supervised server behind `entry` when it is the gateway's own (reached in process).
    func localServer(behind entry: ServerEntry) -> ServerSupervisor? {
        guard !options.supervisedOverHTTP, entry.node == nil else { return nil }
        return options.supervisor?.server(behind: entry)
    }
    func backend(_ id: String) -> Backend? { state.withLock { $0.backends[id] } }

    /// The ids of the backends shown now (tests, logs).
    public var visibleBackends: [String] { state.withLock { $0.catalog.backends.sorted() } }

    /// Waits until the servers registered at start have been tried once (at most `limit`), so
    /// a client's first tools/list already shows them.
    public func waitUntilReady(within limit: Duration = .seconds(5)) async {
        let deadline = ContinuousClock.now + limit
        while !state.withLock({ $0.ready }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    var isReady: Bool { state.withLock { $0.ready } }

    // MARK: - Sessions

    /// A new downstream session; `output` gets the messages the gateway sends it unasked.
    public func makeSession(id: String, output: @escaping @Sendable ([UInt8]) -> Void) -> GatewaySession {
        let session = GatewaySession(id: id, gateway: self, output: output)
        state.withLock { $0.sessions[ObjectIdentifier(session)] = WeakSession(session: session) }
        return session
    }

    func sessionClosed(_ session: GatewaySession) {
        _ = state.withLock { $0.sessions.removeValue(forKey: ObjectIdentifier(session)) }
    }

    private var liveSessions: [GatewaySession] {
        state.withLock { s in s.sessions.values.compactMap(\.session) }
    }

    /// Tells every initialized session that lists changed.
    func announce(_ kinds: Set<Backend.ListKind>) {
        var notes: [[UInt8]] = []
        if kinds.contains(.tools) { notes.append(RPCMessage.notification(method: "notifications/tools/list_changed", params: nil)) }
        if kinds.contains(.prompts) { notes.append(RPCMessage.notification(method: "notifications/prompts/list_changed", params: nil)) }
        if kinds.contains(.resources) { notes.append(RPCMessage.notification(method: "notifications/resources/list_changed", params: nil)) }
        for session in liveSessions where session.isInitialized {
            for n in notes { session.output(n) }
        }
    }

    func initializeResult(version: String) -> [UInt8] {
        Array(#"{"protocolVersion":"\#(version)","capabilities":{"tools":{"listChanged":true},"prompts":{"listChanged":true},"resources":{"listChanged":true,"subscribe":true},"logging":{},"completions":{}},"serverInfo":{"name":"peer-registry-gateway","title":"peer-registry gateway","version":"\#(Self.version)"},"instructions":"Every MCP server registered on this machine, as one server. Tools and prompts are named <server id>__<name>; calls also accept <server id>.<name> and a bare name when only one server has it. The tool instances_list lists the servers."}"#.utf8)
    }

    // MARK: - Following the registry

    public func run() async throws {
        let changes = try registry.changes(ServerFilter(scope: options.scope))
        let initial = try registry.list(ServerFilter(scope: options.scope))
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    await withDiscardingTaskGroup { connects in
                        for entry in initial.servers { connects.addTask { await self.added(entry) } }
                    }
                    self.state.withLock { $0.ready = true }
                    self.logger.info("gateway ready", metadata: ["backends": "\(self.visibleBackends.count)", "registry": "\(self.registry.path)"])
                }
                do {
                    for try await event in changes {
                        for e in event.removed { self.removed(e.clusterKey) }
                        for e in event.added { group.addTask { await self.added(e) } }
                        for e in event.changed { group.addTask { await self.changed(e) } }
                    }
                } catch {
                    self.logger.error("the registry watch ended", metadata: ["error": "\(error)"])
                }
                group.cancelAll()
            }
        }
        let all = state.withLock { s in
            defer { s.backends = [:] }
            return Array(s.backends.values)
        }
        for b in all { b.close() }
        for s in liveSessions { s.close() }
        try? await client.shutdown()
    }

    static func isUpstream(_ entry: ServerEntry) -> Bool {
        entry.transport.map(Upstreams.transports.contains) == true && entry.url != nil
    }

    private func added(_ entry: ServerEntry) async {
        guard Self.isUpstream(entry) else { return }
        let backend = Backend(entry: entry)
        let key = backend.id
        state.withLock { s in s.departed.removeAll { $0 == key } }
        let replaced: Backend? = state.withLock { s in
            defer { s.backends[key] = backend }
            return s.backends[key]
        }
        if let replaced {
            replaced.close()
            for session in liveSessions { session.forget(backend: key) }
        }
        await connect(backend)
    }

    private func connect(_ backend: Backend) async {
        switch await backend.connect(gateway: self) {
        case .success: await backendConnected(backend)
        case .failure(let f):
            guard state.withLock({ $0.backends[backend.id] === backend }) else { return }
            _ = backend.markUnreachable(f.message)
            logger.notice("backend unreachable", metadata: ["id": "\(backend.id)", "reason": "\(f.message)"])
            writeHealth(backend, .down, f.message)
            backend.scheduleReconnect(gateway: self)
        }
    }

    /// `reconnected`: after being unreachable. Each downstream session's own upstream session
    /// with it (a backend that keeps per-client state) was with the process that went away, and
    /// may still be backing off between its own retries: the sessions drop them, and their next
    /// call starts one with the backend as it is now.
    func backendConnected(_ backend: Backend, reconnected: Bool = false) async {
        guard state.withLock({ $0.backends[backend.id] === backend }) else {
            backend.close()
            return
        }
        if reconnected {
            for session in liveSessions { session.forget(backend: backend.id, reason: "backend \"\(backend.id)\" reconnected") }
        }
        logger.info("backend connected", metadata: ["id": "\(backend.id)", "tools": "\(backend.lists.tools.count)"])
        if backend.health != .healthy { writeHealth(backend, .healthy, nil) }
        rebuild()
        announce([.tools, .prompts, .resources])
    }

    private func removed(_ id: String) {
        guard let backend = state.withLock({ s -> Backend? in
            guard let b = s.backends.removeValue(forKey: id) else { return nil }
            s.departed.removeAll { $0 == id }
            s.departed.append(id)
            if s.departed.count > 256 { s.departed.removeFirst() }
            return b
        }) else { return }
        let wasVisible = backend.isVisible
        backend.close()
        for session in liveSessions { session.forget(backend: id) }
        logger.info("backend left the registry", metadata: ["id": "\(id)"])
        if wasVisible {
            rebuild()
            announce([.tools, .prompts, .resources])
        }
    }

    private func changed(_ entry: ServerEntry) async {
        guard let backend = state.withLock({ $0.backends[entry.clusterKey] }) else {
            await added(entry)
            return
        }
        guard Self.isUpstream(entry) else {
            removed(entry.clusterKey)
            return
        }
        guard Backend.sameEndpoint(backend.entry, entry) else {
            await added(entry)
            return
        }
        if backend.setHealth(entry.health.status) {
            rebuild()
            announce([.tools, .prompts, .resources])
        }
        if entry.health.status != .down, case .unreachable = backend.phase { backend.scheduleReconnect(gateway: self) }
        if backend.entry.capabilities != entry.capabilities, await backend.refresh([.tools, .prompts, .resources]) {
            rebuild()
            announce([.tools, .prompts, .resources])
        }
    }

    /// A backend's own list_changed: fetch again, tell every session.
    func refresh(_ backend: Backend, _ kinds: Set<Backend.ListKind>) async {
        guard state.withLock({ $0.backends[backend.id] === backend }) else { return }
        _ = await backend.refresh(kinds)
        rebuild()
        announce(kinds)
    }

    /// A request to the backend failed for want of a connection: hidden until it answers again.
    func backendFailed(_ backend: Backend, _ why: String) {
        guard state.withLock({ $0.backends[backend.id] === backend }) else { return }
        if backend.markUnreachable(why) {
            logger.notice("backend unreachable", metadata: ["id": "\(backend.id)", "reason": "\(why)"])
            rebuild()
            announce([.tools, .prompts, .resources])
            writeHealth(backend, .down, why)
        }
        backend.scheduleReconnect(gateway: self)
    }

    private func writeHealth(_ backend: Backend, _ status: HealthStatus, _ message: String?) {
        guard options.writeHealth, backend.entry.node == nil else { return }
        // A DOWN written by someone else (the supervisor's crash loop) keeps its message.
        if status == .down, backend.health == .down { return }
        let text = message.map { "gateway: " + String($0.prefix(1000)) } ?? "gateway: connected"
        let registry = self.registry
        let id = backend.entry.id
        Task.detached {
            do throws(RegistryError) { try registry.setHealth(id, status, message: text) } catch {}
        }
        _ = backend.setHealth(status)
    }

    private func rebuild() {
        let visible = state.withLock { s in s.backends.values.filter(\.isVisible) }
        let catalog = Catalog.build(visible.map { ($0.id, $0.lists) }, filter: options.filter, ownTools: ownTools)
        state.withLock { $0.catalog = catalog }
    }

    // MARK: - Routing

    struct RouteError: Error {
        let message: String
        var code = RPCErrorCode.invalidParams
    }

    /// The backend key (`id`, or `node/id`) that `<label>__...` or `<key>.…` starts with, among
    /// `keys`: the longest one.
    static func serverKey(of name: String, among keys: some Sequence<String>) -> String? {
        keys.filter { name.hasPrefix(Catalog.label(of: $0) + "__") || name.hasPrefix($0 + ".") }
            .max { $0.utf8.count < $1.utf8.count }
    }

    /// Why `<id>__...` or `<id>.…` names nothing now, when `<id>` is a server the gateway knows
    /// is hidden or gone: a JSON-RPC error naming it (-32000), not "unknown tool".
    private func unavailable(_ name: String) -> RouteError? {
        let (backend, departed, server): (Backend?, Bool, String?) = state.withLock { s in
            guard let key = Self.serverKey(of: name, among: Array(s.backends.keys) + s.departed) else { return (nil, false, nil) }
            return (s.backends[key], s.departed.contains(key), key)
        }
        guard let server else { return nil }
        if let backend, !backend.isVisible {
            switch backend.phase {
            case .unreachable(let why): return RouteError(message: why, code: RPCErrorCode.serverUnavailable)
            case .connecting: return RouteError(message: "backend \"\(server)\" is still connecting", code: RPCErrorCode.serverUnavailable)
            default:
                if backend.health == .down { return RouteError(message: "backend \"\(server)\" is DOWN in the registry", code: RPCErrorCode.serverUnavailable) }
            }
        }
        if backend == nil, departed {
            return RouteError(message: "backend \"\(server)\" left the registry (unregistered, or its process died)", code: RPCErrorCode.serverUnavailable)
        }
        return nil
    }

    /// The backend tool for a call: an exposed name, `id.name` or a bare name (the registry's
    /// resolver first, then the backends' own lists; a tie is an error listing the candidates).
    func route(tool name: String) -> Result<CatalogItem, RouteError> {
        route(name, kind: .tool, table: \.tools, byName: \.toolsByName)
    }

    func route(prompt name: String) -> Result<CatalogItem, RouteError> {
        route(name, kind: .prompt, table: \.prompts, byName: \.promptsByName)
    }

    private func route(_ name: String, kind: CapabilityKind, table: KeyPath<Catalog, [String: CatalogItem]>,
                       byName: KeyPath<Catalog, [String: [CatalogItem]]>) -> Result<CatalogItem, RouteError> {
        let catalog = self.catalog
        if let item = catalog[keyPath: table][name] { return .success(item) }
        let word = kind == .tool ? "tool" : "prompt"
        let resolved: Result<ServerEntry, RegistryError> = {
            do throws(RegistryError) { return .success(try registry.resolve(kind, name, scope: options.scope)) } catch { return .failure(error) }
        }()
        // `id.name`, or `node/id.name` for another machine's server (ids and node names have no dot).
        var local = name
        var server: String?
        if let dot = name.firstIndex(of: "."), catalog.backends.contains(String(name[..<dot])) {
            local = String(name[name.index(after: dot)...])
            server = String(name[..<dot])
        }
        switch resolved {
        case .success(let entry):
            if let item = catalog[keyPath: byName][local]?.first(where: { $0.backend == entry.clusterKey }) { return .success(item) }
        case .failure(let error) where error.code == .ambiguous:
            return .failure(RouteError(message: error.message))
        case .failure:
            break
        }
        if let server {
            if let item = catalog[keyPath: byName][local]?.first(where: { $0.backend == server }) { return .success(item) }
            if let gone = unavailable(name) { return .failure(gone) }
            return .failure(RouteError(message: "server \"\(server)\" has no \(word) \"\(local.prefix(200))\" (or it is DOWN, unreachable or filtered out)"))
        }
        let candidates = catalog[keyPath: byName][name] ?? []
        if candidates.count == 1, let only = candidates.first { return .success(only) }
        if candidates.count > 1 {
            return .failure(RouteError(message: "\(word) \"\(name.prefix(200))\" is offered by \(candidates.count) servers: \(candidates.map(\.exposed).sorted().joined(separator: ", ")); call one of these names"))
        }
        if let gone = unavailable(name) { return .failure(gone) }
        return .failure(RouteError(message: "Unknown \(word): \"\(name.prefix(200))\" (no live, reachable server offers it; tools/list shows what there is)"))
    }

    /// The backend for a resource URI: one listing it exactly, else the registry's longest
    /// declared prefix, else the longest literal start of a template.
    func route(resource uri: String) -> Result<String, RouteError> {
        let catalog = self.catalog
        if let owners = catalog.resources[uri] {
            if owners.count == 1, let only = owners.first { return .success(only) }
            let healthy = owners.filter { backend($0)?.health == .healthy }
            if healthy.count == 1, let only = healthy.first { return .success(only) }
            return .failure(RouteError(message: "resource \"\(uri.prefix(200))\" is listed by \(owners.count) servers: \(owners.sorted().joined(separator: ", "))"))
        }
        do throws(RegistryError) {
            let entry = try registry.resolve(.resource, uri, scope: options.scope)
            if catalog.backends.contains(entry.clusterKey) { return .success(entry.clusterKey) }
        } catch {
            if error.code == .ambiguous { return .failure(RouteError(message: error.message)) }
        }
        if let t = catalog.templatePrefixes.first(where: { !$0.prefix.isEmpty && uri.hasPrefix($0.prefix) }) { return .success(t.backend) }
        return .failure(RouteError(message: "Resource not found: \"\(uri.prefix(200))\" (no live, reachable server lists it or a template matching it)"))
    }

    // MARK: - The gateway's own tool

    static func ownToolDefinitions() -> [JSONObject] {
        guard let tool = RegistryTools.definitions.first(where: { $0.name == RegistryTools.list }),
              let data = try? JSONEncoder().encode(tool),
              case .object(var object) = try? JSONValue.parse(String(decoding: data, as: UTF8.self), limits: jsonLimits) else { return [] }
        object["name"] = .string("instances_list")
        return [object]
    }

    func callOwnTool(_ m: RPCMessage) async -> [UInt8] {
        var arguments: [String: Value]?
        if let range = m.paramRange("arguments") {
            arguments = try? JSONDecoder().decode([String: Value].self, from: Data(m.bytes[range]))
            if arguments == nil {
                return RPCMessage.error(id: m.id, code: RPCErrorCode.invalidParams, message: "instances_list: arguments must be an object")
            }
        }
        do {
            // A cluster gateway's own list is the cluster's, unless the caller says otherwise.
            if options.scope == .cluster, arguments?["scope"] == nil { arguments = (arguments ?? [:]).merging(["scope": .string("cluster")]) { a, _ in a } }
            let result = try await RegistryTools(registry: registry).call(RegistryTools.list, arguments: arguments)
            let data = try JSONEncoder().encode(result)
            return GatewaySession.result(m, Array(data))
        } catch {
            return RPCMessage.error(id: m.id, code: RPCErrorCode.internalError, message: "instances_list: \(error)")
        }
    }
}
