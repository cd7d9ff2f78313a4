import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import RegistryKit
import RegistryServerPolicy
import ServiceLifecycle
import Synchronization

/// The browser-facing registry server (`peer-registry serve`): the registry file over HTTP, its
/// changes as Server-Sent Events, and a live status page. Read-only: registering stays with the
/// library, the bindings and the CLI.
///
/// Endpoints (docs/CLI.md): `GET /` (status page), `/registry` (the legacy `{"servers":[...]}`
/// shape), `/servers`, `/servers/{id}`, `/resolve`, `/events` (SSE), `/healthz`. Every request
/// goes through the `ServerPolicy` (loopback Host names and origins unless widened, the token
/// on everything but the page's static files) and every connection through its limits.
/// Entries' secret fields (`EntrySecrets`) are never served.
///
/// One `Registry` handle serves every request (a read costs a `stat` when the file is unchanged);
/// one watch feeds every SSE client.
public struct RegistryHTTPServer: Sendable {
    public struct Configuration: Sendable {
        /// Address to listen on; 127.0.0.1 by default. Binding elsewhere does not widen the
        /// Host check: add the name to `access.allowedHosts` (the CLI does this for `--host`).
        public var host: String
        /// Port to listen on; 3001 by default, 0 for any free port (see `run(onRunning:)`).
        public var port: Int
        public var access: AccessPolicy
        /// The token every request but the page's files must show; nil: none (tests, embedding).
        public var token: AccessToken?
        /// Answer `GET /registry` without the token (seed 000's page fetches it so).
        public var openLegacyRegistry: Bool
        public var limits: ServerLimits
        /// How often SSE clients get a keep-alive comment.
        public var keepAliveInterval: Duration
        /// Where the status page's files are; nil: next to the executable or in the source tree.
        public var staticDirectory: String?

        public init(host: String = "127.0.0.1", port: Int = 3001, access: AccessPolicy = AccessPolicy(),
                    token: AccessToken? = nil, openLegacyRegistry: Bool = false, limits: ServerLimits = ServerLimits(),
                    keepAliveInterval: Duration = .seconds(15), staticDirectory: String? = nil) {
            self.host = host
            self.port = port
            self.access = access
            self.token = token
            self.openLegacyRegistry = openLegacyRegistry
            self.limits = limits
            self.keepAliveInterval = keepAliveInterval
            self.staticDirectory = staticDirectory
        }

        /// The policy these settings make.
        public var policy: ServerPolicy {
            ServerPolicy(access: access, token: token, limits: limits,
                         publicPaths: Set(StaticAssets.files.map(\.path)),
                         openPaths: openLegacyRegistry ? ["/registry"] : [])
        }
    }

    public var registry: Registry { source.registry }
    public let source: RegistrySource
    public let configuration: Configuration
    let hub: EventHub
    /// `/events?scope=cluster`: this machine's and the other machines' entries (docs/CLUSTER.md).
    let clusterHub: EventHub
    let assets: StaticAssets
    let logger: Logger
    let tracker: ConnectionTracker
    let listingCache = ListingCache()
    /// Appended to 401 answers: where the token can be found.
    public var tokenHint = ""

    /// Prepares a server on `registry` (nothing listens until `run`).
    public init(registry: Registry, configuration: Configuration = Configuration(), logger: Logger? = nil) {
        self.init(source: RegistrySource(registry: registry), configuration: configuration, logger: logger)
    }

    /// Prepares a server on `source`, which reopens the registry when its directory is replaced.
    public init(source: RegistrySource, configuration: Configuration = Configuration(), logger: Logger? = nil) {
        self.source = source
        self.configuration = configuration
        self.hub = EventHub(source: source, clientBufferBytes: configuration.limits.clientBufferBytes)
        self.clusterHub = EventHub(source: source, clientBufferBytes: configuration.limits.clientBufferBytes, scope: .cluster)
        self.assets = StaticAssets(directory: configuration.staticDirectory)
        self.tracker = ConnectionTracker(limits: configuration.limits)
        var log = logger ?? Logger(label: "peer-registry.serve")
        if logger == nil { log.logLevel = .warning }
        self.logger = log
    }

    /// Where the status page's files were found (nil: not found, the page says so).
    public var staticDirectory: String? { assets.directory }

    /// Listens and serves until the task is cancelled or, with `stopOnSignals`, until SIGINT or
    /// SIGTERM arrives; open SSE streams are then ended, and connections still open after
    /// `limits.shutdownDeadline` (clients that do not read) are closed.
    /// - Parameter onRunning: called once listening, with the bound port (useful with port 0).
    /// - Throws: `PolicyError` for a policy that would open the registry to any page; when the
    ///   address cannot be bound (NIO's `IOError`, e.g. address in use).
    public func run(stopOnSignals: Bool = false, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        try configuration.policy.validate()
        hub.prime()
        clusterHub.prime()
        let router = makeRouter()
        let hubs = [self.hub, self.clusterHub]
        let keepAlive = configuration.keepAliveInterval
        let app = Application(
            router: router,
            server: PolicedServer.http1(tracker),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "peer-registry"),
            services: hubs.map { HubService(hub: $0, keepAlive: keepAlive) },
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger
        )
        try await PolicedServer.run(app, tracker: tracker, stopOnSignals: stopOnSignals, logger: logger)
    }

    func makeRouter() -> Router<PolicyRequestContext> {
        let router = Router(context: PolicyRequestContext.self, options: [.autoGenerateHeadEndpoints])
        router.add(middleware: PolicyMiddleware(policy: configuration.policy, tokenHint: tokenHint))
        let source = self.source
        let hub = self.hub
        let clusterHub = self.clusterHub
        let assets = self.assets
        let tracker = self.tracker
        let cache = self.listingCache

        for file in StaticAssets.files {
            router.get(RouterPath(file.path)) { _, _ in assets.response(for: file.path) ?? HTTPJSON.error(.notFound, "no such file", code: "HTTP_404") }
        }

        // The shape existing readers of servers.json expect: {"servers":[{port,url,pid,startedAt,...}]}.
        router.get("/registry") { _, _ in
            do throws(RegistryError) {
                let listing = try source.registry.list()
                return HTTPJSON.response(.ok, bytes: cache.bytes(for: listing, shape: .legacy))
            } catch {
                return HTTPJSON.error(error)
            }
        }

        router.get("/servers") { request, _ in
            do throws(RegistryError) {
                let filter = try ServerFilter(query: request.uri.queryParameters)
                let listing = try source.registry.list(filter)
                if filter == ServerFilter() {
                    // One encoding shared by every client of this state: a client that does not
                    // read holds no copy of its own.
                    return HTTPJSON.response(.ok, bytes: cache.bytes(for: listing, shape: .servers))
                }
                return HTTPJSON.response(.ok, EntrySecrets.redacted(listing).jsonText)
            } catch {
                return HTTPJSON.error(error)
            }
        }

        router.get("/servers/:id") { _, context in
            let id = context.parameters.get("id") ?? ""
            do throws(RegistryError) {
                return HTTPJSON.response(.ok, EntrySecrets.redacted(try source.registry.get(id)).jsonText)
            } catch {
                return HTTPJSON.error(error)
            }
        }

        router.get("/resolve") { request, _ in
            let query = request.uri.queryParameters
            let asked = CapabilityKind.allCases.compactMap { kind in query[Substring(kind.name)].map { (kind, String($0)) } }
            guard asked.count == 1, let (kind, name) = asked.first else {
                return HTTPJSON.error(.badRequest, "give exactly one of ?tool=NAME, ?resource=URI, ?prompt=NAME", code: RegistryError.Code.invalid.name)
            }
            // &scope=cluster: the other machines' servers too (docs/CLUSTER.md).
            var scope = EntryScope.local
            if let raw = query["scope"] {
                guard let s = EntryScope(rawValue: String(raw).lowercased()) else {
                    return HTTPJSON.error(.badRequest, "scope=\(raw.prefix(20)): use local or cluster", code: RegistryError.Code.invalid.name)
                }
                scope = s
            }
            do throws(RegistryError) {
                return HTTPJSON.response(.ok, EntrySecrets.redacted(try source.registry.resolve(kind, name, scope: scope)).jsonText)
            } catch {
                return HTTPJSON.error(error)
            }
        }

        router.get("/healthz") { _, _ in
            let registry = source.registry
            let path = JSONValue.string(registry.path)
            let replaced = source.directoryWasReplaced()
            do throws(RegistryError) {
                let listing = try registry.list()
                return HTTPJSON.response(replaced ? .serviceUnavailable : .ok, JSONValue.object(JSONObject([
                    ("ok", .bool(!replaced)), ("registry", path), ("generation", .int(listing.generation)),
                    ("servers", .int(listing.servers.count)), ("sseClients", .int(hub.clientCount + clusterHub.clientCount)),
                    ("connections", .int(tracker.count)), ("maxConnections", .int(tracker.maxConnections)),
                    ("eventID", .string(hub.currentEventID)),
                ])).jsonText)
            } catch {
                return HTTPJSON.response(.serviceUnavailable, JSONValue.object(JSONObject([
                    ("ok", false), ("registry", path), ("error", .string(error.message)), ("code", .string(error.code.name)),
                ])).jsonText)
            }
        }

        router.get("/events") { request, context in
            // ?scope=cluster: the other machines' entries too, keyed by node and id.
            var scope = EntryScope.local
            if let raw = request.uri.queryParameters["scope"] {
                guard let s = EntryScope(rawValue: String(raw).lowercased()) else {
                    return HTTPJSON.error(.badRequest, "scope=\(raw.prefix(20)): use local or cluster", code: RegistryError.Code.invalid.name)
                }
                scope = s
            }
            let subscription = (scope == .cluster ? clusterHub : hub).subscribe(lastEventID: request.headers[EventHub.lastEventIDHeader])
            // A client that leaves ends its stream now, not at the next message.
            context.channel.closeFuture.whenComplete { _ in subscription.cancel() }
            var headers = HTTPFields()
            headers[.contentType] = "text/event-stream; charset=utf-8"
            headers[.cacheControl] = "no-store"
            headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                try await withGracefulShutdownHandler {
                    for await message in subscription.messages {
                        try await writer.write(message)
                        subscription.budget.release(message.readableBytes)
                    }
                } onGracefulShutdown: {
                    // Ends every stream now, so the server's shutdown does not wait for browsers.
                    hub.shutdown()
                    clusterHub.shutdown()
                }
                try await writer.finish(nil)
            })
        }
        return router
    }
}

extension EventHub {
    static let lastEventIDHeader = HTTPField.Name("Last-Event-ID")!
}

/// Runs the event hub for as long as the application runs.
struct HubService: Service {
    let hub: EventHub
    let keepAlive: Duration

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await hub.run(keepAlive: keepAlive)
        }
        hub.shutdown()
    }
}

/// The last unfiltered listing's encodings (secrets removed), one per answer shape, shared by
/// every request for it: each shape is encoded once per state of the registry, not per request.
final class ListingCache: Sendable {
    enum Shape: Int, CaseIterable, Sendable {
        /// `GET /servers`: `{"generation":N,"servers":[...]}`.
        case servers
        /// `GET /registry`: `LegacyRegistry.json`.
        case legacy
    }

    private let last = Mutex<[Shape: (RegistryListing, ByteBuffer)]>([:])

    func bytes(for listing: RegistryListing, shape: Shape) -> ByteBuffer {
        if let (known, bytes) = last.withLock({ $0[shape] }), known == listing { return bytes }
        let text: String
        switch shape {
        case .servers: text = EntrySecrets.redacted(listing).jsonText
        case .legacy: text = LegacyRegistry.json(listing)
        }
        let bytes = ByteBuffer(string: text + "\n")
        last.withLock { $0[shape] = (listing, bytes) }
        return bytes
    }
}

/// `GET /registry`: what readers written before this library expect.
enum LegacyRegistry {
    /// `{"servers":[...]}`: each live entry with a URL and a port, with `port`, `url`, `pid` and
    /// `startedAt` always present (`pid` null when the entry names no process), then every other
    /// field. Entries without a URL or port (stdio servers) are left out: such a reader could only
    /// fail on them.
    static func json(_ listing: RegistryListing) -> String {
        var servers: [JSONValue] = []
        for entry in listing.servers {
            guard let url = entry.url, let port = entry.port else { continue }
            var object = JSONObject([
                ("port", .int(port)), ("url", .string(url)),
                ("pid", entry.pid.map { .int($0) } ?? .null),
                ("startedAt", entry.startedAt.map { .string($0) } ?? .null),
            ])
            for m in EntrySecrets.redacted(entry.jsonObject).members where object[m.key] == nil { object[m.key] = m.value }
            if object["id"] == nil { object["id"] = .string(entry.id) }
            servers.append(.object(object))
        }
        return JSONValue.object(JSONObject([("servers", .array(servers))])).jsonText
    }
}

extension ServerFilter {
    /// `?healthy=true&status=DEGRADED&transport=http&tool=x&resource=uri&prompt=p&scope=cluster`.
    /// - Throws: `.invalid` for an unknown parameter or a bad value.
    init(query: FlatDictionary<Substring, Substring>) throws(RegistryError) {
        self.init()
        for (key, value) in query {
            let v = String(value)
            switch key {
            case "healthy":
                switch v.lowercased() {
                case "true", "1", "": healthy = true
                case "false", "0": healthy = false
                default: throw RegistryError(.invalid, "healthy=\(v.prefix(20)): use true or false")
                }
            case "status":
                guard let s = HealthStatus(name: v) else { throw RegistryError(.invalid, "status=\(v.prefix(20)): use HEALTHY, DEGRADED, DOWN or UNKNOWN") }
                status = s
            case "transport":
                guard let t = Transport(rawValue: v.lowercased()) else { throw RegistryError(.invalid, "transport=\(v.prefix(20)): use http, sse, ws or stdio") }
                transport = t
            case "tool": tool = v
            case "resource": resource = v
            case "prompt": prompt = v
            case "scope":
                guard let sc = EntryScope(rawValue: v.lowercased()) else { throw RegistryError(.invalid, "scope=\(v.prefix(20)): use local or cluster") }
                scope = sc
            default:
                throw RegistryError(.invalid, "unknown filter \"\(key.prefix(40))\" (known: healthy, status, transport, tool, resource, prompt, scope)")
            }
        }
    }
}
