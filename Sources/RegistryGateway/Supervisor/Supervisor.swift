#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import RegistryKit
import RegistryServerPolicy
import ServiceLifecycle
import Synchronization

/// `peer-registry supervise CONFIG` as a `Service`: runs every enabled server of the
/// configuration (each with its bridge, processes and registry entry), watches the file, and
/// on graceful shutdown stops every process and removes every entry.
///
/// Reload: a changed entry restarts that server only; added and removed entries start and stop;
/// a file that does not parse (or names a missing variable) changes nothing and is reported.
public final class Supervisor: Service, Sendable {
    public struct Options: Sendable {
        /// The configuration file.
        public var configPath: String
        /// Where each server's stderr log goes (nil: no files).
        public var logDirectory: String?
        /// How often the configuration file is checked for changes.
        public var watchInterval: Duration = .milliseconds(500)
        /// What `${VAR}` expands from.
        public var environment: [String: String]

        public init(configPath: String, logDirectory: String?, environment: [String: String]) {
            self.configPath = configPath
            self.logDirectory = logDirectory
            self.environment = environment
        }
    }

    public let options: Options
    public let registry: Registry
    let logger: Logger
    let group: any EventLoopGroup

    private struct Running {
        let server: ServerSupervisor
        let stop: AsyncStream<Void>.Continuation
    }
    private let running = Mutex<[String: Running]>([:])
    private let initial: SupervisorConfig

    /// Reads and checks the configuration; nothing starts until `run`.
    /// - Throws: `ConfigError` (with file position) when the file cannot be used.
    public init(options: Options, registry: Registry, logger: Logger) throws(ConfigError) {
        self.options = options
        self.registry = registry
        self.logger = logger
        self.group = MultiThreadedEventLoopGroup.singleton
        self.initial = try Self.load(options)
        for w in initial.warnings { logger.warning("\(w)") }
    }

    /// The servers the configuration enables.
    public var configuredServers: [ServerConfig] { initial.servers }

    /// The running server behind a registry entry, when it is one of this supervisor's own
    /// (same id, its bridge's URL, its token): the gateway then reaches it in process.
    public func server(behind entry: ServerEntry) -> ServerSupervisor? {
        guard let server = running.withLock({ $0[entry.id]?.server }), server.isBehind(entry) else { return nil }
        return server
    }

    static func load(_ options: Options) throws(ConfigError) -> SupervisorConfig {
        guard let bytes = readFile(options.configPath) else {
            throw ConfigError(file: options.configPath, line: 0, column: 0, message: "cannot read: \(String(cString: strerror(errno)))")
        }
        return try SupervisorConfig.parse(bytes, file: options.configPath, environment: options.environment)
    }

    public func run() async throws {
        let started = ExitWatcher.start()
        if started != 0 { throw SpawnError(message: "cannot start the spawner threads: \(String(cString: strerror(started)))") }
        if let dir = options.logDirectory { mkdir(dir, 0o700) }
        await withDiscardingTaskGroup { group in
            logger.info("supervising", metadata: ["servers": "\(initial.servers.count)", "disabled": "\(initial.disabled.count)", "config": "\(options.configPath)"])
            for server in initial.servers { start(server, in: &group) }
            group.addTask { await self.watch(startingWith: self.initial) }
            group.addTask {
                try? await gracefulShutdown()
                self.reloadStarts.continuation.finish()
            }
            // Servers added or changed by a reload start here, in this group, until shutdown.
            for await config in reloadStarts.stream { start(config, in: &group) }
            logger.info("stopping every server")
            let all = running.withLock { r in
                defer { r = [:] }
                return Array(r.values)
            }
            shuttingDown.store(true, ordering: .relaxed)
            for r in all { r.stop.finish() }
            // Not cancelled: each server stops its processes with their grace period.
        }
    }

    private func start(_ config: ServerConfig, in group: inout DiscardingTaskGroup) {
        let server = ServerSupervisor(config: config, registry: registry, group: self.group, logDirectory: options.logDirectory, logger: logger)
        let (stopped, stop) = AsyncStream<Void>.makeStream()
        running.withLock { $0[config.id] = Running(server: server, stop: stop) }
        group.addTask { await Self.serve(server, until: stopped, group: self.group) }
    }

    /// One server: its bridge on 127.0.0.1 (`/mcp`, and the legacy `/sse` + `/messages`), then
    /// discovery and registration; at the end every
    /// process stopped and the entry removed.
    static func serve(_ server: ServerSupervisor, until stopped: AsyncStream<Void>, group: any EventLoopGroup) async {
        let bridge = Bridge(server: server)
        let policy = Bridge.policy(token: server.token)
        let router = Router(context: PolicyRequestContext.self)
        router.add(middleware: PolicyMiddleware(
            policy: policy, allowedMethods: "GET, POST, DELETE, OPTIONS",
            allowedHeaders: "Accept, Authorization, Content-Type, Last-Event-ID, Mcp-Session-Id, Mcp-Protocol-Version",
            exposedHeaders: "Mcp-Session-Id", cookiePaths: [],
            tokenHint: " (the \"headers\" of the server's registry entry)"))
        for method in [HTTPRequest.Method.post, .get, .delete] {
            router.on("/mcp", method: method) { request, context in try await bridge.respond(to: request, channel: context.channel) }
        }
        // The legacy HTTP+SSE transport (MCP 2024-11-05), under the same policy.
        router.get(RouterPath(Bridge.legacyStreamPath)) { request, context in bridge.legacyStream(request, channel: context.channel) }
        router.post(RouterPath(Bridge.legacyMessagesPath)) { request, _ in try await bridge.legacyPost(request) }
        let tracker = ConnectionTracker(limits: policy.limits)
        let httpLogger = Logger(label: "peer-registry.supervise.http", factory: { _ in SwiftLogNoOpLogHandler() })
        let (bound, boundContinuation) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router,
            server: PolicedServer.http1(tracker),
            configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: server.config.port), serverName: nil),
            onServerRunning: { channel in
                boundContinuation.yield(channel.localAddress?.port ?? server.config.port)
                boundContinuation.finish()
            },
            eventLoopGroupProvider: .shared(group),
            logger: httpLogger
        )
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                do {
                    // Stopped by cancellation; every connection is closed then (PolicedServer).
                    try await PolicedServer.run(app, tracker: tracker, stopOnSignals: false, logger: httpLogger)
                } catch {
                    server.log(.error, "bridge stopped", ["error": "\(error)", "port": "\(server.config.port)"])
                }
                boundContinuation.finish()
            }
            tasks.addTask {
                for await _ in stopped {}
            }
            tasks.addTask {
                guard let port = await bound.first(where: { _ in true }) else { return }
                server.bound(port: port)
                await server.startUp()
                await bridge.expireIdleSessions()
            }
            // Whichever ends first (a stop, or a bridge that could not listen) ends the server.
            _ = await tasks.next()
            await bridge.closeAll()
            await server.shutDown()
            tasks.cancelAll()
        }
    }

    // MARK: - Reload

    private func watch(startingWith first: SupervisorConfig) async {
        var current = first
        var lastBytes = Self.readFile(options.configPath)
        var reportedBytes: [UInt8]?
        while !Task.isCancelled, !shuttingDown.load(ordering: .relaxed) {
            do { try await Task.sleep(for: options.watchInterval) } catch { return }
            if shuttingDown.load(ordering: .relaxed) { return }
            guard let bytes = Self.readFile(options.configPath), bytes != lastBytes else { continue }
            let next: SupervisorConfig
            do {
                next = try SupervisorConfig.parse(bytes, file: options.configPath, environment: options.environment)
            } catch {
                if bytes != reportedBytes {
                    logger.error("configuration not reloaded, the running servers stay as they are: \(error)")
                    reportedBytes = bytes
                }
                continue
            }
            lastBytes = bytes
            reportedBytes = nil
            for w in next.warnings { logger.warning("\(w)") }
            await apply(from: current, to: next)
            current = next
        }
    }

    private func apply(from old: SupervisorConfig, to new: SupervisorConfig) async {
        let oldByID = Dictionary(old.servers.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let newByID = Dictionary(new.servers.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let removed = oldByID.keys.filter { newByID[$0] == nil }
        let changed = newByID.keys.filter { oldByID[$0] != nil && oldByID[$0] != newByID[$0] }
        let added = newByID.keys.filter { oldByID[$0] == nil }
        if removed.isEmpty && changed.isEmpty && added.isEmpty { return }
        logger.info("configuration reloaded", metadata: [
            "added": "\(added.sorted())", "removed": "\(removed.sorted())", "changed": "\(changed.sorted())"])
        // Stop first (so a changed server's port and id are free), wait until each is gone.
        for id in removed + changed {
            guard let r = running.withLock({ $0.removeValue(forKey: id) }) else { continue }
            r.stop.finish()
            for _ in 0..<3000 {
                if (try? registry.get(id)) == nil { break }
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
        for id in new.servers.map(\.id) where changed.contains(id) || added.contains(id) {
            if let config = newByID[id] { reloadStarts.continuation.yield(config) }
        }
    }

    private let reloadStarts = AsyncStream<ServerConfig>.makeStream()
    private let shuttingDown = Atomic<Bool>(false)

    static func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; return nil }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
            if out.count > 4 << 20 { return out }
        }
    }
}
