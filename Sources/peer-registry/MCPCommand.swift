import ArgumentParser
import RegistryKit
import RegistryMCP
import RegistryServerPolicy
import Synchronization
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
            carries only MCP messages, a line may hold at most --max-line-bytes, and the server \
            stops when its input ends. With --http, it listens on 127.0.0.1 at /mcp, prints \
            the URL on stdout once listening (http://127.0.0.1:PORT/mcp?token=...: every \
            request needs the token, as ?token= or Authorization: Bearer; it is also in \
            <registry dir>/runtime/mcp-<port>.json), and stops on SIGINT or SIGTERM within \
            --shutdown-deadline.
            """)

    @OptionGroup var options: RegistryOptions

    @Option(name: .customLong("http"), help: ArgumentHelp(
        "Serve streamable HTTP on this port of 127.0.0.1 instead of stdio (0: any free port; the URL printed says which).",
        valueName: "port"))
    var httpPort: Int?

    @Option(name: .customLong("max-line-bytes"), help: ArgumentHelp(
        "stdio: the longest message line read (default 16777216); a longer one gets a parse error and is skipped.",
        valueName: "bytes"))
    var maxLineBytes: Int = LineTransport.defaultMaxLineBytes

    @OptionGroup var limitOptions: LimitOptions

    func validate() throws {
        if let httpPort, !(0...65535).contains(httpPort) { throw ValidationError("--http \(httpPort): use 0 to 65535") }
        if !(1024...(1 << 30)).contains(maxLineBytes) { throw ValidationError("--max-line-bytes \(maxLineBytes): use 1024 to 1073741824") }
    }

    func run() async throws {
        // A client that goes away must not kill the server with SIGPIPE mid-write.
        signal(SIGPIPE, SIG_IGN)
        let registry = try options.open()
        let server = RegistryMCPServer(registry: registry)
        if let httpPort {
            let path = registry.path
            let token = try AccessToken.forRegistry(at: path)
            var httpOptions = RegistryMCPServer.HTTPOptions(port: httpPort, token: token)
            httpOptions.limits = limitOptions.limits
            httpOptions.tokenHint = " (the token is in \(RuntimeFile.directory(forRegistryAt: path))/token)"
            let runtimeFile = Mutex<RuntimeFile?>(nil)
            defer { runtimeFile.withLock { $0?.remove() } }
            try await server.serveHTTP(httpOptions) { port in
                let url = "http://127.0.0.1:\(port)/mcp"
                do throws(PolicyError) {
                    let file = try RuntimeFile.write(registryPath: path, name: "mcp-\(port)", fields: [
                        ("url", .string(url)), ("port", .int(port)), ("token", .string(token.value)),
                    ])
                    runtimeFile.withLock { $0 = file }
                } catch {
                    Output.error("warning: \(error.message)")
                }
                Output.line("\(url)?token=\(token.value)")
                Output.error("MCP server for \(path) listening at \(url) (send the token as ?token= or Authorization: Bearer)")
            }
        } else {
            try await server.serveStdio(maxLineBytes: maxLineBytes)
        }
        await server.shutdown()
    }
}
