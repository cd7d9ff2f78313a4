import AsyncHTTPClient
import Logging
import NIOCore
import RegistryKit
import ServiceLifecycle

/// How an agent is set up (`peer-registry agent`).
public struct ClusterAgentConfiguration: Sendable {
    /// etcd client URLs (`http://host:2379`), tried in order; the first that answers is used.
    public var endpoints: [String]
    /// This machine's name in the cluster (default: the host name).
    public var node: String
    /// The host other machines reach this one's servers at; loopback URLs are rewritten to it.
    /// Nil: loopback entries are not published (with a note in the log).
    public var advertise: String?
    /// The etcd key prefix under which every agent publishes (`<prefix><node>/<id>`).
    public var prefix: String
    /// The TTL of the agent's etcd lease, in seconds: how long this machine's entries outlive a
    /// killed agent. Kept alive every TTL/3.
    public var leaseTTL: Int
    /// The registry file (nil: the default).
    public var registryPath: String?
    /// Per-request timeout towards etcd.
    public var requestTimeout: Duration

    public init(endpoints: [String], node: String, advertise: String? = nil, prefix: String = "/peer-registry/v1/",
                leaseTTL: Int = 10, registryPath: String? = nil, requestTimeout: Duration = .seconds(2)) {
        self.endpoints = endpoints
        self.node = node
        self.advertise = advertise
        self.prefix = prefix
        self.leaseTTL = leaseTTL
        self.registryPath = registryPath
        self.requestTimeout = requestTimeout
    }

    /// Checks what a bad configuration would break; the message says which option.
    public func validate() throws(RegistryError) {
        guard !endpoints.isEmpty else { throw RegistryError(.invalid, "--etcd: give at least one etcd URL") }
        for e in endpoints where !(e.hasPrefix("http://") || e.hasPrefix("https://")) || URLHost(e) == nil {
            throw RegistryError(.invalid, "--etcd \(e.prefix(200)): an etcd client URL looks like http://127.0.0.1:2379")
        }
        guard ServerEntry.isValidNodeName(node) else {
            throw RegistryError(.invalid, "--node \(node.prefix(80)): a node name is 1-64 of A-Z a-z 0-9 _ - (starting with a letter or digit)")
        }
        if let advertise {
            guard !advertise.isEmpty, !advertise.contains(where: { $0 == "/" || $0 == "@" || $0 == " " || $0 == "?" || $0 == "#" }) else {
                throw RegistryError(.invalid, "--advertise \(advertise.prefix(80)): give a host name or an address, without scheme or port")
            }
        }
        guard prefix.hasPrefix("/"), prefix.hasSuffix("/"), prefix.utf8.count <= 256 else {
            throw RegistryError(.invalid, "--prefix \(prefix.prefix(80)): a key prefix starts and ends with /")
        }
        guard (2...3600).contains(leaseTTL) else { throw RegistryError(.invalid, "--lease-ttl \(leaseTTL): use 2 to 3600 seconds") }
    }
}

/// One machine's cluster agent (docs/CLUSTER.md): publishes this machine's `"scope":"cluster"`
/// entries to etcd under one lease it keeps alive, follows the local registry through its watch,
/// and mirrors every other node's entries into the cluster view beside the registry.
///
/// Failure behaviour: killed → its lease expires and its entries vanish elsewhere within the
/// TTL; etcd unreachable → the view keeps the last state marked stale, retries with backoff
/// (100 ms doubling to 5 s), and on return re-reads everything at one revision (anti-entropy)
/// and republishes; a lost member → the next endpoint is tried at once, the lease kept.
public final class ClusterAgent: Service, Sendable {
    public let configuration: ClusterAgentConfiguration
    private let logger: Logger

    public init(configuration: ClusterAgentConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    public func run() async throws {
        let config = configuration
        try config.validate()
        let registry = try Registry(path: config.registryPath)
        defer { registry.close() }
        let view = try ClusterViewWriter(registryPath: registry.path)
        defer { view.close() }
        var httpConfig = HTTPClient.Configuration()
        httpConfig.timeout = .init(connect: .milliseconds(Int64(min(1000, config.requestTimeout.milliseconds))))
        httpConfig.connectionPool.idleTimeout = .seconds(60)
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfig)
        let state = AgentState(config: config, logger: logger)
        let (localSignal, localContinuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let (viewSignal, viewContinuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        await state.setSignals(local: localContinuation, view: viewContinuation)
        logger.info("cluster agent starting", metadata: [
            "node": "\(config.node)", "etcd": "\(config.endpoints.joined(separator: ","))", "registry": "\(registry.path)",
            "view": "\(view.path)", "leaseTTL": "\(config.leaseTTL)",
        ])
        // Until etcd answers, this agent knows no remote entry (a killed predecessor's view is
        // not vouched for by anyone).
        try? view.write(node: config.node, etcd: .unreachable, revision: 0, servers: [])
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.followLocal(registry, state) }
                group.addTask { await self.publishLoop(localSignal, state) }
                group.addTask { await self.viewLoop(viewSignal, view, state) }
                group.addTask { await self.sessionLoop(http, state) }
                await group.next()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            localContinuation.finish()
            viewContinuation.finish()
        }
        // Stopping: withdraw at once rather than at lease expiry.
        if let (client, lease) = await state.currentSession(http: http) {
            do {
                try await client.revokeLease(lease)
                logger.info("cluster agent stopped; lease revoked, entries withdrawn", metadata: ["lease": "\(lease)"])
            } catch {
                logger.warning("could not revoke the lease; entries vanish when it expires", metadata: ["error": "\(error)"])
            }
        }
        try? await http.shutdown()
    }

    // MARK: Local registry → etcd

    /// Recomputes what to publish on every change of the local registry (its watch).
    private func followLocal(_ registry: Registry, _ state: AgentState) async {
        while !Task.isCancelled {
            do {
                let changes = try registry.changes()
                await state.localChanged(try registry.list())
                for try await _ in changes {
                    await state.localChanged(try registry.list())
                }
                return
            } catch {
                if Task.isCancelled { return }
                // A corrupt or unreadable registry: keep publishing what it last held.
                logger.error("cannot follow the local registry; retrying in 1 s", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Puts and deletes until etcd holds exactly what the local registry publishes.
    private func publishLoop(_ signal: AsyncStream<Void>, _ state: AgentState) async {
        for await _ in signal {
            while let step = await state.nextPublishStep() {
                do {
                    switch step.action {
                    case .put(let value): try await step.client.put(step.key, value, lease: step.lease)
                    case .delete: try await step.client.delete(step.key)
                    }
                    await state.published(step)
                } catch {
                    // A member gone is noticed by the session too, whose restart republishes all;
                    // otherwise try again shortly.
                    logger.warning("publishing to etcd failed; retrying", metadata: ["key": "\(step.key)", "error": "\(error)"])
                    try? await Task.sleep(for: .milliseconds(200))
                    await state.retryPublishing()
                    break
                }
            }
        }
    }

    // MARK: etcd → the view

    /// Writes the view when it changed, at most every 5 ms (bursts of events coalesce).
    private func viewLoop(_ signal: AsyncStream<Void>, _ view: ClusterViewWriter, _ state: AgentState) async {
        for await _ in signal {
            let (etcd, revision, servers) = await state.viewContents()
            do {
                try view.write(node: configuration.node, etcd: etcd, revision: revision, servers: servers)
            } catch {
                logger.error("cannot write the cluster view", metadata: ["view": "\(view.path)", "error": "\(error)"])
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    // MARK: Sessions

    /// Connects to one member after the other; backs off only when every member failed in a row.
    private func sessionLoop(_ http: HTTPClient, _ state: AgentState) async {
        let endpoints = configuration.endpoints
        var index = 0
        var failuresInRow = 0
        var backoff = Duration.milliseconds(100)
        while !Task.isCancelled {
            let endpoint = endpoints[index % endpoints.count]
            let client = EtcdClient(http: http, endpoint: endpoint, timeout: .nanoseconds(Int64(configuration.requestTimeout.milliseconds) * 1_000_000))
            var established = false
            do {
                try await session(client, state) { established = true }
            } catch {
                if Task.isCancelled { return }
                logger.warning("etcd session ended", metadata: ["endpoint": "\(endpoint)", "error": "\(error)"])
            }
            await state.sessionEnded()
            if established {
                failuresInRow = 0
                backoff = .milliseconds(100)
            }
            failuresInRow += 1
            index += 1
            if failuresInRow >= endpoints.count {
                await state.markUnreachable()
                let jitter = Duration.milliseconds(Int64.random(in: 0...max(1, backoff.milliseconds / 5)))
                try? await Task.sleep(for: backoff + jitter)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
    }

    /// One connection to one member: (re)uses the lease, reads everything at one revision,
    /// republishes, then keeps the lease alive and watches from that revision on, until
    /// something fails.
    private func session(_ client: EtcdClient, _ state: AgentState, established: () -> Void) async throws {
        let ttl = configuration.leaseTTL
        var lease = await state.lease
        if let l = lease, try await client.keepAlive(lease: l) <= 0 {
            logger.info("the lease expired while etcd was away; granting a new one", metadata: ["lease": "\(l)"])
            lease = nil
        }
        let current: Int64
        if let lease {
            current = lease
        } else {
            current = try await client.grantLease(ttl: ttl)
        }
        let (kvs, revision) = try await client.rangePrefix(configuration.prefix)
        await state.resynced(client: client, lease: current, kvs: kvs, revision: revision)
        established()
        logger.info("connected to etcd", metadata: ["endpoint": "\(client.endpoint)", "lease": "\(current)", "revision": "\(revision)", "keys": "\(kvs.count)"])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while true {
                    try await Task.sleep(for: .milliseconds(Int64(ttl) * 1000 / 3))
                    guard try await client.keepAlive(lease: current) > 0 else {
                        throw EtcdError("lease \(current) expired (etcd did not hear from this agent within \(ttl) s)")
                    }
                }
            }
            group.addTask {
                try await client.watchPrefix(self.configuration.prefix, from: revision + 1) { events, revision in
                    await state.remoteEvents(events, revision: revision)
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }
}

extension Duration {
    var milliseconds: Int64 {
        let c = components
        return c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000
    }
}

/// The agent's state, one actor so sessions, the publisher and the view writer agree.
actor AgentState {
    let config: ClusterAgentConfiguration
    let logger: Logger
    private(set) var lease: Int64?
    private var client: EtcdClient?
    /// What the local registry wants published: id → entry JSON.
    private var desired: [String: String] = [:]
    /// What etcd holds for this node under the current lease: id → entry JSON.
    private var publishedValues: [String: String] = [:]
    /// Refusals already logged (id → note), so a note is logged once per entry and reason.
    private var noted: [String: String] = [:]
    /// The other nodes' entries by `node/id`.
    private var remote: [String: ServerEntry] = [:]
    private var revision: Int64 = 0
    private var etcd: ClusterView.EtcdState = .unreachable
    private var localSignal: AsyncStream<Void>.Continuation?
    private var viewSignal: AsyncStream<Void>.Continuation?

    init(config: ClusterAgentConfiguration, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    func setSignals(local: AsyncStream<Void>.Continuation, view: AsyncStream<Void>.Continuation) {
        localSignal = local
        viewSignal = view
    }

    private var ownPrefix: String { config.prefix + config.node + "/" }

    // Local side.

    func localChanged(_ listing: RegistryListing) {
        var next: [String: String] = [:]
        for entry in listing.servers {
            switch Publication.outcome(entry, advertise: config.advertise) {
            case .publish(let json)?:
                next[entry.id] = json
                noted[entry.id] = nil
            case .refused(let note)?:
                if noted[entry.id] != note {
                    logger.warning("not published", metadata: ["id": "\(entry.id)", "why": "\(note)"])
                    noted[entry.id] = note
                }
            case nil:
                break
            }
        }
        guard next != desired else { return }
        desired = next
        localSignal?.yield()
    }

    struct PublishStep: Sendable {
        enum Action: Sendable { case put(String), delete }
        var client: EtcdClient
        var lease: Int64
        var id: String
        var key: String
        var action: Action
    }

    /// The next put or delete that brings etcd to `desired`, or nil when it is there (or there
    /// is no session).
    func nextPublishStep() -> PublishStep? {
        guard let client, let lease else { return nil }
        for (id, value) in desired where publishedValues[id] != value {
            return PublishStep(client: client, lease: lease, id: id, key: ownPrefix + id, action: .put(value))
        }
        for id in publishedValues.keys where desired[id] == nil {
            return PublishStep(client: client, lease: lease, id: id, key: ownPrefix + id, action: .delete)
        }
        return nil
    }

    func published(_ step: PublishStep) {
        guard step.lease == lease else { return }
        switch step.action {
        case .put(let value): publishedValues[step.id] = value
        case .delete: publishedValues[step.id] = nil
        }
    }

    func retryPublishing() {
        localSignal?.yield()
    }

    // Sessions.

    func currentSession(http: HTTPClient) -> (EtcdClient, Int64)? {
        guard let lease else { return nil }
        let endpoint = client?.endpoint ?? config.endpoints[0]
        return (EtcdClient(http: http, endpoint: endpoint, timeout: .seconds(2)), lease)
    }

    /// A new session read everything at `revision`: the view is replaced by what etcd holds
    /// (entries that vanished while we were away go, none is duplicated), and this node's own
    /// keys under the current lease count as published — the rest is republished.
    func resynced(client: EtcdClient, lease: Int64, kvs: [EtcdKeyValue], revision: Int64) {
        if lease != self.lease { publishedValues = [:] }
        self.client = client
        self.lease = lease
        self.revision = revision
        var fresh: [String: ServerEntry] = [:]
        var own: [String: String] = [:]
        for kv in kvs {
            guard let (node, id) = parseKey(kv.key) else { continue }
            if node == config.node {
                if kv.lease == lease { own[id] = String(decoding: kv.value, as: UTF8.self) }
                continue
            }
            if let entry = remoteEntry(node: node, id: id, value: kv.value) { fresh[node + "/" + id] = entry }
        }
        // Keys of this node under another (an expired or a previous agent's) lease are rewritten
        // under this one: put replaces them; ones no longer wanted are deleted.
        for kv in kvs {
            if let (node, id) = parseKey(kv.key), node == config.node, kv.lease != lease, own[id] == nil {
                own[id] = "\u{0}stale"  // never equal to a wanted value: rewritten or deleted
            }
        }
        publishedValues = own
        remote = fresh
        etcd = .connected
        viewSignal?.yield()
        localSignal?.yield()
    }

    func sessionEnded() {
        client = nil
    }

    func markUnreachable() {
        guard etcd != .unreachable else { return }
        etcd = .unreachable
        logger.warning("etcd unreachable: keeping the last view, marked stale", metadata: ["entries": "\(remote.count)"])
        viewSignal?.yield()
    }

    func remoteEvents(_ events: [EtcdEvent], revision: Int64) {
        self.revision = max(self.revision, revision)
        var changed = false
        for event in events {
            switch event {
            case .put(let kv):
                guard let (node, id) = parseKey(kv.key) else { continue }
                if node == config.node { continue }
                if let entry = remoteEntry(node: node, id: id, value: kv.value) {
                    remote[node + "/" + id] = entry
                } else {
                    remote[node + "/" + id] = nil
                }
                changed = true
            case .delete(let key, _):
                guard let (node, id) = parseKey(key) else { continue }
                if node == config.node {
                    // Someone deleted a key this agent still wants: put it back (anti-entropy).
                    if desired[id] != nil, publishedValues[id] != nil {
                        publishedValues[id] = nil
                        localSignal?.yield()
                    }
                    continue
                }
                if remote.removeValue(forKey: node + "/" + id) != nil { changed = true }
            }
        }
        if changed { viewSignal?.yield() }
    }

    func viewContents() -> (ClusterView.EtcdState, Int64, [ServerEntry]) {
        let servers = remote.keys.sorted().compactMap { remote[$0] }
        return (etcd, revision, Array(servers.prefix(RegistryLimits.default.maxEntries)))
    }

    // Keys and values.

    private func parseKey(_ key: String) -> (node: String, id: String)? {
        guard key.hasPrefix(config.prefix) else { return nil }
        let rest = key.dropFirst(config.prefix.count)
        guard let slash = rest.firstIndex(of: "/") else { return nil }
        let node = String(rest[..<slash]), id = String(rest[rest.index(after: slash)...])
        guard ServerEntry.isValidNodeName(node), ServerEntry.isValidID(id) else { return nil }
        return (node, id)
    }

    /// A remote entry from its etcd value, validated as `register` validates; nil (logged) for
    /// garbage, so a bad value from one node never breaks the view.
    private func remoteEntry(node: String, id: String, value: [UInt8]) -> ServerEntry? {
        guard let text = String(validating: value, as: UTF8.self) else {
            logger.warning("ignoring a remote entry that is not UTF-8", metadata: ["node": "\(node)", "id": "\(id)"])
            return nil
        }
        do throws(RegistryError) {
            var entry = try ServerEntry(jsonText: text)
            guard entry.id == id else {
                logger.warning("ignoring a remote entry whose id does not match its key", metadata: ["node": "\(node)", "id": "\(id)"])
                return nil
            }
            entry.node = node
            entry.headers = nil
            return entry
        } catch {
            logger.warning("ignoring an invalid remote entry", metadata: ["node": "\(node)", "id": "\(id)", "error": "\(error.message.prefix(200))"])
            return nil
        }
    }
}
