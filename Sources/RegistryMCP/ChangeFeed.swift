import RegistryKit

/// What a session hears about the registry.
enum FeedEvent: Sendable {
    /// Live entries were added, removed or changed.
    case changed(RegistryEvent)
    /// The registry cannot be read any more (say the file was corrupted): reads now fail.
    case unreadable(RegistryError)
    /// The registry can be read again; anything may have changed meanwhile.
    case readable
}

/// One watch on the registry (`Registry.changes()`), fanned out to every MCP session.
///
/// The watch ends when the registry becomes unreadable; the feed then tells its subscribers and
/// tries again every `retryInterval` until the file can be read, so a repaired file brings the
/// notifications back without restarting the server.
actor ChangeFeed {
    let registry: Registry
    let retryInterval: Duration
    private var subscribers: [Int: AsyncStream<FeedEvent>.Continuation] = [:]
    private var nextSubscriber = 0
    private var pump: Task<Void, Never>?

    init(registry: Registry, retryInterval: Duration = .milliseconds(500)) {
        self.registry = registry
        self.retryInterval = retryInterval
    }

    /// Starts watching now (the baseline is the registry as it is now). Idempotent.
    func start() {
        guard pump == nil else { return }
        pump = Task { [registry, retryInterval] in
            var unreadable = false
            while !Task.isCancelled {
                do {
                    let changes = try registry.changes()
                    if unreadable {
                        unreadable = false
                        self.broadcast(.readable)
                    }
                    for try await event in changes { self.broadcast(.changed(event)) }
                    return  // finished without error: the handle was closed
                } catch {
                    if Task.isCancelled { return }
                    if !unreadable {
                        unreadable = true
                        let failure = error as? RegistryError ?? RegistryError(.io, "\(error)")
                        if failure.code == .closed { return }
                        self.broadcast(.unreadable(failure))
                    }
                    try? await Task.sleep(for: retryInterval)
                }
            }
        }
    }

    func stop() {
        pump?.cancel()
        pump = nil
        for c in subscribers.values { c.finish() }
        subscribers = [:]
    }

    /// The events from now on, until `stop()` or until the consumer stops iterating.
    func subscribe() -> AsyncStream<FeedEvent> {
        start()
        let (stream, continuation) = AsyncStream<FeedEvent>.makeStream(bufferingPolicy: .bufferingNewest(256))
        let key = nextSubscriber
        nextSubscriber += 1
        subscribers[key] = continuation
        continuation.onTermination = { _ in Task { await self.unsubscribe(key) } }
        return stream
    }

    private func unsubscribe(_ key: Int) {
        subscribers[key] = nil
    }

    private func broadcast(_ event: FeedEvent) {
        for c in subscribers.values { c.yield(event) }
    }
}
