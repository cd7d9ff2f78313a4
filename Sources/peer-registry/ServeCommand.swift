import ArgumentParser
import RegistryHTTP
import RegistryKit
import RegistryServerPolicy
import Synchronization

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the registry to browsers: HTTP + Server-Sent Events, and a live status page.",
        discussion: """
            Endpoints: / (status page), /registry, /servers, /servers/{id}, /resolve, /events, \
            /healthz (docs/CLI.md). Every request but the page's own files needs the token the \
            server prints in its URL (http://127.0.0.1:3001/?token=...; also in \
            <registry dir>/runtime/serve-<port>.json, mode 0600; $PEER_REGISTRY_TOKEN fixes it). \
            Only loopback Host names and loopback origins are answered unless --allow-host / \
            --allow-origin widen that. Prints the URL on stdout once listening; stops on SIGINT \
            or SIGTERM within --shutdown-deadline.
            """)

    @OptionGroup var options: RegistryOptions

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on (0: any free port; the URL printed says which).")
    var port = 3001

    @Option(name: .customLong("allow-origin"), help: ArgumentHelp(
        "Also let pages from this origin read the registry with the token (repeatable; '*' for any; 'null' for file:// pages and sandboxed iframes).",
        valueName: "origin"))
    var allowedOrigins: [String] = []

    @Option(name: .customLong("allow-host"), help: ArgumentHelp(
        "Also answer requests addressed to this host name (repeatable; loopback names always are).",
        valueName: "name"))
    var allowedHosts: [String] = []

    @Option(name: .customLong("keep-alive"), help: ArgumentHelp("Seconds between SSE keep-alive comments (1 to 3600).", valueName: "seconds"))
    var keepAlive: Double = 15

    @Flag(name: .customLong("open-legacy-registry"), help: "Answer GET /registry without the token, for pages written before it (seed 000's): any local user can then read the registry's entries (never their secret fields).")
    var openLegacyRegistry = false

    @OptionGroup var limitOptions: LimitOptions

    func validate() throws {
        if !(0...65535).contains(port) { throw ValidationError("--port \(port): use 0 to 65535") }
        if !(keepAlive >= 1 && keepAlive <= 3600) { throw ValidationError("--keep-alive \(keepAlive): use 1 to 3600 seconds") }
        for origin in allowedOrigins where origin != "*" && origin != "null" && !origin.contains("://") {
            throw ValidationError("--allow-origin \(origin): an origin looks like https://app.example.com (or '*', or 'null')")
        }
        if host.isEmpty { throw ValidationError("--host: empty") }
    }

    func run() async throws {
        let registry = try options.open()
        var hosts = allowedHosts
        // Bound to a specific non-loopback address: requests naming that address are ours.
        let bare = host.hasPrefix("[") ? host : (host.contains(":") ? "[\(host)]" : host)
        if !["0.0.0.0", "[::]", "127.0.0.1", "localhost", "[::1]"].contains(bare.lowercased()) { hosts.append(bare) }
        let token = try AccessToken.forRegistry(at: registry.path)
        let configuration = RegistryHTTPServer.Configuration(
            host: host, port: port,
            access: AccessPolicy(allowedOrigins: allowedOrigins, allowedHosts: hosts),
            token: token, openLegacyRegistry: openLegacyRegistry, limits: limitOptions.limits,
            keepAliveInterval: .milliseconds(Int64(keepAlive * 1000)))
        do {
            try configuration.policy.validate()
        } catch {
            throw UsageError(error.message)
        }
        let source = RegistrySource(registry: registry, reopen: { () throws(RegistryError) -> Registry in try options.open() })
        var server = RegistryHTTPServer(source: source, configuration: configuration)
        server.tokenHint = " (the token is in \(RuntimeFile.directory(forRegistryAt: registry.path))/token)"
        let runtimeFile = Mutex<RuntimeFile?>(nil)
        defer { runtimeFile.withLock { $0?.remove() } }
        let listening = Atomic<Bool>(false)
        let shownHost = bare
        let registryPath = registry.path
        let statusPage = server.staticDirectory == nil ? " (status page files not found: only the API is served)" : ""
        if ["0.0.0.0", "[::]"].contains(bare), allowedHosts.isEmpty {
            Output.error("listening on every interface, but only loopback Host names are answered: add --allow-host NAME for the name other machines use")
        }
        do {
            try await server.run(stopOnSignals: true) { boundPort in
                listening.store(true, ordering: .relaxed)
                let url = "http://\(shownHost):\(boundPort)/"
                do throws(PolicyError) {
                    let file = try RuntimeFile.write(registryPath: registryPath, name: "serve-\(boundPort)", fields: [
                        ("url", .string(url)), ("port", .int(boundPort)), ("token", .string(token.value)),
                    ])
                    runtimeFile.withLock { $0 = file }
                } catch {
                    Output.error("warning: \(error.message)")
                }
                Output.line("\(url)?token=\(token.value)")
                Output.error("serving \(registryPath) at \(url)\(statusPage); open the URL above (it carries the token); Ctrl-C to stop")
            }
        } catch {
            if listening.load(ordering: .relaxed) { throw error }
            throw RegistryError(.io, "cannot listen on \(shownHost):\(port): \(error)")
        }
    }
}
