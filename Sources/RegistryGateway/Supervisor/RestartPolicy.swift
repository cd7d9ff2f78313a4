/// Failures of one server's processes, and what they mean: restart after a delay that doubles
/// with each failure in the window, or — more than `maxRestarts` in `restartWindow` — a crash
/// loop, in which requests fail at once until the window has passed (then one attempt is let
/// through: it succeeds and the loop is over, or fails and the loop goes on).
struct RestartPolicy: Sendable {
    enum Decision: Sendable, Equatable {
        case restart(after: Duration)
        case crashLoop
    }

    let maxRestarts: Int
    let window: Duration
    let firstDelay: Duration
    let maxDelay: Duration = .seconds(30)

    private(set) var failures: [ContinuousClock.Instant] = []
    private(set) var crashLoopSince: ContinuousClock.Instant?
    /// Restarts done in all (for the registry's metadata).
    private(set) var restarts = 0

    init(maxRestarts: Int, window: Duration, firstDelay: Duration) {
        self.maxRestarts = maxRestarts
        self.window = window
        self.firstDelay = firstDelay
    }

    mutating func recordFailure(at now: ContinuousClock.Instant = .now) -> Decision {
        failures.append(now)
        let window = self.window
        failures.removeAll { now - $0 > window }
        if failures.count > maxRestarts {
            crashLoopSince = now
            return .crashLoop
        }
        return .restart(after: currentDelay)
    }

    /// The delay before the next restart after the failures recorded so far: `firstDelay` after
    /// one failure in the window, doubling with each further one, at most `maxDelay`.
    var currentDelay: Duration {
        var delay = firstDelay
        for _ in 1..<max(1, failures.count) where delay < maxDelay { delay = delay * 2 }
        return min(delay, maxDelay)
    }

    mutating func recordRestart() { restarts += 1 }

    mutating func recordSuccess() {
        crashLoopSince = nil
    }

    /// In a crash loop and not yet due for another attempt.
    func refusing(at now: ContinuousClock.Instant = .now) -> Bool {
        guard let since = crashLoopSince else { return false }
        return now - since < window
    }

    var inCrashLoop: Bool { crashLoopSince != nil }
}
