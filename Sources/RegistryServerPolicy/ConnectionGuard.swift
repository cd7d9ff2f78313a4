import HTTPTypes
import NIOCore
import NIOHTTPTypes
import Synchronization

/// Every connection a server holds, so that the `ServerLimits` can be applied across them: the
/// connection cap (a new connection displaces the oldest idle one), and the shutdown deadline
/// (`closeAll()` ends connections whose clients do not read).
///
/// One tracker per listening server; each accepted connection gets a `ConnectionGuard` handler
/// (`makeHandler()`) that reports to it.
public final class ConnectionTracker: Sendable {
    public let limits: ServerLimits
    /// The cap in force (`limits.effectiveMaxConnections`, read once).
    public let maxConnections: Int

    private struct Entry {
        let channel: any Channel
        /// No request being read or answered: may be displaced by a new connection.
        var idle: Bool
        let serial: Int
    }

    private struct State {
        var entries: [ObjectIdentifier: Entry] = [:]
        var nextSerial = 0
        var refused = 0
        var displaced = 0
        var timedOut = 0
    }

    private let state = Mutex(State())

    public init(limits: ServerLimits = ServerLimits()) {
        self.limits = limits
        self.maxConnections = limits.effectiveMaxConnections
    }

    /// Connections held now.
    public var count: Int { state.withLock { $0.entries.count } }

    /// Counters since start, for `/healthz` and logs: connections refused at the cap, idle ones
    /// displaced by new ones, and ones closed by a timeout (request, idle or write stall).
    public var counters: (refused: Int, displaced: Int, timedOut: Int) {
        state.withLock { ($0.refused, $0.displaced, $0.timedOut) }
    }

    /// A handler for one new connection (`HTTP1Channel.Configuration.additionalChannelHandlers`).
    public func makeHandler() -> ConnectionGuard { ConnectionGuard(tracker: self) }

    /// Closes every connection (the shutdown deadline has passed).
    public func closeAll() {
        let channels = state.withLock { $0.entries.values.map(\.channel) }
        for channel in channels { channel.close(promise: nil) }
    }

    /// Registers `channel`; false when it is over the cap and no idle connection could make room.
    func admit(_ channel: any Channel) -> Bool {
        let (admitted, victim): (Bool, (any Channel)?) = state.withLock { s in
            var victim: (any Channel)?
            if s.entries.count >= maxConnections {
                // The oldest connection with nothing in progress makes room (a flood of idle
                // sockets cannot lock out a client that has something to ask).
                if let oldest = s.entries.filter({ $0.value.idle }).min(by: { $0.value.serial < $1.value.serial }) {
                    s.entries[oldest.key] = nil
                    s.displaced += 1
                    victim = oldest.value.channel
                } else {
                    s.refused += 1
                    return (false, nil)
                }
            }
            s.entries[ObjectIdentifier(channel)] = Entry(channel: channel, idle: true, serial: s.nextSerial)
            s.nextSerial += 1
            return (true, victim)
        }
        victim?.close(promise: nil)
        return admitted
    }

    func setIdle(_ channel: any Channel, _ idle: Bool) {
        state.withLock { s in s.entries[ObjectIdentifier(channel)]?.idle = idle }
    }

    func remove(_ channel: any Channel) {
        state.withLock { s in _ = s.entries.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    func countTimeout() {
        state.withLock { $0.timedOut += 1 }
    }
}

/// Applies `ServerLimits` to one HTTP/1 connection: the cap (through its `ConnectionTracker`),
/// the request and idle timeouts, and the write-stall timeout. Sits after the HTTP codec.
///
/// - Reading: a timer runs while the server waits for a request (`idleTimeout` between
///   requests, `requestTimeout` for the first one and from a request's head to its end); it
///   stops while a request is being answered, however long the answer (an event stream) lasts.
/// - Writing: while the socket refuses more bytes (the client does not read), a timer of
///   `writeStallTimeout` runs; when it fires the connection is closed, which also ends the
///   response that was blocked on it.
public final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler, @unchecked Sendable {
    public typealias InboundIn = HTTPRequestPart
    public typealias InboundOut = HTTPRequestPart
    public typealias OutboundIn = HTTPResponsePart
    public typealias OutboundOut = HTTPResponsePart

    private let tracker: ConnectionTracker
    private var admitted = false
    private var refused = false
    private var readingRequest = false
    /// Requests read whose response has not ended yet.
    private var answering = 0
    private var readTimer: Scheduled<Void>?
    private var stallTimer: Scheduled<Void>?
    /// The client closed its sending side (Hummingbird allows remote half-closure, so the
    /// connection itself stays open until a write fails), and who wants to know.
    private var inputClosed = false
    private var inputClosedActions: [@Sendable () -> Void] = []

    init(tracker: ConnectionTracker) {
        self.tracker = tracker
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    public func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard !admitted, !refused else { return }
        if tracker.admit(context.channel) {
            admitted = true
        } else {
            refused = true
        }
        armReadTimer(context, tracker.limits.requestTimeout)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        stop(context)
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        stop(context)
    }

    private func stop(_ context: ChannelHandlerContext) {
        readTimer?.cancel()
        readTimer = nil
        stallTimer?.cancel()
        stallTimer = nil
        if admitted { tracker.remove(context.channel) }
        admitted = false
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if refused {
            // Over the cap with every connection busy: a short 503, then close.
            if case .end = part { refuse(context) }
            return
        }
        switch part {
        case .head:
            readingRequest = true
            if admitted { tracker.setIdle(context.channel, false) }
            armReadTimer(context, tracker.limits.requestTimeout)
        case .body:
            break
        case .end:
            readingRequest = false
            answering += 1
            readTimer?.cancel()
            readTimer = nil
        }
        context.fireChannelRead(data)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            answering = max(0, answering - 1)
            if answering == 0, !readingRequest {
                if admitted { tracker.setIdle(context.channel, true) }
                armReadTimer(context, tracker.limits.idleTimeout)
            }
        }
        context.write(data, promise: promise)
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed, !inputClosed {
            inputClosed = true
            let actions = inputClosedActions
            inputClosedActions = []
            for action in actions { action() }
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Runs `action` once the client has closed its side of the connection (at once if it
    /// has). Call on the channel's event loop.
    func whenInputClosed(_ action: @escaping @Sendable () -> Void) {
        if inputClosed { action() } else { inputClosedActions.append(action) }
    }

    /// Calls `action` once, as soon as the client of `channel` is gone: the connection closed,
    /// or the client closed its sending side — which is how a client that leaves an event
    /// stream looks to a server that allows half-closure (Hummingbird's does): without this, a
    /// long response only notices at its next write. For event streams, which end when their
    /// client goes.
    public static func whenClientGone(_ channel: any Channel, _ action: @escaping @Sendable () -> Void) {
        let once = OnceAction(action)
        channel.closeFuture.whenComplete { _ in once.run() }
        channel.pipeline.handler(type: ConnectionGuard.self).whenSuccess { handler in
            handler.whenInputClosed { once.run() }
        }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            stallTimer?.cancel()
            stallTimer = nil
        } else if stallTimer == nil {
            let channel = context.channel
            let tracker = self.tracker
            stallTimer = context.eventLoop.scheduleTask(in: TimeAmount(tracker.limits.writeStallTimeout)) {
                tracker.countTimeout()
                channel.close(promise: nil)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    private func armReadTimer(_ context: ChannelHandlerContext, _ timeout: Duration) {
        readTimer?.cancel()
        let channel = context.channel
        let tracker = self.tracker
        readTimer = context.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            tracker.countTimeout()
            channel.close(promise: nil)
        }
    }

    private func refuse(_ context: ChannelHandlerContext) {
        var head = HTTPResponse(status: .serviceUnavailable)
        let body = "{\"error\":\"too many connections (\(tracker.maxConnections) are busy); try again\",\"code\":\"HTTP_503\"}\n"
        head.headerFields[.contentType] = "application/json; charset=utf-8"
        head.headerFields[.contentLength] = String(body.utf8.count)
        head.headerFields[.connection] = "close"
        head.headerFields[.retryAfter] = "1"
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(context.channel.allocator.buffer(string: body))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}

/// An action run at most once, whoever calls first.
private final class OnceAction: Sendable {
    private let action: Mutex<(@Sendable () -> Void)?>
    init(_ action: @escaping @Sendable () -> Void) { self.action = Mutex(action) }
    func run() {
        let a = action.withLock { a -> (@Sendable () -> Void)? in
            defer { a = nil }
            return a
        }
        a?()
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds.multipliedReportingOverflow(by: 1_000_000_000).overflow
            ? Int64.max : seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
