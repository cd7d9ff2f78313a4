#if canImport(Glibc)
import Glibc
#endif
import Synchronization

extension Registry {
    /// The registry's changes as an `AsyncSequence` of events (see `RegistryWatch`), starting
    /// from the state now. A dedicated thread waits on the watch (the cooperative pool is never
    /// blocked); it stops within `RegistryWatch.pollingInterval` after the consuming task is
    /// cancelled or stops iterating. Ends by throwing if the registry becomes unreadable
    /// (`.corrupt`, `.permission`) or the handle is closed.
    /// - Throws: the errors of `RegistryWatch.init` when the watch cannot be set up.
    /// With a `filter`, only what it lists is watched (`scope: .cluster`: the whole cluster).
    public func changes(_ filter: ServerFilter = ServerFilter()) throws(RegistryError) -> AsyncThrowingStream<RegistryEvent, any Error> {
        let watch = try RegistryWatch(self, filter: filter)
        let (stream, continuation) = AsyncThrowingStream<RegistryEvent, any Error>.makeStream(bufferingPolicy: .unbounded)
        let pump = WatchPump(watch: watch, continuation: continuation)
        continuation.onTermination = { _ in pump.stop() }
        pump.start()
        return stream
    }
}

/// Runs `RegistryWatch.next` on its own thread and feeds a continuation.
final class WatchPump: @unchecked Sendable {
    private let watch: RegistryWatch
    private let continuation: AsyncThrowingStream<RegistryEvent, any Error>.Continuation
    private let stopped = Atomic<Bool>(false)

    init(watch: RegistryWatch, continuation: AsyncThrowingStream<RegistryEvent, any Error>.Continuation) {
        self.watch = watch
        self.continuation = continuation
    }

    func stop() { stopped.store(true, ordering: .relaxed) }

    func start() {
        do throws(RegistryError) {
            try Sys.startThread("watch") { [self] in run() }
        } catch {
            continuation.finish(throwing: RegistryError(.io, "could not start the watch thread: \(error.message)"))
        }
    }

    private func run() {
        defer { watch.close() }
        while !stopped.load(ordering: .relaxed) {
            do throws(RegistryError) {
                if let event = try watch.next(timeoutMilliseconds: Int(RegistryWatch.pollingInterval)) {
                    if case .terminated = continuation.yield(event) { return }
                }
            } catch {
                continuation.finish(throwing: error)
                return
            }
        }
        continuation.finish()
    }
}
