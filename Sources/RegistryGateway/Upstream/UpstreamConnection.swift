import NIOCore
import Synchronization

/// Someone downstream of an upstream connection: a client session of the bridge (or of the
/// gateway). Gets what the server sends that is not the answer to one of its requests.
public protocol UpstreamClient: AnyObject, Sendable {
    /// A notification, or a request from the server (sampling, roots, elicitation), for this client.
    func deliver(_ message: [UInt8])
}

/// A JSON-RPC connection to one MCP server process, shared by any number of clients.
///
/// Every request is sent with an id of the connection's own (and, when it asks for progress,
/// that number as its progress token too), so requests of different clients never collide and
/// each response, progress notification and cancellation goes back to the client that made the
/// request, with its own id and token restored. A request gets exactly one answer: the server's,
/// or a JSON-RPC error when it times out, is cancelled, or the process goes away — never a hang.
public final class UpstreamConnection: Sendable {
    private struct Pending {
        var client: ObjectIdentifier?
        var originalID: [UInt8]
        var originalToken: [UInt8]?
        var continuation: CheckedContinuation<[UInt8], Never>
        var deadline: ContinuousClock.Instant
        var timeout: Duration
        var timeoutOption: String
        var progress: (@Sendable ([UInt8]) -> Void)?
    }

    private struct ClientRef {
        weak var client: (any UpstreamClient)?
    }

    private struct State {
        var nextID: UInt64 = 1
        var pending: [UInt64: Pending] = [:]
        var clients: [ObjectIdentifier: ClientRef] = [:]
        /// Requests the server made, by the id it gave them, and which client got each.
        var serverRequests: [[UInt8]: ObjectIdentifier] = [:]
        var closedReason: String?
        /// Checks deadlines every `sweepInterval` while requests are pending: one timer per
        /// connection instead of one per request.
        var sweeper: RepeatedTask?
    }

    /// How often overdue requests are looked for (a timeout fires up to this much late).
    static let sweepInterval = TimeAmount.milliseconds(100)

    private let state = Mutex(State())
    private let observer = Mutex<(@Sendable (RPCMessage) -> Void)?>(nil)
    private let sendMessage: @Sendable ([UInt8]) -> Void
    private let eventLoop: any EventLoop
    /// One client at a time (per-session mode): requests from the server go to it. With several
    /// clients (shared mode) the server's own requests are refused, since nobody can tell which
    /// client they are for.
    public let exclusive: Bool

    /// - Parameters:
    ///   - send: writes one message to the server.
    ///   - eventLoop: where request timeouts are scheduled.
    public init(exclusive: Bool, eventLoop: any EventLoop, send: @escaping @Sendable ([UInt8]) -> Void) {
        self.exclusive = exclusive
        self.eventLoop = eventLoop
        self.sendMessage = send
    }

    deinit {
        state.withLock { $0.sweeper?.cancel() }
    }

    /// Also gives every notification from the server to `observe` (the supervisor watches for
    /// `notifications/*/list_changed`).
    public func observeNotifications(_ observe: @escaping @Sendable (RPCMessage) -> Void) {
        observer.withLock { $0 = observe }
    }

    /// Attaches a client (held weakly) so it gets notifications.
    public func attach(_ client: any UpstreamClient) {
        state.withLock { $0.clients[ObjectIdentifier(client)] = ClientRef(client: client) }
    }

    public func detach(_ client: any UpstreamClient) {
        let id = ObjectIdentifier(client)
        let orphaned: [Pending] = state.withLock { s in
            s.clients[id] = nil
            let mine = s.pending.filter { $0.value.client == id }
            for key in mine.keys { s.pending[key] = nil }
            return Array(mine.values)
        }
        for p in orphaned {
            p.continuation.resume(returning: RPCMessage.error(id: p.originalID, code: RPCErrorCode.requestCancelled, message: "the session ended"))
        }
    }

    public var clientCount: Int { state.withLock { $0.clients.values.filter { $0.client != nil }.count } }
    public var pendingCount: Int { state.withLock { $0.pending.count } }
    public var isClosed: Bool { state.withLock { $0.closedReason != nil } }

    /// Sends a request and waits for its answer: the server's response with the caller's id,
    /// or a JSON-RPC error (timeout, cancellation of the calling task, the process gone).
    /// - Parameter progress: gets the request's progress notifications (token restored); without
    ///   it they go to the client's `deliver`.
    public func request(
        _ message: RPCMessage, from client: (any UpstreamClient)?, timeout: Duration,
        timeoutOption: String = "requestTimeout", progress: (@Sendable ([UInt8]) -> Void)? = nil
    ) async -> [UInt8] {
        let originalID = message.id ?? Array("null".utf8)
        let clientID = client.map { ObjectIdentifier($0) }
        let tokenRange = message.progressTokenRange
        let number = state.withLock { s -> UInt64 in
            let n = s.nextID
            s.nextID &+= 1
            return n
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[UInt8], Never>) in
                var replacements: [(Range<Int>, [UInt8])] = []
                let numberText = Array(String(number).utf8)
                if let idRange = message.idRange { replacements.append((idRange, numberText)) }
                var originalToken: [UInt8]?
                if let tokenRange {
                    originalToken = Array(message.bytes[tokenRange])
                    replacements.append((tokenRange, numberText))
                }
                let closed: String? = state.withLock { s in
                    if let reason = s.closedReason { return reason }
                    s.pending[number] = Pending(client: clientID, originalID: originalID, originalToken: originalToken,
                                                continuation: continuation, deadline: .now + timeout, timeout: timeout,
                                                timeoutOption: timeoutOption, progress: progress)
                    if s.sweeper == nil {
                        s.sweeper = eventLoop.scheduleRepeatedTask(initialDelay: Self.sweepInterval, delay: Self.sweepInterval) { [weak self] _ in
                            self?.sweep()
                        }
                    }
                    return nil
                }
                if let closed {
                    continuation.resume(returning: RPCMessage.error(id: originalID, code: RPCErrorCode.serverUnavailable, message: closed))
                    return
                }
                sendMessage(message.replacing(replacements))
                if Task.isCancelled {
                    abandon(number, code: RPCErrorCode.requestCancelled, message: "the request was cancelled", tellServer: "cancelled by the client")
                }
            }
        } onCancel: {
            self.abandon(number, code: RPCErrorCode.requestCancelled, message: "the request was cancelled", tellServer: "cancelled by the client")
        }
    }

    /// A notification from a client: `notifications/cancelled` is mapped to the server's id of
    /// that request (and the request answered with an error at once); others pass as they are.
    public func notify(_ message: RPCMessage, from client: (any UpstreamClient)?) {
        if message.method == "notifications/cancelled", let range = message.paramRange("requestId") {
            let raw = Array(message.bytes[range])
            let clientID = client.map { ObjectIdentifier($0) }
            let number: UInt64? = state.withLock { s in
                s.pending.first(where: { $0.value.client == clientID && $0.value.originalID == raw })?.key
            }
            guard let number else { return }  // already answered: nothing to cancel
            sendMessage(message.replacing([(range, Array(String(number).utf8))]))
            abandon(number, code: RPCErrorCode.requestCancelled, message: "the request was cancelled", tellServer: nil)
            return
        }
        sendMessage(message.bytes)
    }

    /// A client's response to a request the server made.
    public func respond(_ message: RPCMessage, from client: (any UpstreamClient)?) {
        if let id = message.id { _ = state.withLock { $0.serverRequests.removeValue(forKey: id) } }
        sendMessage(message.bytes)
    }

    /// Sends a message as it is (the supervisor's own notifications, e.g. `notifications/initialized`).
    public func sendRaw(_ bytes: [UInt8]) { sendMessage(bytes) }

    /// Everything the server writes comes here.
    public func received(_ bytes: [UInt8]) {
        guard let message = try? RPCMessage(bytes) else { return }  // not JSON-RPC: ignored (servers log to stdout sometimes)
        switch message.kind {
        case .response:
            guard let idRange = message.idRange, let number = UInt64(String(decoding: message.bytes[idRange], as: UTF8.self)) else { return }
            guard let p = state.withLock({ $0.pending.removeValue(forKey: number) }) else { return }  // timed out or cancelled before
            p.continuation.resume(returning: message.replacing([(idRange, p.originalID)]))
        case .notification:
            if message.method == "notifications/progress", let range = message.paramRange("progressToken"),
               let number = UInt64(String(decoding: message.bytes[range], as: UTF8.self)) {
                let target: (Pending, (any UpstreamClient)?)? = state.withLock { s in
                    guard let p = s.pending[number] else { return nil }
                    return (p, p.client.flatMap { s.clients[$0]?.client })
                }
                guard let (p, client) = target, let token = p.originalToken else { return }
                let restored = message.replacing([(range, token)])
                if let progress = p.progress { progress(restored) } else { client?.deliver(restored) }
                return
            }
            if let observe = observer.withLock({ $0 }) { observe(message) }
            for client in liveClients() { client.deliver(message.bytes) }
        case .request:
            if message.method == "ping" {
                sendMessage(Array(#"{"jsonrpc":"2.0","id":"#.utf8) + (message.id ?? []) + Array(#","result":{}}"#.utf8))
                return
            }
            let clients = liveClients()
            guard exclusive, clients.count == 1, let client = clients.first else {
                sendMessage(RPCMessage.error(id: message.id, code: RPCErrorCode.methodNotFound,
                                             message: "\(message.method ?? "request") is not available: this server is shared by several clients through peer-registry supervise"))
                return
            }
            if let id = message.id { state.withLock { $0.serverRequests[id] = ObjectIdentifier(client) } }
            client.deliver(message.bytes)
        }
    }

    /// The server is gone: every waiting request gets an error now, later ones at once.
    public func close(reason: String) {
        let failed: [Pending] = state.withLock { s in
            if s.closedReason == nil { s.closedReason = reason }
            let all = Array(s.pending.values)
            s.pending = [:]
            s.sweeper?.cancel()
            s.sweeper = nil
            return all
        }
        for p in failed {
            p.continuation.resume(returning: RPCMessage.error(id: p.originalID, code: RPCErrorCode.serverUnavailable, message: reason))
        }
    }

    /// The server lost the session but the connection goes on (a legacy SSE stream ended and
    /// is being reopened): every waiting request gets an error now; later ones are sent as usual.
    public func failPending(reason: String) {
        let failed: [Pending] = state.withLock { s in
            let all = Array(s.pending.values)
            s.pending = [:]
            s.serverRequests = [:]
            return all
        }
        for p in failed {
            p.continuation.resume(returning: RPCMessage.error(id: p.originalID, code: RPCErrorCode.serverUnavailable, message: reason))
        }
    }

    private func liveClients() -> [any UpstreamClient] {
        state.withLock { s in s.clients.values.compactMap(\.client) }
    }

    /// Answers every request past its deadline with a timeout error.
    private func sweep() {
        let now = ContinuousClock.now
        let overdue: [(UInt64, Duration, String)] = state.withLock { s in
            s.pending.compactMap { key, p in p.deadline <= now ? (key, p.timeout, p.timeoutOption) : nil }
        }
        for (number, timeout, option) in overdue { expire(number, timeout: timeout, option: option) }
    }

    private func expire(_ number: UInt64, timeout: Duration, option: String) {
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        abandon(number, code: RPCErrorCode.requestTimeout, message: "no answer from the server within \(formatSeconds(seconds)) (\(option))", tellServer: "timed out")
    }

    private func abandon(_ number: UInt64, code: Int, message: String, tellServer reason: String?) {
        guard let p = state.withLock({ $0.pending.removeValue(forKey: number) }) else { return }
        if let reason {
            sendMessage(RPCMessage.notification(method: "notifications/cancelled", params: #"{"requestId":\#(number),"reason":"\#(reason)"}"#))
        }
        p.continuation.resume(returning: RPCMessage.error(id: p.originalID, code: code, message: message))
    }
}

func formatSeconds(_ s: Double) -> String {
    s == s.rounded() ? "\(Int(s)) s" : "\(s) s"
}
