import ArgumentParser
import RegistryKit
import RegistryServerPolicy

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the live servers: a table, or the library's JSON with --json.")

    @OptionGroup var options: RegistryOptions

    @Flag(help: "Print {\"generation\":N,\"servers\":[...]} (one line) instead of a table.")
    var json = false

    @Flag(help: "Only servers whose health is HEALTHY.")
    var healthy = false

    @Option(help: ArgumentHelp("Only servers with this health (HEALTHY, DEGRADED, DOWN, UNKNOWN).", valueName: "status"))
    var status: String?

    @Option(help: ArgumentHelp("Only servers with this transport (http, sse, ws, stdio).", valueName: "transport"))
    var transport: String?

    @Option(help: ArgumentHelp("Only servers declaring this tool.", valueName: "name"))
    var tool: String?

    @Option(help: ArgumentHelp("Only servers declaring this resource URI or a prefix of it.", valueName: "uri"))
    var resource: String?

    @Option(help: ArgumentHelp("Only servers declaring this prompt.", valueName: "name"))
    var prompt: String?

    @OptionGroup var scope: ScopeOptions

    @OptionGroup var secrets: SecretOptions

    func validate() throws {
        _ = try filter()
    }

    func filter() throws(ValidationError) -> ServerFilter {
        var filter = ServerFilter(tool: tool, resource: resource, prompt: prompt, scope: scope.scope)
        if healthy { filter.healthy = true }
        if let status {
            guard let s = HealthStatus(name: status) else { throw ValidationError("--status \(status): use HEALTHY, DEGRADED, DOWN or UNKNOWN") }
            filter.status = s
        }
        if let transport {
            guard let t = Transport(rawValue: transport.lowercased()) else { throw ValidationError("--transport \(transport): use http, sse, ws or stdio") }
            filter.transport = t
        }
        return filter
    }

    func run() throws {
        let registry = try options.openReadOnly()
        let listing = try registry.list(try filter())
        if json {
            Output.line((secrets.showSecrets ? listing : EntrySecrets.redacted(listing)).jsonText)
            return
        }
        guard !listing.servers.isEmpty else {
            Output.line("no live servers in \(registry.path) (generation \(listing.generation))")
            return
        }
        let supervised = listing.servers.contains { $0.supervisorLabel != nil }
        let cluster = scope.scope == .cluster
        var rows = [["ID", "TRANSPORT", "URL", "HEALTH", "LIVENESS", "PID", "TOOLS"] + (cluster ? ["NODE"] : []) + (supervised ? ["SUPERVISOR"] : [])]
        for e in listing.servers {
            rows.append([
                e.id, e.transport?.rawValue ?? "-", Output.printable(e.url ?? "-"), e.healthLabel, e.livenessLabel,
                e.pid.map(String.init) ?? "-", String(e.capabilities.tools.count),
            ] + (cluster ? [(e.node ?? "(local)") + (e.isStale ? " stale" : "")] : []) + (supervised ? [Output.printable(e.supervisorLabel ?? "-")] : []))
        }
        Output.line(Output.table(rows))
    }
}

struct GetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Print one live server's entry as JSON (exit 2 when there is none).")

    @OptionGroup var options: RegistryOptions
    @OptionGroup var style: JSONStyleOptions
    @OptionGroup var secrets: SecretOptions

    @Argument(help: "The server's id.")
    var id: String

    func run() throws {
        let entry = try options.openReadOnly().get(id)
        style.print(.object(entry.printedJSON(showSecrets: secrets.showSecrets)))
    }
}

struct ResolveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resolve",
        abstract: "Print the live server that handles a tool, resource or prompt, as JSON.",
        discussion: """
            Tools and prompts may be qualified as <server>.<name>. A resource resolves to the \
            longest declared prefix. Exit 2 when nothing handles it, 8 when several equally \
            healthy servers do (the message lists them). With --scope cluster, other machines' \
            servers (mirrored by `peer-registry agent`) are candidates too; a local one wins a tie.
            """)

    enum Kind: String, ExpressibleByArgument, CaseIterable {
        case tool, resource, prompt
        var capability: CapabilityKind {
            switch self {
            case .tool: .tool
            case .resource: .resource
            case .prompt: .prompt
            }
        }
    }

    @OptionGroup var options: RegistryOptions
    @OptionGroup var style: JSONStyleOptions

    @Argument(help: "What NAME is: tool, resource or prompt.")
    var kind: Kind

    @Argument(help: "The tool or prompt name, or the resource URI.")
    var name: String

    @OptionGroup var scope: ScopeOptions

    @OptionGroup var secrets: SecretOptions

    func run() throws {
        let entry = try options.openReadOnly().resolve(kind.capability, name, scope: scope.scope)
        style.print(.object(entry.printedJSON(showSecrets: secrets.showSecrets)))
    }
}
