import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// A request context that knows its connection, so that a long response (an event stream) can
/// end as soon as its client goes away instead of at its next write.
public struct PolicyRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The connection the request came on.
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }
}

/// Runs a Hummingbird application under `ServerLimits`: each connection gets a
/// `ConnectionGuard` (cap, request/idle/write-stall timeouts), and a graceful shutdown
/// (SIGTERM, SIGINT) is bounded by `shutdownDeadline`: in-flight requests may finish until
/// then, after which every connection is closed, stuck clients included.
///
/// ```swift
/// let tracker = ConnectionTracker(limits: policy.limits)
/// let app = Application(router: router, server: PolicedServer.http1(tracker), ...)
/// try await PolicedServer.run(app, tracker: tracker, logger: logger)
/// ```
public enum PolicedServer {
    /// The HTTP/1 server with a `ConnectionGuard` on every connection.
    public static func http1(_ tracker: ConnectionTracker) -> HTTPServerBuilder {
        .http1(configuration: .init(additionalChannelHandlers: [tracker.makeHandler()]))
    }

    /// Runs `service` (an `Application`) until it ends or, with `stopOnSignals`, until SIGTERM
    /// or SIGINT, then shuts it down within `tracker.limits.shutdownDeadline`.
    public static func run(_ service: some Service, tracker: ConnectionTracker, stopOnSignals: Bool = true, logger: Logger) async throws {
        var configuration = ServiceGroupConfiguration(
            services: [.init(service: DeadlineService(inner: service, tracker: tracker))],
            gracefulShutdownSignals: stopOnSignals ? [.sigterm, .sigint] : [],
            logger: logger)
        // Past the deadline, connections are closed; should something still hold on, the
        // group cancels it a second later.
        configuration.maximumGracefulShutdownDuration = tracker.limits.shutdownDeadline + .seconds(1)
        try await ServiceGroup(configuration: configuration).run()
    }
}

/// Runs `inner`; once a graceful shutdown starts, closes every connection still open after the
/// deadline (or at once on cancellation).
struct DeadlineService<Inner: Service>: Service {
    let inner: Inner
    let tracker: ConnectionTracker

    func run() async throws {
        let pending = Mutex<Scheduled<Void>?>(nil)
        let tracker = self.tracker
        defer { pending.withLock { $0?.cancel() } }
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await inner.run()
            } onGracefulShutdown: {
                let scheduled = MultiThreadedEventLoopGroup.singleton.next().scheduleTask(in: TimeAmount(tracker.limits.shutdownDeadline)) {
                    tracker.closeAll()
                }
                pending.withLock { $0 = scheduled }
            }
        } onCancel: {
            tracker.closeAll()
        }
    }
}

/// What one client may hold of buffered output, in bytes (`ServerLimits.clientBufferBytes`):
/// the sender `reserve`s a message's size before queueing it and the writer `release`s it once
/// written. A client whose reservation fails is disconnected (its browser reconnects and gets
/// the full state), so a client that does not read costs at most the budget plus one message.
public final class ClientBudget: Sendable {
    public let limit: Int
    private let queued = Atomic<Int>(0)

    public init(limit: Int) { self.limit = limit }

    /// Bytes queued and not yet written.
    public var bytesQueued: Int { queued.load(ordering: .relaxed) }

    /// Counts `bytes` against the budget; false (nothing counted) when they would take it over
    /// `limit` — unless nothing is queued: one message always fits, however large.
    public func reserve(_ bytes: Int) -> Bool {
        var current = queued.load(ordering: .relaxed)
        while true {
            if current > 0, current + bytes > limit { return false }
            let (exchanged, actual) = queued.compareExchange(expected: current, desired: current + bytes, ordering: .relaxed)
            if exchanged { return true }
            current = actual
        }
    }

    /// Returns `bytes` to the budget (the message was written).
    public func release(_ bytes: Int) {
        queued.subtract(bytes, ordering: .relaxed)
    }
}
