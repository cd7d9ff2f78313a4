import AsyncHTTPClient
import RegistryKit
import Synchronization

/// One registry entry the gateway reaches (transport http or sse): the gateway's own session with it
/// (its lists, and the calls of backends that keep no per-client state), what it offers, and
/// whether it can be reached now.
final class Backend: Sendable {
    enum Phase: Sendable, Equatable {
        case connecting
        case ready
        case unreachable(String)
        case closed
    }

    /// The entry's `clusterKey`: its id for this machine's servers, `node/id` for another
    /// machine's (with `--scope cluster`), so the same id on two machines is two backends.
    let id: String
    /// The entry as registered (url, headers). A new url, headers or owner makes a new Backend.
    let entry: ServerEntry

    private struct State {
        var phase: Phase = .connecting
        var health: HealthStatus
        var upstream: (any MCPUpstream)?
        var lists = BackendLists()
        var usesSessions = false
        var offers = (tools: false, prompts: false, resources: false)
        var reconnect: Task<Void, Never>?
        var failures = 0
    }
    private let state: Mutex<State>

    init(entry: ServerEntry) {
        self.id = entry.clusterKey
        self.entry = entry
        self.state = Mutex(State(health: entry.health.status))
    }

    var phase: Phase { state.withLock { $0.phase } }
    var lists: BackendLists { state.withLock { $0.lists } }
    var upstream: (any MCPUpstream)? { state.withLock { $0.upstream } }
    /// Shown and callable: connected, and not DOWN in the registry.
    var isVisible: Bool { state.withLock { $0.phase == .ready && $0.health != .down } }
    /// Calls need one upstream session per downstream session (the server hands out
    /// `Mcp-Session-Id`, or the entry declares `requiresSession`).
    var usesSessions: Bool { state.withLock { $0.usesSessions } || entry.requiresSession == true }
    var health: HealthStatus { state.withLock { $0.health } }

    /// Records the registry's health for this entry; true when visibility changed.
    func setHealth(_ status: HealthStatus) -> Bool {
        state.withLock { s in
            let before = s.phase == .ready && s.health != .down
            s.health = status
            return before != (s.phase == .ready && s.health != .down)
        }
    }

    static func sameEndpoint(_ a: ServerEntry, _ b: ServerEntry) -> Bool {
        a.url == b.url && a.headers == b.headers && a.transport == b.transport && a.pid == b.pid && a.startedAt == b.startedAt
            && a.requiresSession == b.requiresSession
    }

    /// Connects (initialize, then every list the server offers). On success the backend is
    /// ready; on failure it is unreachable with the reason.
    func connect(gateway: Gateway) async -> Result<Void, UpstreamFailure> {
        guard let url = entry.url else { return .failure(.init(message: "backend \"\(id)\" has no url")) }
        let upstream = Upstreams.make(
            transport: entry.transport, backendID: id, url: url, headers: entry.headers ?? [:], client: gateway.client,
            initializeParams: Gateway.initializeParams, requestTimeout: gateway.options.requestTimeout, exclusive: false,
            local: gateway.localServer(behind: entry),
            onFailure: { [weak self, weak gateway] why in
                guard let self, let gateway else { return }
                gateway.backendFailed(self, why)
            })
        if upstream is LocalUpstream {
            gateway.logger.info("backend \"\(id)\": supervised by this gateway, reached in process")
        }
        upstream.connection.observeNotifications { [weak self, weak gateway] message in
            guard let self, let gateway, let method = message.method else { return }
            switch method {
            case "notifications/tools/list_changed": Task { await gateway.refresh(self, [.tools]) }
            case "notifications/prompts/list_changed": Task { await gateway.refresh(self, [.prompts]) }
            case "notifications/resources/list_changed": Task { await gateway.refresh(self, [.resources]) }
            default: break
            }
        }
        let old: (any MCPUpstream)? = state.withLock { s in
            defer { s.upstream = upstream }
            return s.upstream
        }
        old?.close(reason: "backend \"\(id)\" reconnected")
        let handshake: UpstreamHandshake
        switch await upstream.start() {
        case .success(let h): handshake = h
        case .failure(let f):
            upstream.close(reason: f.message)
            return .failure(f)
        }
        let offered = Self.offered(handshake.response)
        state.withLock { s in
            s.usesSessions = handshake.hasSessionID
            s.offers = offered
        }
        let lists = await fetch(upstream, [.tools, .prompts, .resources], previous: BackendLists())
        let closed = state.withLock { s -> Bool in
            guard s.phase != .closed, s.upstream === upstream else { return true }
            s.lists = lists
            s.phase = .ready
            s.failures = 0
            return false
        }
        if closed { upstream.close(reason: "backend \"\(id)\" is gone") }
        return .success(())
    }

    enum ListKind: Sendable { case tools, prompts, resources }

    /// Fetches the lists of `kinds` again (after the server's list_changed).
    func refresh(_ kinds: Set<ListKind>) async -> Bool {
        guard let upstream = state.withLock({ $0.phase == .ready ? $0.upstream : nil }) else { return false }
        let before = lists
        let after = await fetch(upstream, kinds, previous: before)
        state.withLock { s in if s.upstream === upstream { s.lists = after } }
        return after != before
    }

    private func fetch(_ upstream: any MCPUpstream, _ kinds: Set<ListKind>, previous: BackendLists) async -> BackendLists {
        var lists = previous
        let offers = state.withLock { $0.offers }
        if kinds.contains(.tools) { lists.tools = offers.tools ? await Self.list(upstream, "tools/list", "tools") : [] }
        if kinds.contains(.prompts) { lists.prompts = offers.prompts ? await Self.list(upstream, "prompts/list", "prompts") : [] }
        if kinds.contains(.resources) {
            lists.resources = offers.resources ? await Self.list(upstream, "resources/list", "resources") : []
            lists.templates = offers.resources ? await Self.list(upstream, "resources/templates/list", "resourceTemplates") : []
        }
        return lists
    }

    /// Every page of a list (at most 100 pages).
    static func list(_ upstream: any MCPUpstream, _ method: String, _ key: String) async -> [JSONObject] {
        var out: [JSONObject] = []
        var cursor: String?
        for _ in 0..<100 {
            let params = cursor.map { #"{"cursor":"# + String(decoding: JSONBytes.quote($0), as: UTF8.self) + "}" } ?? "{}"
            guard let message = try? RPCMessage(RPCMessage.request(id: 1, method: method, params: params)) else { return out }
            let answer = await upstream.connection.request(message, from: nil, timeout: upstream.requestTimeout)
            guard case .object(let response) = try? JSONValue.parse(String(decoding: answer, as: UTF8.self), limits: Gateway.jsonLimits),
                  let result = response["result"]?.objectValue else { return out }
            for item in result[key]?.arrayValue ?? [] { if let o = item.objectValue { out.append(o) } }
            guard let next = result["nextCursor"]?.stringValue, !next.isEmpty, next != cursor else { return out }
            cursor = next
        }
        return out
    }

    /// Which lists the server's `initialize` result says it has.
    static func offered(_ response: RPCMessage) -> (tools: Bool, prompts: Bool, resources: Bool) {
        guard let r = response.member("result"), let result = try? JSONBytes.members(response.bytes, r),
              let caps = result.first(where: { $0.key == "capabilities" }),
              let members = try? JSONBytes.members(response.bytes, caps.value) else { return (true, true, true) }
        let keys = Set(members.map(\.key))
        return (keys.contains("tools"), keys.contains("prompts"), keys.contains("resources"))
    }

    /// Marks the backend unreachable; true when it was ready (it must be hidden now).
    func markUnreachable(_ why: String) -> Bool {
        state.withLock { s in
            guard s.phase != .closed else { return false }
            let wasReady = s.phase == .ready
            s.phase = .unreachable(why)
            return wasReady
        }
    }

    /// Tries to connect again until it works or the backend is closed (backoff 0.1 s → 5 s).
    func scheduleReconnect(gateway: Gateway) {
        state.withLock { s in
            guard s.phase != .closed, s.reconnect == nil else { return }
            s.reconnect = Task { [weak self, weak gateway] in
                var delay = Duration.milliseconds(100)
                while !Task.isCancelled {
                    do { try await Task.sleep(for: delay) } catch { return }
                    guard let self, let gateway else { return }
                    if case .closed = self.phase { return }
                    delay = min(delay * 2, .seconds(5))
                    if case .success = await self.connect(gateway: gateway) {
                        self.state.withLock { $0.reconnect = nil }
                        await gateway.backendConnected(self, reconnected: true)
                        return
                    }
                }
            }
        }
    }

    func close() {
        let (upstream, reconnect): ((any MCPUpstream)?, Task<Void, Never>?) = state.withLock { s in
            s.phase = .closed
            defer { s.upstream = nil; s.reconnect = nil }
            return (s.upstream, s.reconnect)
        }
        reconnect?.cancel()
        upstream?.close(reason: "backend \"\(id)\" left the registry")
    }
}
