import ArgumentParser
import RegistryKit
import RegistryMCP
#if canImport(Glibc)
import Glibc
#endif

/// `peer-registry mcp`: the registry as an MCP server, for AI clients (docs/MCP.md).
struct MCPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp",
        abstract: "Serve the registry as an MCP server: on stdio, or streamable HTTP with --http.",
        discussion: """
            Tools: instances/list, servers/get, servers/resolve, servers/health. Resources: \
            registry://servers (the live list) and registry://servers/{id}, with subscriptions; \
            resource notifications when the registry changes (docs/MCP.md). On stdio, stdout \
            carries only MCP messages and the server stops when its input ends. With --http, \
            it listens on 127.0.0.1 at /mcp, prints the URL on stdout once listening, and stops \
            on SIGINT or SIGTERM.
            """)

    @OptionGroup var options: RegistryOptions

    @Option(name: .customLong("http"), help: ArgumentHelp(
        "Serve streamable HTTP on this port of 127.0.0.1 instead of stdio (0: any free port; the URL printed says which).",
        valueName: "port"))
    var httpPort: Int?

    func validate() throws {
        if let httpPort, !(0...65535).contains(httpPort) { throw ValidationError("--http \(httpPort): use 0 to 65535") }
    }

    func run() async throws {
        // A client that goes away must not kill the server with SIGPIPE mid-write.
        signal(SIGPIPE, SIG_IGN)
        let registry = try options.open()
        let server = RegistryMCPServer(registry: registry)
        if let httpPort {
            let path = registry.path
            try await server.serveHTTP(.init(port: httpPort)) { port in
                Output.lineFlushed("http://127.0.0.1:\(port)/mcp")
                Output.note("MCP server for \(path) listening")
            }
        } else {
            try await server.serveStdio()
        }
        await server.shutdown()
    }
}
