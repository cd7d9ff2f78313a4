import ArgumentParser
import Logging
import RegistryGateway
import RegistryKit
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// `peer-registry supervise CONFIG`: runs configured stdio MCP servers, bridges each to
/// streamable HTTP (and legacy HTTP+SSE) on 127.0.0.1, registers it, restarts it (docs/SUPERVISOR.md).
struct SuperviseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "supervise",
        abstract: "Run the stdio MCP servers of a config file, each bridged to HTTP and registered.",
        discussion: """
            CONFIG is Claude Desktop's format, {"mcpServers": {"name": {"command", "args", "env", \
            "cwd"}}}, plus "enabled" and per-server options (docs/SUPERVISOR.md); ${VAR} and \
            ${VAR:-default} expand in command, args, env and cwd. Each server gets a streamable \
            HTTP endpoint on 127.0.0.1, http://127.0.0.1:PORT/mcp (with a bearer token in its \
            registry entry's headers), the legacy HTTP+SSE transport at /sse on the same port \
            (same token and rules), and a registry entry held by this process. The file is watched and reloaded. An invalid \
            file is reported with its line and column (exit 1) and nothing starts. Stops every \
            server on SIGINT or SIGTERM.
            """)

    @OptionGroup var options: RegistryOptions

    @Argument(help: "The configuration file (JSON).")
    var config: String

    @Option(name: .customLong("log-dir"), help: ArgumentHelp(
        "Where each server's stderr goes, as <id>.log (default: logs/ beside the registry file).", valueName: "dir"))
    var logDirectory: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    @Flag(help: "Only check the configuration: print the servers it would run, start nothing.")
    var check = false

    func validate() throws {
        if Logger.Level(rawValue: logLevel) == nil { throw ValidationError("--log-level \(logLevel): use trace, debug, info, notice, warning, error or critical") }
    }

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        var environment: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { environment[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        let level = Logger.Level(rawValue: logLevel) ?? .info
        var logger = Logger(label: "peer-registry.supervise") { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        logger.logLevel = level
        let registry = try options.open()
        let logDir = logDirectory ?? (registry.path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/") + "/logs")
        let supervisor: Supervisor
        do {
            supervisor = try Supervisor(
                options: .init(configPath: config, logDirectory: logDir, environment: environment),
                registry: registry, logger: logger)
        } catch {
            throw RegistryError(.invalid, error.description)
        }
        if check {
            for s in supervisor.configuredServers {
                Output.line("\(s.id)\t\(([s.command] + s.args).joined(separator: " "))\(s.shared ? "\tshared" : "")")
            }
            return
        }
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: supervisor)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        registry.close()
    }
}
