#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// How active probes turn into health (docs/FORMAT.md, "Health").
public struct ProbePolicy: Sendable, Hashable {
    /// How long one probe may take.
    public var timeout: Duration = .seconds(2)
    /// Consecutive failures after which a server is DEGRADED (1: the first failure).
    public var degradedAfter: Int = 1
    /// Consecutive failures after which a server is DOWN (and no longer resolves).
    public var downAfter: Int = 3

    public init(timeout: Duration = .seconds(2), degradedAfter: Int = 1, downAfter: Int = 3) {
        self.timeout = timeout
        self.degradedAfter = max(1, degradedAfter)
        self.downAfter = max(self.degradedAfter, downAfter)
    }

    var timeoutMillis: Int {
        let c = timeout.components
        return Int(clamping: c.seconds.multipliedReportingOverflow(by: 1000).partialValue &+ c.attoseconds / 1_000_000_000_000_000)
    }
}

extension Registry {
    /// Probes the live entry `id` by its transport — the MCP handshake for `http` (`initialize`,
    /// `notifications/initialized`, `ping` in one `Mcp-Session-Id` session, then DELETE of it) and
    /// for `sse` (the legacy flow: the endpoint event, answers read from the stream), a TCP connect
    /// for `ws`/`https`/`wss`; only correct JSON-RPC results count — and records the result: a success makes it HEALTHY
    /// (failures reset); failures count up in `health.consecutiveFailures`, DEGRADED from
    /// `policy.degradedAfter`, DOWN from `policy.downAfter`. `message` and `lastCheck` say what
    /// was seen. Blocks the calling thread up to `policy.timeout` plus one write.
    /// - Returns: the entry as stored after the probe.
    /// - Throws: `.notFound` when there is no live entry, plus the write errors.
    @discardableResult
    public func probeSync(_ id: String, policy: ProbePolicy = ProbePolicy()) throws(RegistryError) -> ServerEntry {
        let entry = try get(id)
        let outcome = Prober.probe(entry, timeoutMillis: policy.timeoutMillis)
        return try record(outcome, for: id, policy: policy)
    }

    /// `probeSync` on a thread of its own, so an async caller never blocks the cooperative pool.
    @discardableResult
    public func probe(_ id: String, policy: ProbePolicy = ProbePolicy()) async throws(RegistryError) -> ServerEntry {
        let result: Result<ServerEntry, RegistryError> = await withCheckedContinuation { continuation in
            Sys.runOnThreadOrInline("probe \(id)") { [self] in
                do throws(RegistryError) {
                    continuation.resume(returning: .success(try probeSync(id, policy: policy)))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        return try result.get()
    }

    private func record(_ outcome: ProbeOutcome, for id: String, policy: ProbePolicy) throws(RegistryError) -> ServerEntry {
        let now = Timestamp.now()
        return try transaction { txn throws(RegistryError) -> ServerEntry in
            guard let i = txn.document.servers.firstIndex(where: { $0.id == id }), judge().isAlive(txn.document.servers[i]) else {
                throw RegistryError(.notFound, "no live server with id \"\(id.prefix(80))\" in \(path)")
            }
            var health = txn.document.servers[i].health
            if outcome.reachable {
                health.status = .healthy
                health.consecutiveFailures = nil
            } else {
                // Saturates at the validator's cap: no count read from the file overflows it.
                let failures = min((health.consecutiveFailures ?? 0) + 1, Health.maxConsecutiveFailures)
                health.consecutiveFailures = failures
                if failures >= policy.downAfter {
                    health.status = .down
                } else if failures >= policy.degradedAfter {
                    health.status = .degraded
                }
            }
            health.message = outcome.message
            health.lastCheck = now
            txn.document.servers[i].health = health
            txn.changed = true
            return txn.document.servers[i]
        }.0
    }

    /// Starts probing every live `http`, `sse` and `ws` entry every `interval` on a background
    /// thread, until the returned monitor is stopped (or released).
    /// Probing stops when the monitor is stopped or released. If no thread can be started the
    /// monitor is not running (`isRunning` is false) and nothing is probed.
    public func startHealthMonitor(interval: Duration = .seconds(10), policy: ProbePolicy = ProbePolicy()) -> HealthMonitor {
        let monitor = HealthMonitor(registry: self, interval: interval, policy: policy)
        monitor.start()
        return monitor
    }
}
