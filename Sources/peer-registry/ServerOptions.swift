import ArgumentParser
import RegistryKit
import RegistryServerPolicy

/// The options every server subcommand (serve, mcp --http, supervise) takes for its
/// `ServerLimits` (docs/CLI.md, "Limits"); the defaults are `ServerLimits()`'s.
struct LimitOptions: ParsableArguments {
    @Option(name: .customLong("max-connections"), help: ArgumentHelp(
        "Connections held at once; past it a new one replaces the oldest idle one, or gets 503 (default 512, never more than the descriptor limit allows).",
        valueName: "n"))
    var maxConnections: Int?

    @Option(name: .customLong("request-timeout"), help: ArgumentHelp(
        "Seconds a client may take to send a whole request (default 10).", valueName: "seconds"))
    var requestTimeout: Double?

    @Option(name: .customLong("idle-timeout"), help: ArgumentHelp(
        "Seconds a kept-alive connection may wait for its next request (default 60).", valueName: "seconds"))
    var idleTimeout: Double?

    @Option(name: .customLong("write-stall-timeout"), help: ArgumentHelp(
        "Seconds a response may stay blocked on a client that does not read (default 30).", valueName: "seconds"))
    var writeStallTimeout: Double?

    @Option(name: .customLong("client-buffer"), help: ArgumentHelp(
        "Bytes of output that may wait for one client before it is disconnected (default 4194304).", valueName: "bytes"))
    var clientBuffer: Int?

    @Option(name: .customLong("shutdown-deadline"), help: ArgumentHelp(
        "Seconds in-flight requests get after SIGTERM/SIGINT before every connection is closed (default 3).", valueName: "seconds"))
    var shutdownDeadline: Double?

    func validate() throws {
        if let maxConnections, !(1...1_000_000).contains(maxConnections) { throw ValidationError("--max-connections \(maxConnections): use 1 to 1000000") }
        for (name, value, range) in [
            ("--request-timeout", requestTimeout, 0.1...3600.0), ("--idle-timeout", idleTimeout, 0.1...86_400.0),
            ("--write-stall-timeout", writeStallTimeout, 0.1...3600.0), ("--shutdown-deadline", shutdownDeadline, 0.0...600.0),
        ] {
            if let value, !range.contains(value) { throw ValidationError("\(name) \(value): use \(range.lowerBound) to \(range.upperBound) seconds") }
        }
        if let clientBuffer, !(4096...(1 << 34)).contains(clientBuffer) { throw ValidationError("--client-buffer \(clientBuffer): use 4096 to 17179869184 bytes") }
    }

    var limits: ServerLimits {
        var limits = ServerLimits()
        if let maxConnections { limits.maxConnections = maxConnections }
        if let requestTimeout { limits.requestTimeout = .seconds(requestTimeout) }
        if let idleTimeout { limits.idleTimeout = .seconds(idleTimeout) }
        if let writeStallTimeout { limits.writeStallTimeout = .seconds(writeStallTimeout) }
        if let clientBuffer { limits.clientBufferBytes = clientBuffer }
        if let shutdownDeadline { limits.shutdownDeadline = .seconds(shutdownDeadline) }
        return limits
    }
}
