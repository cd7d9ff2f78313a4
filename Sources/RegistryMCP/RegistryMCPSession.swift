import MCP
import RegistryKit
import Synchronization

/// One MCP connection to the registry: an SDK `Server` with the registry's tools and resources,
/// and the notifications this client asked for.
///
/// Notifications, once the client has sent `notifications/initialized`:
/// - `notifications/resources/list_changed` when servers are added or removed (each live
///   server is a resource), and after the registry becomes readable again;
/// - `notifications/resources/updated` for each subscribed URI whose content changed:
///   `registry://servers` on any change (including the file becoming unreadable),
///   `registry://servers/<id>` when that entry appears, changes or goes away.
public final class RegistryMCPSession: Sendable {
    /// The SDK server; start it with `start(transport:)`.
    public let server: Server
    let state: SessionState
    let feed: ChangeFeed
    private let notifier: NotifierTask

    init(server: Server, state: SessionState, feed: ChangeFeed) {
        self.server = server
        self.state = state
        self.feed = feed
        self.notifier = NotifierTask()
    }

    /// Starts serving on `transport` and sending change notifications.
    public func start(transport: any MCP.Transport) async throws {
        let events = await feed.subscribe()
        try await server.start(transport: transport)
        notifier.run { [server, state] in
            for await event in events {
                await Self.deliver(event, server: server, state: state)
            }
        }
    }

    /// Stops the server (disconnecting its transport) and the notifications.
    public func stop() async {
        notifier.cancel()
        await server.stop()
    }

    /// Waits until the transport closes (stdio: end of input).
    public func waitUntilCompleted() async {
        await server.waitUntilCompleted()
        notifier.cancel()
    }

    /// The URIs this client is subscribed to (for tests and diagnostics).
    public var subscriptions: Set<String> {
        get async { await state.subscriptions }
    }

    static func deliver(_ event: FeedEvent, server: Server, state: SessionState) async {
        guard await state.initialized else { return }
        let subscribed = await state.subscriptions
        var updated: [String] = []
        var listChanged = false
        switch event {
        case .changed(let change):
            listChanged = !change.added.isEmpty || !change.removed.isEmpty
            if subscribed.contains(RegistryResources.serversURI) { updated.append(RegistryResources.serversURI) }
            for e in change.added + change.changed + change.removed {
                let uri = RegistryResources.uri(of: e.id)
                if subscribed.contains(uri), !updated.contains(uri) { updated.append(uri) }
            }
        case .unreadable:
            if subscribed.contains(RegistryResources.serversURI) { updated.append(RegistryResources.serversURI) }
        case .readable:
            listChanged = true
            updated = subscribed.sorted()
        }
        // A client that went away makes these throw; the session ends with its transport.
        if listChanged { try? await server.notify(ResourceListChangedNotification.message()) }
        for uri in updated { try? await server.notify(ResourceUpdatedNotification.message(.init(uri: uri))) }
    }
}

/// What one client has told the server.
actor SessionState {
    private(set) var initialized = false
    private(set) var subscriptions: Set<String> = []

    func markInitialized() { initialized = true }
    func subscribe(_ uri: String) { subscriptions.insert(uri) }
    func unsubscribe(_ uri: String) { subscriptions.remove(uri) }
}

/// The task that forwards feed events to one client; cancellable from any thread.
final class NotifierTask: Sendable {
    private let slot = Mutex<Task<Void, Never>?>(nil)

    func run(_ body: @escaping @Sendable () async -> Void) {
        replace(Task { await body() })
    }

    func cancel() { replace(nil) }

    private func replace(_ new: Task<Void, Never>?) {
        let old = slot.withLock { current -> Task<Void, Never>? in
            defer { current = new }
            return current
        }
        old?.cancel()
    }
}
