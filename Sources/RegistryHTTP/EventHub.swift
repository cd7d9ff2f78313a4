import RegistryKit
import Synchronization

/// Fans the registry's changes out to every Server-Sent-Events client.
///
/// One watch (`Registry.changes()`) feeds all clients, however many there are. The hub keeps
/// the live entries as of the last event it saw, so a client that connects gets the current state
/// at once, and an id for that state, so a client that reconnects with `Last-Event-ID` gets
/// nothing it already has.
///
/// Event ids: the file generation (`42`). When the live set changes without a write (a
/// registrant died and its lease was freed, a ttl entry expired), the generation stays the same;
/// such events get `42.1`, `42.2`, ... so that every state a client can have seen has its own id.
final class EventHub: Sendable {
    /// How many messages may wait for one slow client before it is disconnected (its browser
    /// reconnects at once and gets the full state, so nothing is lost but the backlog).
    static let clientBacklog = 256

    private struct State {
        /// The live entries by id, and their order (file order, new ones appended).
        var servers: [String: ServerEntry] = [:]
        var order: [String] = []
        var generation: Int64 = -1
        var eventID = ""
        var sameGenerationCount = 0
        /// Why the registry cannot be read, while it cannot (a corrupt file, say).
        var failure: RegistryError?
        var ready = false
        var clients: [Int: AsyncStream<String>.Continuation] = [:]
        var nextToken = 0
        var shutDown = false
    }

    let registry: Registry
    private let state = Mutex(State())

    init(registry: Registry) {
        self.registry = registry
    }

    /// How many SSE clients are connected.
    var clientCount: Int { state.withLock { $0.clients.count } }

    /// The id of the current state (what a client that is up to date last received).
    var currentEventID: String { state.withLock { $0.eventID } }

    // MARK: - Clients

    /// A stream of SSE messages for one client: first the current state (or nothing, when
    /// `lastEventID` names the current state), then every change, keep-alive comments and
    /// errors. Ends when the hub shuts down or the client falls too far behind.
    func subscribe(lastEventID: String?) -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingOldest(Self.clientBacklog))
        let token: Int? = state.withLock { s in
            guard !s.shutDown else { return nil }
            let token = s.nextToken
            s.nextToken += 1
            s.clients[token] = continuation
            continuation.yield(SSE.retry(milliseconds: 2000))
            if let failure = s.failure {
                continuation.yield(SSE.error(failure))
            } else if s.ready, lastEventID != s.eventID {
                continuation.yield(SSE.message(id: s.eventID, event: "state", data: Self.stateJSON(s)))
            } else if s.ready {
                continuation.yield(SSE.comment("resumed at \(s.eventID)"))
            }
            return token
        }
        guard let token else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = $0.clients.removeValue(forKey: token) }
        }
        return stream
    }

    /// Ends every client's stream (their responses end) and refuses new ones.
    func shutdown() {
        let clients = state.withLock { s in
            s.shutDown = true
            defer { s.clients = [:] }
            return Array(s.clients.values)
        }
        for c in clients { c.finish() }
    }

    /// Sends `message` to every client; clients whose backlog is full are disconnected.
    private func broadcast(_ update: (inout State) -> String?) {
        let overflowed: [AsyncStream<String>.Continuation] = state.withLock { s in
            guard let message = update(&s) else { return [] }
            var dropped: [AsyncStream<String>.Continuation] = []
            for (token, c) in s.clients {
                // Yielding under the lock keeps each client's messages in order with its first one.
                if case .dropped = c.yield(message) {
                    dropped.append(c)
                    s.clients[token] = nil
                }
            }
            return dropped
        }
        // finish() runs onTermination, which takes the lock: never under it.
        for c in overflowed { c.finish() }
    }

    // MARK: - Following the registry

    /// Follows the registry until cancelled: watches it, applies each change, and forwards it to
    /// the clients; sends a keep-alive comment every `keepAlive`. When the registry cannot be
    /// read (corrupt, say), clients get an `error` event and the hub retries every
    /// `retryInterval` until it can, then sends the full state.
    func run(keepAlive: Duration, retryInterval: Duration = .seconds(1)) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.follow(retryInterval: retryInterval) }
            group.addTask {
                while (try? await Task.sleep(for: keepAlive)) != nil {
                    self.broadcast { _ in SSE.comment("keep-alive") }
                }
            }
            await group.next()
            group.cancelAll()
        }
    }

    /// Reads the state once, so the first clients need not wait for the watch to start.
    func prime() {
        do throws(RegistryError) {
            let listing = try registry.list()
            broadcast { s in Self.replace(&s, with: listing) }
        } catch {
            fail(error)
        }
    }

    private func follow(retryInterval: Duration) async {
        while !Task.isCancelled {
            do {
                // Watch first, then list: a change between the two shows up in both, and
                // applying it twice changes nothing.
                let changes = try registry.changes()
                let listing = try registry.list()
                broadcast { s in Self.replace(&s, with: listing) }
                for try await event in changes {
                    broadcast { s in Self.apply(event, to: &s) }
                }
                if Task.isCancelled { return }
            } catch let error as RegistryError {
                fail(error)
            } catch {
                fail(RegistryError(.io, "the registry watch failed: \(error)"))
            }
            try? await Task.sleep(for: retryInterval)
        }
    }

    private func fail(_ error: RegistryError) {
        broadcast { s in
            if s.failure == error { return nil }
            s.failure = error
            return SSE.error(error)
        }
    }

    /// Takes a full listing as the state; the message is a `state` event, or nothing when the
    /// state did not change (and the registry is readable).
    private static func replace(_ s: inout State, with listing: RegistryListing) -> String? {
        let recovered = s.failure != nil || !s.ready
        var servers: [String: ServerEntry] = [:]
        for e in listing.servers { servers[e.id] = e }
        let order = listing.servers.map(\.id)
        let same = s.ready && servers == s.servers && order == s.order
        if same, !recovered, listing.generation == s.generation { return nil }
        s.failure = nil
        s.ready = true
        s.servers = servers
        s.order = order
        advanceID(&s, generation: listing.generation)
        return SSE.message(id: s.eventID, event: "state", data: stateJSON(s))
    }

    /// Applies a watch event (upserts `added` and `changed`, removes `removed`).
    private static func apply(_ event: RegistryEvent, to s: inout State) -> String? {
        for e in event.added + event.changed {
            if s.servers.updateValue(e, forKey: e.id) == nil { s.order.append(e.id) }
        }
        for e in event.removed where s.servers.removeValue(forKey: e.id) != nil {
            s.order.removeAll { $0 == e.id }
        }
        advanceID(&s, generation: event.generation)
        return SSE.message(id: s.eventID, event: "change", data: event.jsonText)
    }

    private static func advanceID(_ s: inout State, generation: Int64) {
        if generation == s.generation {
            s.sameGenerationCount += 1
            s.eventID = "\(generation).\(s.sameGenerationCount)"
        } else {
            s.generation = generation
            s.sameGenerationCount = 0
            s.eventID = "\(generation)"
        }
    }

    /// `{"generation":N,"servers":[...]}` of the hub's state, as `GET /servers` would give it.
    private static func stateJSON(_ s: State) -> String {
        // RegistryListing has no public initializer: the same JSON, built the same way.
        JSONValue.object(JSONObject([
            ("generation", .int(max(0, s.generation))),
            ("servers", .array(s.order.compactMap { s.servers[$0].map { .object($0.jsonObject) } })),
        ])).jsonText
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
