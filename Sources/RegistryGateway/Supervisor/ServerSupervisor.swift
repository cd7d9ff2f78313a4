import Logging
import NIOCore
import RegistryKit
import RegistryServerPolicy
import Synchronization

/// One configured server under supervision: its bridge (streamable HTTP on 127.0.0.1), its
/// process slots (one per session, or one shared), restarts and crash-loop detection, and its
/// registry entry (lease held by the supervisor; capabilities from the server's own lists;
/// `metadata.supervisor` = state and restart count; health set from what happens).
public final class ServerSupervisor: Sendable {
    public let config: ServerConfig
    /// The bearer token clients must send (in the entry's `headers`).
    let token: AccessToken
    let stderr: StderrLog
    let group: any EventLoopGroup
    let logger: Logger
    let registry: Registry

    private struct State {
        var policy: RestartPolicy
        var lastFailure: String?
        var capabilities: Capabilities?
        var serverCapabilities: (tools: Bool, resources: Bool, prompts: Bool)?
        var port: Int?
        var shared: ProcessSlot?
        var spare: ProcessSlot?
        var exclusiveSlots: [ObjectIdentifier: ProcessSlot] = [:]
        var sessions = 0
        var stopped = false
        var lingerTask: Task<Void, Never>?
        var publishing = false
        var dirty = false
        var registered = false
        var discovering = false
    }
    private let state: Mutex<State>

    var requestTimeout: Duration { .milliseconds(Int64(config.requestTimeout * 1000)) }
    var startTimeout: Duration { .milliseconds(Int64(config.startTimeout * 1000)) }
    var stopGrace: Duration { .milliseconds(Int64(config.stopTimeout * 1000)) }
    var idleTimeout: Duration { .milliseconds(Int64(config.idleTimeout * 1000)) }
    var keepAlive: Duration { .milliseconds(Int64(config.keepAlive * 1000)) }

    /// - Parameter logDirectory: where `<id>.log` (the server's stderr) goes; nil: no file.
    public init(config: ServerConfig, registry: Registry, group: any EventLoopGroup, logDirectory: String?, logger: Logger) {
        self.config = config
        self.registry = registry
        self.group = group
        var logger = logger
        logger[metadataKey: "server"] = "\(config.id)"
        self.logger = logger
        self.token = AccessToken.generate()
        self.stderr = StderrLog(path: logDirectory.map { $0 + "/" + config.id + ".log" })
        self.state = Mutex(State(policy: RestartPolicy(
            maxRestarts: config.maxRestarts, window: .milliseconds(Int64(config.restartWindow * 1000)),
            firstDelay: .milliseconds(Int64(config.restartDelay * 1000)))))
    }

    func log(_ level: Logger.Level, _ message: String, _ metadata: [String: String] = [:]) {
        var m = Logger.Metadata()
        for (k, v) in metadata { m[k] = "\(v)" }
        logger.log(level: level, "\(message)", metadata: m)
    }

    // MARK: - Sessions

    /// A slot for a new session: its own process (capped by `maxProcesses`), or the shared one.
    func slotForNewSession(initializeParams: String) -> Result<ProcessSlot, ProcessSlot.Failure> {
        if let refusal = refusal() { return .failure(.init(message: refusal)) }
        return state.withLock { s in
            if s.stopped { return .failure(.init(message: "the server \"\(config.id)\" is being stopped")) }
            guard s.sessions < config.maxSessions else {
                return .failure(.init(message: "\(config.maxSessions) sessions are open on \"\(config.id)\" (maxSessions); close one first"))
            }
            if config.shared {
                s.lingerTask?.cancel()
                s.lingerTask = nil
                let slot = s.shared ?? ProcessSlot(server: self, initializeParams: Self.supervisorInitializeParams, exclusive: false)
                s.shared = slot
                if config.eager { slot.setKeepRunning(true) }
                s.sessions += 1
                return .success(slot)
            }
            guard s.exclusiveSlots.count < config.maxProcesses else {
                return .failure(.init(message: "\(config.maxProcesses) processes of \"\(config.id)\" are running, one per session (maxProcesses); close a session first"))
            }
            s.sessions += 1
            if let spare = s.spare {
                s.spare = nil
                s.exclusiveSlots[ObjectIdentifier(spare)] = spare
                spare.setKeepRunning(false)
                // The next spare starts in the background: this session does not wait for it.
                Task { self.prepareSpare() }
                return .success(spare)
            }
            let slot = ProcessSlot(server: self, initializeParams: initializeParams, exclusive: true)
            s.exclusiveSlots[ObjectIdentifier(slot)] = slot
            return .success(slot)
        }
    }

    /// A session ended: its own process is stopped now; a shared one after `lingerTimeout`.
    func sessionEnded(_ client: any UpstreamClient, slot: ProcessSlot) async {
        let left = slot.detach(client)
        enum Then { case stop, linger, nothing }
        let then: Then = state.withLock { s in
            s.sessions = max(0, s.sessions - 1)
            if slot.exclusive {
                s.exclusiveSlots[ObjectIdentifier(slot)] = nil
                return .stop
            }
            return left == 0 && !config.eager ? .linger : .nothing
        }
        switch then {
        case .stop:
            await slot.stop(final: true)
            if config.eager { prepareSpare() }
        case .linger:
            let grace = Duration.milliseconds(Int64(config.lingerTimeout * 1000))
            let task = Task { [weak self] in
                do { try await Task.sleep(for: grace) } catch { return }
                guard let self, slot.clients == 0 else { return }
                self.log(.info, "shared process stopped: no session for \(formatSeconds(self.config.lingerTimeout))")
                await slot.stop(final: false)
            }
            state.withLock { s in s.lingerTask?.cancel(); s.lingerTask = task }
        case .nothing:
            break
        }
        changed()
    }

    /// With `eager` and one process per session: a process started ahead for the next session.
    private func prepareSpare() {
        let slot: ProcessSlot? = state.withLock { s in
            guard !s.stopped, s.spare == nil, config.eager, !config.shared else { return nil }
            let slot = ProcessSlot(server: self, initializeParams: Self.supervisorInitializeParams, exclusive: true)
            s.spare = slot
            return slot
        }
        guard let slot else { return }
        Task { _ = await slot.ready() }
    }

    // MARK: - Failures and restarts

    func recordFailure(_ why: String) -> RestartPolicy.Decision {
        let decision = state.withLock { s in
            s.lastFailure = why
            return s.policy.recordFailure()
        }
        if decision == .crashLoop {
            log(.error, "crash loop", ["maxRestarts": "\(config.maxRestarts)", "window": "\(config.restartWindow)", "last": why])
            stderr.note("crash loop: more than \(config.maxRestarts) failures within \(formatSeconds(config.restartWindow))")
        }
        changed()
        return decision
    }

    /// The delay before the next restart (the failure was recorded already), or nil in a crash loop.
    func restartDelay() -> Duration? {
        state.withLock { s in
            guard !s.policy.refusing(), !s.stopped else { return nil }
            return s.policy.currentDelay
        }
    }

    func restarted() { state.withLock { $0.policy.recordRestart() } }

    /// The message requests fail with at once during a crash loop (nil otherwise).
    func refusal() -> String? {
        let (refusing, last) = state.withLock { ($0.policy.refusing(), $0.lastFailure) }
        guard refusing else { return nil }
        return crashLoopMessage(last)
    }

    private func crashLoopMessage(_ last: String?) -> String {
        var m = "\"\(config.id)\" is in a crash loop (more than \(config.maxRestarts) failures within \(formatSeconds(config.restartWindow)))"
        if let last { m += "; last: \(last)" }
        let lines = stderr.lastLines(5).filter { !$0.hasPrefix("[supervisor]") }.suffix(3)
        if !lines.isEmpty { m += "; stderr: " + lines.joined(separator: " | ") }
        return m
    }

    func failureMessage(_ message: String, _ decision: RestartPolicy.Decision) -> String {
        decision == .crashLoop ? crashLoopMessage(message) : goneMessage(message)
    }

    /// `prefix` with the last stderr lines, for errors about a process that went away.
    func goneMessage(_ prefix: String) -> String {
        let lines = stderr.lastLines(6).filter { !$0.hasPrefix("[supervisor]") }.suffix(3)
        return lines.isEmpty ? prefix : prefix + "; stderr: " + lines.joined(separator: " | ")
    }

    /// A process answered `initialize`: the crash loop (if any) is over; capabilities are
    /// read from the first one.
    func processStarted(_ live: ProcessSlot.Live) async {
        let discover = state.withLock { s -> Bool in
            s.policy.recordSuccess()
            guard s.capabilities == nil, !s.discovering else { return false }
            s.discovering = true
            return true
        }
        if discover { await self.discover(live) }
        changed()
    }

    // MARK: - Capabilities

    static let supervisorInitializeParams =
        #"{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"peer-registry-supervise","version":"\#(PeerRegistryVersion.text)"}}"#

    /// Reads tools/list, resources/list (and templates) and prompts/list, following cursors.
    private func discover(_ live: ProcessSlot.Live) async {
        let offered = Self.offered(live.initializeResponse)
        var caps = Capabilities()
        let limits = registry.options.limits
        func collect(_ method: String, _ listKey: String, _ field: String) async -> [String] {
            var out: [String] = []
            var cursor: String?
            for _ in 0..<20 {
                let params = cursor.map { #"{"cursor":"# + String(decoding: JSONBytes.quote($0), as: UTF8.self) + "}" } ?? "{}"
                guard let m = try? RPCMessage(RPCMessage.request(id: 0, method: method, params: params)) else { break }
                let response = await live.connection.request(m, from: nil, timeout: requestTimeout)
                guard case .object(let top, _)? = try? PositionedJSON.parse(response),
                      case .object(let result, _)? = top.first(where: { $0.key == "result" })?.value else { break }
                if case .array(let items, _)? = result.first(where: { $0.key == listKey })?.value {
                    for case .object(let item, _) in items {
                        if case .string(var s, _)? = item.first(where: { $0.key == field })?.value {
                            if field == "uriTemplate", let brace = s.firstIndex(of: "{") { s = String(s[..<brace]) }
                            if !s.isEmpty, s.utf8.count <= limits.maxCapabilityBytes, !out.contains(s) { out.append(s) }
                        }
                    }
                }
                guard case .string(let next, _)? = result.first(where: { $0.key == "nextCursor" })?.value, !next.isEmpty else { break }
                cursor = next
            }
            return Array(out.prefix(limits.maxCapabilities))
        }
        if offered.tools { caps.tools = await collect("tools/list", "tools", "name") }
        if offered.resources {
            var r = await collect("resources/list", "resources", "uri")
            for t in await collect("resources/templates/list", "resourceTemplates", "uriTemplate") where !r.contains(t) { r.append(t) }
            caps.resources = Array(r.prefix(limits.maxCapabilities))
        }
        if offered.prompts { caps.prompts = await collect("prompts/list", "prompts", "name") }
        state.withLock { s in
            s.capabilities = caps
            s.discovering = false
        }
        log(.info, "capabilities", ["tools": "\(caps.tools.count)", "resources": "\(caps.resources.count)", "prompts": "\(caps.prompts.count)"])
    }

    /// Which lists the server's `initialize` result says it has.
    static func offered(_ response: RPCMessage) -> (tools: Bool, resources: Bool, prompts: Bool) {
        guard case .object(let top, _)? = try? PositionedJSON.parse(response.bytes),
              case .object(let result, _)? = top.first(where: { $0.key == "result" })?.value,
              case .object(let caps, _)? = result.first(where: { $0.key == "capabilities" })?.value else { return (true, true, true) }
        func has(_ k: String) -> Bool { caps.contains { $0.key == k } }
        return (has("tools"), has("resources"), has("prompts"))
    }

    static let listChangedMethods: Set<String> = [
        "notifications/tools/list_changed", "notifications/resources/list_changed", "notifications/prompts/list_changed",
    ]

    /// A tools/resources/prompts list_changed from a server: read the lists again (the entry
    /// keeps the old ones until then).
    func listsChanged(_ live: ProcessSlot.Live) {
        let start = state.withLock { s -> Bool in
            guard !s.discovering, !s.stopped else { return false }
            s.discovering = true
            return true
        }
        guard start else { return }
        Task {
            await discover(live)
            changed()
        }
    }

    // MARK: - Registry

    /// The supervisor's state in a word, for `metadata.supervisor.state`.
    func stateName() -> String {
        let (refusing, stopped, shared, exclusive, spare) = state.withLock { s in
            (s.policy.refusing(), s.stopped, s.shared, Array(s.exclusiveSlots.values), s.spare)
        }
        if stopped { return "stopping" }
        if refusing { return "crash-loop" }
        let slots = exclusive + [shared, spare].compactMap { $0 }
        if slots.contains(where: \.isRunning) { return "running" }
        if slots.contains(where: { $0.clients > 0 }) { return "restarting" }
        return "idle"
    }

    var processCount: Int {
        state.withLock { s in (Array(s.exclusiveSlots.values) + [s.shared, s.spare].compactMap { $0 }).filter(\.isRunning).count }
    }

    /// The registry entry as things stand.
    func entry() -> ServerEntry? {
        let (port, caps, refusing, last, restarts, sessions) = state.withLock { s in
            (s.port, s.capabilities, s.policy.refusing(), s.lastFailure, s.policy.restarts, s.sessions)
        }
        guard let port else { return nil }
        var health = Health(status: .unknown)
        let name = stateName()
        if refusing {
            health = Health(status: .down, message: String(crashLoopMessage(last).prefix(1000)))
        } else if name == "restarting" {
            health = Health(status: .degraded, message: String(goneMessage("restarting after: \(last ?? "a failure")").prefix(1000)))
        } else if caps != nil {
            health = Health(status: .healthy, message: name == "running" ? "running" : "idle: a process starts with the first session")
        } else if let last {
            health = Health(status: .degraded, message: String(goneMessage(last).prefix(1000)))
        }
        var entry = ServerEntry(
            id: config.id, name: config.name, url: Self.bridgeURL(port), port: port, transport: .http,
            liveness: .lease, capabilities: caps ?? Capabilities(), health: health, requiresSession: true,
            metadata: .object(JSONObject([("supervisor", .object(JSONObject([
                ("state", .string(name)), ("restarts", .int(restarts)), ("processes", .int(processCount)),
                ("sessions", .int(sessions)), ("shared", .bool(config.shared)), ("command", .string(String(config.command.prefix(200)))),
            ])))])))
        entry.headers = ["Authorization": "Bearer " + token.value]
        return entry
    }

    static func bridgeURL(_ port: Int) -> String { "http://127.0.0.1:\(port)/mcp" }

    /// Whether `entry` is this server's own: its id, its bridge's URL and its token.
    func isBehind(_ entry: ServerEntry) -> Bool {
        guard let port = state.withLock({ $0.stopped ? nil : $0.port }) else { return false }
        return entry.id == config.id && entry.url == Self.bridgeURL(port)
            && entry.headers?["Authorization"] == "Bearer " + token.value
    }

    /// Something changed: write the entry (coalesced: one write at a time, the latest state).
    func changed() {
        let start = state.withLock { s -> Bool in
            guard s.port != nil, !s.stopped else { return false }
            if s.publishing { s.dirty = true; return false }
            s.publishing = true
            return true
        }
        guard start else { return }
        Task.detached { [self] in
            while true {
                if let entry = entry() {
                    do {
                        try registry.register(entry)
                        state.withLock { $0.registered = true }
                    } catch {
                        log(.error, "cannot update the registry entry", ["error": "\(error)"])
                    }
                }
                let again = state.withLock { s -> Bool in
                    if s.dirty && !s.stopped { s.dirty = false; return true }
                    s.publishing = false
                    return false
                }
                if !again { return }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    // MARK: - Running

    /// The bridge's port once bound.
    public var port: Int? { state.withLock { $0.port } }

    func bound(port: Int) {
        state.withLock { $0.port = port }
        log(.info, "bridge listening", ["url": Self.bridgeURL(port)])
    }

    /// Starts a process to read capabilities, then registers; keeps it for `eager`.
    func startUp() async {
        let slot: ProcessSlot = state.withLock { s in
            if config.shared {
                let slot = ProcessSlot(server: self, initializeParams: Self.supervisorInitializeParams, exclusive: false)
                s.shared = slot
                return slot
            }
            let slot = ProcessSlot(server: self, initializeParams: Self.supervisorInitializeParams, exclusive: true)
            s.spare = slot
            return slot
        }
        if config.eager { slot.setKeepRunning(true) }
        changed()
        _ = await slot.ready()
        // Wait for discovery (processStarted runs it) before deciding about the process.
        if !config.eager {
            let isSpare = state.withLock { s -> Bool in
                guard s.spare === slot else { return false }
                s.spare = nil
                return true
            }
            if isSpare { await slot.stop(final: true) }
            else if config.shared, slot.clients == 0 { await slot.stop(final: false) }
        }
        changed()
    }

    /// Stops every process and removes the entry.
    func shutDown() async {
        let slots: [ProcessSlot] = state.withLock { s in
            s.stopped = true
            s.lingerTask?.cancel()
            let all = Array(s.exclusiveSlots.values) + [s.shared, s.spare].compactMap { $0 }
            s.exclusiveSlots = [:]
            s.shared = nil
            s.spare = nil
            return all
        }
        await withTaskGroup(of: Void.self) { group in
            for slot in slots { group.addTask { await slot.stop(final: true) } }
        }
        // Wait out a registry write in flight, then remove the entry.
        for _ in 0..<200 where state.withLock({ $0.publishing }) { try? await Task.sleep(for: .milliseconds(10)) }
        try? registry.unregister(config.id)
        log(.info, "stopped")
    }

    static func newToken() -> String {
        var rng = SystemRandomNumberGenerator()
        return (0..<4).map { _ in
            let s = String(rng.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }.joined()
    }
}
