import NIOCore
import RegistryKit
import RegistryServerPolicy
import Synchronization

/// Fans the registry's changes out to every Server-Sent-Events client.
///
/// One watch (`Registry.changes()`) feeds all clients, however many there are. The hub keeps
/// the live entries as of the last event it saw, so a client that connects gets the current state
/// at once, and an id for that state, so a client that reconnects with `Last-Event-ID` gets
/// nothing it already has.
///
/// Event ids: `<generation>-<epoch>` (`42-9f3c01ab`). When the live set changes without a write
/// (a registrant died and its lease was freed, a ttl entry expired), the generation stays the
/// same; such events get `42.1-9f3c01ab`, `42.2-...`, so that every state a client can have seen
/// has its own id. The epoch is new for every hub (every start of the server, every reopening of
/// a replaced registry directory), so an id from before a restart never matches: what changed
/// while the server was down comes as a full state.
///
/// Scope: a hub follows this machine's registry (`.local`), or that and the other machines'
/// entries the cluster agent mirrors (`.cluster`, `/events?scope=cluster`); entries are then
/// keyed by `node/id`, so the same id on two machines is two entries (docs/CLUSTER.md).
///
/// Memory: each message is encoded once into a `ByteBuffer` that every client shares; each
/// client may have `clientBufferBytes` of messages waiting (besides the one being written) and
/// is disconnected past that — its browser reconnects and gets the full state.
final class EventHub: Sendable {
    private struct Client {
        let continuation: AsyncStream<ByteBuffer>.Continuation
        let budget: ClientBudget
    }

    private struct State {
        /// The live entries by `clusterKey` (the id, or `node/id` for a remote one), and their
        /// order (file order, new ones appended).
        var servers: [String: ServerEntry] = [:]
        var order: [String] = []
        var generation: Int64 = -1
        var eventID = ""
        var sameGenerationCount = 0
        /// The current state as a `state` message, made when first needed after a change.
        var stateMessage: ByteBuffer?
        /// Why the registry cannot be read, while it cannot (a corrupt file, say).
        var failure: RegistryError?
        var ready = false
        var clients: [Int: Client] = [:]
        var nextToken = 0
        var shutDown = false
        var epoch: String
    }

    let source: RegistrySource
    let clientBufferBytes: Int
    /// Which entries the hub follows: this machine's, or the whole cluster's.
    let scope: EntryScope
    private let state: Mutex<State>

    init(source: RegistrySource, clientBufferBytes: Int, scope: EntryScope = .local) {
        self.source = source
        self.clientBufferBytes = clientBufferBytes
        self.scope = scope
        self.state = Mutex(State(epoch: Self.newEpoch()))
    }

    /// 32 random bits in hex.
    static func newEpoch() -> String {
        var rng = SystemRandomNumberGenerator()
        let s = String(rng.next() as UInt32, radix: 16)
        return String(repeating: "0", count: 8 - s.count) + s
    }

    /// How many SSE clients are connected.
    var clientCount: Int { state.withLock { $0.clients.count } }

    /// The id of the current state (what a client that is up to date last received).
    var currentEventID: String { state.withLock { $0.eventID } }

    /// This hub's epoch, the suffix of its event ids.
    var epoch: String { state.withLock { $0.epoch } }

    // MARK: - Clients

    /// One client's subscription: its messages, the budget its writer releases bytes to, and
    /// `cancel()` to drop it (its connection closed).
    struct Subscription: Sendable {
        let messages: AsyncStream<ByteBuffer>
        let budget: ClientBudget
        let cancel: @Sendable () -> Void
    }

    /// A stream of SSE messages for one client: first the current state (or nothing, when
    /// `lastEventID` names the current state), then every change, keep-alive comments and
    /// errors. Ends when the hub shuts down, the client is cancelled, or it exceeds its budget.
    func subscribe(lastEventID: String?) -> Subscription {
        let (stream, continuation) = AsyncStream<ByteBuffer>.makeStream(bufferingPolicy: .unbounded)
        let budget = ClientBudget(limit: clientBufferBytes)
        let token: Int? = state.withLock { s in
            guard !s.shutDown else { return nil }
            let token = s.nextToken
            s.nextToken += 1
            s.clients[token] = Client(continuation: continuation, budget: budget)
            Self.send(ByteBuffer(string: SSE.retry(milliseconds: 2000)), to: continuation, budget: budget)
            if let failure = s.failure {
                Self.send(ByteBuffer(string: SSE.error(failure)), to: continuation, budget: budget)
            } else if s.ready, lastEventID != s.eventID {
                Self.send(Self.stateMessage(&s), to: continuation, budget: budget)
            } else if s.ready {
                Self.send(ByteBuffer(string: SSE.comment("resumed at \(s.eventID)")), to: continuation, budget: budget)
            }
            return token
        }
        guard let token else {
            continuation.finish()
            return Subscription(messages: stream, budget: budget, cancel: {})
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = $0.clients.removeValue(forKey: token) }
        }
        return Subscription(messages: stream, budget: budget, cancel: { continuation.finish() })
    }

    private static func send(_ message: ByteBuffer, to continuation: AsyncStream<ByteBuffer>.Continuation, budget: ClientBudget) {
        _ = budget.reserve(message.readableBytes)
        continuation.yield(message)
    }

    /// Ends every client's stream (their responses end) and refuses new ones.
    func shutdown() {
        let clients = state.withLock { s in
            s.shutDown = true
            defer { s.clients = [:] }
            return Array(s.clients.values)
        }
        for c in clients { c.continuation.finish() }
    }

    /// Sends the message `update` makes to every client; clients over their byte budget are
    /// disconnected.
    private func broadcast(_ update: (inout State) -> ByteBuffer?) {
        let overflowed: [Client] = state.withLock { s in
            guard let message = update(&s) else { return [] }
            var dropped: [Client] = []
            for (token, c) in s.clients {
                // Yielding under the lock keeps each client's messages in order with its first one.
                if c.budget.reserve(message.readableBytes) {
                    c.continuation.yield(message)
                } else {
                    dropped.append(c)
                    s.clients[token] = nil
                }
            }
            return dropped
        }
        // finish() runs onTermination, which takes the lock: never under it.
        for c in overflowed { c.continuation.finish() }
    }

    // MARK: - Following the registry

    /// Follows the registry until cancelled: watches it, applies each change, and forwards it to
    /// the clients; sends a keep-alive comment every `keepAlive`. When the registry cannot be
    /// read (corrupt, say), clients get an `error` event and the hub retries every
    /// `retryInterval` until it can, then sends the full state. When the registry's directory
    /// is replaced (moved away and made again), the hub reopens it and starts a new epoch.
    func run(keepAlive: Duration, retryInterval: Duration = .seconds(1)) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.follow(retryInterval: retryInterval) }
            group.addTask {
                while (try? await Task.sleep(for: keepAlive)) != nil {
                    self.broadcast { _ in ByteBuffer(string: SSE.comment("keep-alive")) }
                }
            }
            await group.next()
            group.cancelAll()
        }
    }

    /// Reads the state once, so the first clients need not wait for the watch to start.
    func prime() {
        do throws(RegistryError) {
            let listing = try source.registry.list(ServerFilter(scope: scope))
            broadcast { s in Self.replace(&s, with: listing) }
        } catch {
            fail(error)
        }
    }

    private func follow(retryInterval: Duration) async {
        while !Task.isCancelled {
            let registry = source.registry
            let replaced: Bool = await withTaskGroup(of: Bool.self) { group in
                group.addTask { await self.followOnce(registry) }
                group.addTask {
                    // The watch follows the directory it was opened on: notice a new one (or
                    // that the other hub on this source already reopened it).
                    while (try? await Task.sleep(for: retryInterval)) != nil {
                        if self.source.isStale(registry) { return true }
                    }
                    return false
                }
                let first = await group.next() ?? false
                group.cancelAll()
                return first
            }
            if Task.isCancelled { return }
            if replaced {
                do throws(RegistryError) {
                    try source.reopen(replacing: registry)
                    state.withLock { s in
                        s.epoch = Self.newEpoch()
                        s.ready = false
                    }
                } catch {
                    fail(error)
                }
                continue
            }
            try? await Task.sleep(for: retryInterval)
        }
    }

    /// Watches `registry` until the watch fails or the task is cancelled; false when it ended.
    private func followOnce(_ registry: Registry) async -> Bool {
        do {
            // Watch first, then list: a change between the two shows up in both, and
            // applying it twice changes nothing.
            let changes = try registry.changes(ServerFilter(scope: scope))
            let listing = try registry.list(ServerFilter(scope: scope))
            broadcast { s in Self.replace(&s, with: listing) }
            for try await event in changes {
                broadcast { s in Self.apply(event, to: &s) }
            }
        } catch let error as RegistryError {
            fail(error)
        } catch {
            if !Task.isCancelled { fail(RegistryError(.io, "the registry watch failed: \(error)")) }
        }
        return false
    }

    private func fail(_ error: RegistryError) {
        broadcast { s in
            if s.failure == error { return nil }
            s.failure = error
            return ByteBuffer(string: SSE.error(error))
        }
    }

    /// Takes a full listing as the state; the message is a `state` event, or nothing when the
    /// state did not change (and the registry is readable).
    private static func replace(_ s: inout State, with listing: RegistryListing) -> ByteBuffer? {
        let recovered = s.failure != nil || !s.ready
        var servers: [String: ServerEntry] = [:]
        for e in listing.servers { servers[e.clusterKey] = EntrySecrets.redacted(e) }
        let order = listing.servers.map(\.clusterKey)
        let same = s.ready && servers == s.servers && order == s.order
        if same, !recovered, listing.generation == s.generation { return nil }
        s.failure = nil
        s.ready = true
        s.servers = servers
        s.order = order
        advanceID(&s, generation: listing.generation)
        return stateMessage(&s)
    }

    /// Applies a watch event (upserts `added` and `changed`, removes `removed`).
    private static func apply(_ event: RegistryEvent, to s: inout State) -> ByteBuffer? {
        let event = EntrySecrets.redacted(event)
        for e in event.added + event.changed {
            if s.servers.updateValue(e, forKey: e.clusterKey) == nil { s.order.append(e.clusterKey) }
        }
        for e in event.removed where s.servers.removeValue(forKey: e.clusterKey) != nil {
            s.order.removeAll { $0 == e.clusterKey }
        }
        advanceID(&s, generation: event.generation)
        return ByteBuffer(string: SSE.message(id: s.eventID, event: "change", data: event.jsonText))
    }

    private static func advanceID(_ s: inout State, generation: Int64) {
        s.stateMessage = nil
        if generation == s.generation {
            s.sameGenerationCount += 1
            s.eventID = "\(generation).\(s.sameGenerationCount)-\(s.epoch)"
        } else {
            s.generation = generation
            s.sameGenerationCount = 0
            s.eventID = "\(generation)-\(s.epoch)"
        }
    }

    /// The `state` message of the current state, encoded once per state.
    private static func stateMessage(_ s: inout State) -> ByteBuffer {
        if let cached = s.stateMessage { return cached }
        let listing = RegistryListing(generation: max(0, s.generation), servers: s.order.compactMap { s.servers[$0] })
        let message = ByteBuffer(string: SSE.message(id: s.eventID, event: "state", data: listing.jsonText))
        s.stateMessage = message
        return message
    }
}

/// Formats Server-Sent Events (https://html.spec.whatwg.org/multipage/server-sent-events.html).
enum SSE {
    /// One event. `data` must be one line (compact JSON is).
    static func message(id: String, event: String, data: String) -> String {
        "id: \(id)\nevent: \(event)\ndata: \(data)\n\n"
    }

    /// A `registry-error` event, `{"error":"...","code":"PEERREG_ECORRUPT"}` (not `error`, the
    /// name EventSource gives its own connection failures). It has no id, so a client that
    /// reconnects still names the last state it has.
    static func error(_ error: RegistryError) -> String {
        "event: registry-error\ndata: \(HTTPJSON.errorBody(error.message, code: error.code.name))\n\n"
    }

    /// A comment line: ignored by EventSource, keeps proxies and idle timers from closing the stream.
    static func comment(_ text: String) -> String { ": \(text)\n\n" }

    /// How long a browser waits before reconnecting.
    static func retry(milliseconds: Int) -> String { "retry: \(milliseconds)\n\n" }
}
