import Synchronization

/// Periodic active probes of a registry's servers (see `Registry.startHealthMonitor`). The
/// probing thread holds the registry and a small control block, never the monitor, so
/// releasing the monitor stops it.
public final class HealthMonitor: Sendable {
    private final class Control: Sendable {
        let stopped = Atomic<Bool>(false)
        let running = Atomic<Bool>(false)
        /// Completed rounds, for tests and status displays.
        let rounds = Atomic<Int>(0)
    }

    private let registry: Registry
    private let intervalMillis: Int64
    private let policy: ProbePolicy
    private let control = Control()

    init(registry: Registry, interval: Duration, policy: ProbePolicy) {
        self.registry = registry
        let c = interval.components
        self.intervalMillis = max(10, c.seconds.multipliedReportingOverflow(by: 1000).partialValue &+ c.attoseconds / 1_000_000_000_000_000)
        self.policy = policy
    }

    deinit { stop() }

    /// How many full rounds of probes have completed.
    public var completedRounds: Int { control.rounds.load(ordering: .relaxed) }

    /// Whether the probing thread is running (false once stopped and the probe in progress, if
    /// any, has finished).
    public var isRunning: Bool { control.running.load(ordering: .acquiring) }

    /// Stops after the probe in progress, if any.
    public func stop() { control.stopped.store(true, ordering: .releasing) }

    func start() {
        let control = self.control, registry = self.registry, policy = self.policy, interval = self.intervalMillis
        control.running.store(true, ordering: .releasing)
        do throws(RegistryError) {
            try Sys.startThread("health monitor") {
                defer { control.running.store(false, ordering: .releasing) }
                while !control.stopped.load(ordering: .acquiring) {
                    let servers = (try? registry.list().servers) ?? []
                    for e in servers where e.transport != .stdio && e.url != nil {
                        if control.stopped.load(ordering: .acquiring) { return }
                        _ = try? registry.probeSync(e.id, policy: policy)
                    }
                    control.rounds.add(1, ordering: .relaxed)
                    var slept: Int64 = 0
                    while slept < interval && !control.stopped.load(ordering: .acquiring) {
                        let step = min(50, interval - slept)
                        Sys.sleepMicros(Int(step) * 1000)
                        slept += step
                    }
                }
            }
        } catch {
            control.running.store(false, ordering: .releasing)
        }
    }
}
