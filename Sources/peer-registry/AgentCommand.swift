import ArgumentParser
import Logging
import RegistryCluster
import RegistryKit
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// `peer-registry agent --etcd URL[,URL...]`: this machine's cluster agent (docs/CLUSTER.md).
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Share this machine's \"scope\":\"cluster\" servers through etcd, and mirror the other machines' servers.",
        discussion: """
            One agent per machine (a second one for the same registry exits 3). Publishes the \
            live entries that say "scope": "cluster" under <prefix><node>/<id>, all attached to \
            one etcd lease kept alive; a loopback URL is rewritten to --advertise, or not \
            published (logged). Mirrors every other node's entries into <registry \
            stem>.cluster.json beside the registry, which `list/resolve/watch --scope cluster` \
            (and the C ABI, the bindings, serve) read. etcd unreachable: the view is kept, marked \
            stale, and resynced when etcd returns. Stops on SIGINT or SIGTERM, revoking its lease \
            (its entries vanish elsewhere at once); killed, its entries vanish within --lease-ttl.
            """)

    @OptionGroup var options: RegistryOptions

    @Option(name: .customLong("etcd"), help: ArgumentHelp("etcd client URLs, comma-separated (http://127.0.0.1:2379,...).", valueName: "urls"))
    var etcd: String

    @Option(help: ArgumentHelp("This machine's name in the cluster (default: the host name).", valueName: "name"))
    var node: String?

    @Option(help: ArgumentHelp("The host other machines reach this one at: loopback URLs are published with it (default: loopback entries are not published).", valueName: "host"))
    var advertise: String?

    @Option(help: ArgumentHelp("The etcd key prefix shared by the cluster's agents.", valueName: "prefix"))
    var prefix = "/peer-registry/v1/"

    @Option(name: .customLong("lease-ttl"), help: ArgumentHelp("Seconds a killed agent's entries outlive it (2 to 3600).", valueName: "seconds"))
    var leaseTTL = 10

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func agentConfiguration() throws -> ClusterAgentConfiguration {
        if let registry = options.registry, registry.isEmpty { throw ValidationError("--registry: the path is empty") }
        let endpoints = etcd.split(separator: ",").map { String($0).trimmingSpaces }.filter { !$0.isEmpty }
        let config = ClusterAgentConfiguration(
            endpoints: endpoints.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }, node: node ?? Self.hostName(),
            advertise: advertise, prefix: prefix, leaseTTL: leaseTTL, registryPath: options.registry)
        do throws(RegistryError) { try config.validate() } catch { throw ValidationError(error.message) }
        return config
    }

    func validate() throws {
        if Logger.Level(rawValue: logLevel) == nil { throw ValidationError("--log-level \(logLevel): use trace, debug, info, notice, warning, error or critical") }
        _ = try agentConfiguration()
    }

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        let level = Logger.Level(rawValue: logLevel) ?? .info
        var logger = Logger(label: "peer-registry.agent") { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        logger.logLevel = level
        let agent = ClusterAgent(configuration: try agentConfiguration(), logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: agent)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    /// The host name up to its first dot, made a valid node name.
    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "node" }
        let full = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let short = full.split(separator: ".").first.map(String.init) ?? ""
        let cleaned = String(short.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "-" }.prefix(64))
        return ServerEntry.isValidNodeName(cleaned) ? cleaned : "node"
    }
}

extension String {
    var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
