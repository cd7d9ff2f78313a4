import ArgumentParser
import Logging
import RegistryGateway
import RegistryKit
import RegistryServerPolicy
import ServiceLifecycle
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `peer-registry gateway`: one MCP server for every live server in the registry (docs/GATEWAY.md).
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "One MCP endpoint for every live MCP server in the registry, on stdio or streamable HTTP.",
        discussion: """
            Connects to every live entry with transport http (streamable HTTP) or sse (the \
            legacy HTTP+SSE transport; url = the event stream), with the entry's headers, shows \
            their tools and prompts as <id>__<name> (at most 64 characters of [A-Za-z0-9_-]) and \
            their resources as they are, routes calls (also <id>.<name> and a bare name, by the \
            registry's resolver), and sends list_changed to every client when servers come, go or \
            change their lists. Servers that are DOWN or cannot be reached are hidden; what the \
            gateway sees is written back as their health. With --config, also supervises the \
            stdio servers of that file (as `peer-registry supervise` does), so they appear too. \
            Stdio (default): MCP on stdin/stdout, logs on stderr, stops when input ends. --http: \
            listens on 127.0.0.1 at /mcp, prints the URL once listening; every request needs the \
            bearer token kept in <registry dir>/runtime/token (created 0600 on first start) \
            unless --no-auth; a foreign Host or Origin is refused (403). Stops on SIGINT/SIGTERM.
            """)

    @OptionGroup var options: RegistryOptions

    @Option(name: .customLong("config"), help: ArgumentHelp(
        "Also run the stdio servers of this configuration file (see `peer-registry supervise`).", valueName: "file"))
    var config: String?

    @Option(name: .customLong("http"), help: ArgumentHelp(
        "Serve streamable HTTP on this port of 127.0.0.1 instead of stdio (0: any free port).", valueName: "port"))
    var httpPort: Int?

    @Option(name: .customLong("include"), help: ArgumentHelp(
        "Show only what matches: a glob on server ids and tool/prompt names (repeatable).", valueName: "glob"))
    var include: [String] = []

    @Option(name: .customLong("exclude"), help: ArgumentHelp(
        "Hide what matches: a glob on server ids and tool/prompt names (repeatable).", valueName: "glob"))
    var exclude: [String] = []

    @Option(help: ArgumentHelp(
        "local: this machine's servers (default); cluster: also the other machines' servers that `peer-registry agent` mirrors, named <node>__<id>__<tool>.",
        valueName: "scope"))
    var scope: EntryScope = .local

    @Flag(name: .customLong("no-auth"), help: "--http without a token (any local process may call it).")
    var noAuth = false

    @Option(name: .customLong("call-timeout"), help: ArgumentHelp(
        "Seconds a routed request may wait for its server before it is answered with an error (default 30).", valueName: "seconds"))
    var callTimeout: Double = 30

    @Flag(name: .customLong("no-health"), help: "Do not write what the gateway observes back as the entries' health.")
    var noHealth = false

    @Option(name: .customLong("max-line-bytes"), help: ArgumentHelp(
        "stdio: the longest message line read (default 16777216).", valueName: "bytes"))
    var maxLineBytes: Int = GatewayStdio.defaultMaxLineBytes

    @Option(name: .customLong("log-dir"), help: ArgumentHelp(
        "With --config: where each server's stderr goes (default: logs/ beside the registry file).", valueName: "dir"))
    var logDirectory: String?

    @Flag(name: .customLong("supervised-over-http"), help: "With --config: reach those servers through their HTTP bridges, as other clients do, instead of in process.")
    var supervisedOverHTTP = false

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (on stderr).")
    var logLevel: String = "notice"

    @OptionGroup var limitOptions: LimitOptions

    func validate() throws {
        if let httpPort, !(0...65535).contains(httpPort) { throw ValidationError("--http \(httpPort): use 0 to 65535") }
        if noAuth, httpPort == nil { throw ValidationError("--no-auth only applies with --http") }
        if supervisedOverHTTP, config == nil { throw ValidationError("--supervised-over-http only applies with --config") }
        if !(0.05...3600).contains(callTimeout) { throw ValidationError("--call-timeout \(callTimeout): use 0.05 to 3600 seconds") }
        if !(1024...(1 << 30)).contains(maxLineBytes) { throw ValidationError("--max-line-bytes \(maxLineBytes): use 1024 to 1073741824") }
        if Logger.Level(rawValue: logLevel) == nil { throw ValidationError("--log-level \(logLevel): use trace, debug, info, notice, warning, error or critical") }
        for pattern in include + exclude where pattern.isEmpty { throw ValidationError("--include/--exclude: a pattern is empty") }
    }

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        let level = Logger.Level(rawValue: logLevel) ?? .notice
        var logger = Logger(label: "peer-registry.gateway") { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        logger.logLevel = level
        let registry = try options.open()
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        var gatewayOptions = Gateway.Options()
        gatewayOptions.supervisedOverHTTP = supervisedOverHTTP
        if let config {
            let logDir = logDirectory ?? (registry.path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/") + "/logs")
            let supervisor: Supervisor
            do {
                supervisor = try Supervisor(
                    options: .init(configPath: config, logDirectory: logDir, environment: Self.environment()),
                    registry: registry, logger: logger)
            } catch {
                throw RegistryError(.invalid, error.description)
            }
            services.append(.init(service: supervisor))
            gatewayOptions.supervisor = supervisor
        }
        gatewayOptions.filter = GatewayFilter(include: include, exclude: exclude)
        gatewayOptions.requestTimeout = .milliseconds(Int64(callTimeout * 1000))
        gatewayOptions.writeHealth = !noHealth
        gatewayOptions.scope = scope
        let gateway = Gateway(registry: registry, options: gatewayOptions, logger: logger)
        services.append(.init(service: gateway))
        if let httpPort {
            var http = GatewayHTTP.Options()
            http.port = httpPort
            http.limits = limitOptions.limits
            let path = registry.path
            if !noAuth {
                http.token = try AccessToken.forRegistry(at: path)
                http.tokenHint = " (the token is in \(RuntimeFile.directory(forRegistryAt: path))/token)"
            }
            services.append(.init(service: HTTPDownstream(server: GatewayHTTP(gateway: gateway, options: http), registryPath: path, noAuth: noAuth),
                                  successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup))
        } else {
            services.append(.init(service: StdioDownstream(gateway: gateway, maxLineBytes: maxLineBytes),
                                  successTerminationBehavior: .gracefullyShutdownGroup))
        }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        registry.close()
    }

    static func environment() -> [String: String] {
        var environment: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { environment[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return environment
    }
}

/// The stdio downstream: ends (and with it the group) when standard input ends.
struct StdioDownstream: Service {
    let gateway: Gateway
    let maxLineBytes: Int
    func run() async throws {
        await cancelWhenGracefulShutdown {
            await GatewayStdio.serve(gateway, maxLineBytes: maxLineBytes)
        }
    }
}

/// The HTTP downstream: prints where it listens, keeps a runtime file while it does.
struct HTTPDownstream: Service {
    let server: GatewayHTTP
    let registryPath: String
    let noAuth: Bool
    func run() async throws {
        let runtimeFile = Mutex<RuntimeFile?>(nil)
        defer { runtimeFile.withLock { $0?.remove() } }
        let path = registryPath
        let token = server.options.token
        try await server.run { port in
            let url = "http://127.0.0.1:\(port)/mcp"
            var fields: [(String, JSONValue)] = [("url", .string(url)), ("port", .int(port))]
            if let token { fields.append(("token", .string(token.value))) }
            do throws(PolicyError) {
                let file = try RuntimeFile.write(registryPath: path, name: "gateway-\(port)", fields: fields)
                runtimeFile.withLock { $0 = file }
            } catch {
                Output.error("warning: \(error.message)")
            }
            // The note first: the URL on stdout tells whoever waits that everything is said.
            if token != nil {
                Output.error("gateway listening at \(url); send Authorization: Bearer <the token in \(RuntimeFile.directory(forRegistryAt: path))/token>")
            } else {
                Output.error("gateway listening at \(url) without a token (--no-auth)")
            }
            Output.line(url)
        }
    }
}
