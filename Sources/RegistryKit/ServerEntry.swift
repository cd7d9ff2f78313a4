/// How a server is reached.
public enum Transport: String, Sendable, CaseIterable, Hashable {
    case http, sse, ws, stdio
}

/// How the registry decides that an entry's server is still there (docs/FORMAT.md, "Liveness").
public enum Liveness: String, Sendable, CaseIterable, Hashable {
    /// The registrant holds `flock` on `leases/<id>.lease`; the kernel drops it when the process
    /// dies, however it dies. The default for a process registering itself.
    case lease
    /// Alive while the process `pid` exists with the start time recorded at registration.
    case pid
    /// Alive while `lastSeen` is younger than `ttlSeconds`; the owner calls `heartbeat`.
    case ttl
    /// A static entry (e.g. a remote server); removed only by `unregister`.
    case none
}

/// Health as reported by a server or found by a probe. Raw values are the C ABI's
/// `PEERREG_UNKNOWN` ... `PEERREG_DOWN`.
public enum HealthStatus: Int32, Sendable, CaseIterable, Hashable {
    case unknown = 0, healthy = 1, degraded = 2, down = 3

    /// The name written in the file: `HEALTHY`, `DEGRADED`, `DOWN`, `UNKNOWN`.
    public var name: String {
        switch self {
        case .unknown: "UNKNOWN"
        case .healthy: "HEALTHY"
        case .degraded: "DEGRADED"
        case .down: "DOWN"
        }
    }

    /// Parses a file name (`"HEALTHY"`) — case-insensitively, so `healthy` works on a command line.
    public init?(name: String) {
        switch name.uppercased() {
        case "UNKNOWN": self = .unknown
        case "HEALTHY": self = .healthy
        case "DEGRADED": self = .degraded
        case "DOWN": self = .down
        default: return nil
        }
    }

    /// Resolution preference: lower is better; DOWN never resolves.
    var preference: Int {
        switch self {
        case .healthy: 0
        case .degraded: 1
        case .unknown: 2
        case .down: 3
        }
    }
}

/// The last health reported for a server.
public struct Health: Sendable, Hashable {
    public var status: HealthStatus
    public var message: String?
    /// When it was last reported or checked (ISO 8601, UTC).
    public var lastCheck: String?
    /// Active probes that failed in a row (0 or absent after a success); drives
    /// HEALTHY → DEGRADED → DOWN (see `Registry.probe`).
    public var consecutiveFailures: Int?
    /// Fields this version does not know, kept as they were.
    public var extra: JSONObject

    public init(status: HealthStatus = .unknown, message: String? = nil, lastCheck: String? = nil) {
        self.status = status
        self.message = message
        self.lastCheck = lastCheck
        self.extra = JSONObject()
    }
}

/// What a server declares it offers: tool names, resource URIs (or URI prefixes), prompt names.
public struct Capabilities: Sendable, Hashable {
    public var tools: [String]
    public var resources: [String]
    public var prompts: [String]
    /// Fields this version does not know, kept as they were.
    public var extra: JSONObject

    public init(tools: [String] = [], resources: [String] = [], prompts: [String] = []) {
        self.tools = tools
        self.resources = resources
        self.prompts = prompts
        self.extra = JSONObject()
    }
}

/// One server in the registry (docs/FORMAT.md). A value type: changing it changes nothing on
/// disk until it is passed to `Registry.register`.
public struct ServerEntry: Sendable, Hashable {
    /// `^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`: it names a lease file and splits qualified names.
    public var id: String { didSet { encoded = nil; readBytes = nil } }
    public var name: String? { didSet { encoded = nil; readBytes = nil } }
    public var url: String? { didSet { encoded = nil; readBytes = nil } }
    public var port: Int? { didSet { encoded = nil; readBytes = nil } }
    public var transport: Transport? { didSet { encoded = nil; readBytes = nil } }
    public var pid: Int32? { didSet { encoded = nil; readBytes = nil } }
    /// The start time of `pid` (Linux: `/proc/<pid>/stat` field 22, clock ticks since boot),
    /// recorded at registration for `pid` liveness so a reused pid is not taken for the server.
    public var pidStartTime: UInt64? { didSet { encoded = nil; readBytes = nil } }
    /// ISO 8601 UTC, e.g. `2026-11-21T09:30:00.000Z`.
    public var startedAt: String? { didSet { encoded = nil; readBytes = nil } }
    /// ISO 8601 UTC; updated by `heartbeat`.
    public var lastSeen: String? { didSet { encoded = nil; readBytes = nil } }
    public var liveness: Liveness { didSet { encoded = nil; readBytes = nil } }
    public var ttlSeconds: Int? { didSet { encoded = nil; readBytes = nil } }
    public var capabilities: Capabilities { didSet { encoded = nil; readBytes = nil } }
    public var health: Health { didSet { encoded = nil; readBytes = nil } }
    public var requiresSession: Bool? { didSet { encoded = nil; readBytes = nil } }
    /// Anything the registrant wants to publish (any JSON, within the limits).
    public var metadata: JSONValue? { didSet { encoded = nil; readBytes = nil } }
    /// HTTP headers a client sends when it connects (e.g. `Authorization: Bearer …` for a
    /// supervised server's bridge). **Secrets**: the registry file is readable by its owner only,
    /// and servers and tools built on the registry never serve or print them (see
    /// `withoutSecrets`). Names are HTTP tokens, values have no CR, LF or NUL.
    public var headers: [String: String]? { didSet { encoded = nil; readBytes = nil } }
    /// Fields this version does not know, kept as they were.
    public var extra: JSONObject { didSet { encoded = nil; readBytes = nil } }
    /// True for an entry written by an older tool without `id` (read as `port-<port>`); it is
    /// written back exactly as it was, without the derived id.
    public internal(set) var isLegacy: Bool = false { didSet { encoded = nil; readBytes = nil } }
    /// The order of the keys as read from the file, so a rewrite keeps it. Not part of equality.
    var keyOrder = KeyOrder() { didSet { encoded = nil; readBytes = nil } }
    /// This entry's JSON as last encoded or read; any change to a field drops it, so a write
    /// re-encodes only the entries it changed. Not part of equality.
    var encoded: EncodedBytes? {
        get { caches.encoded }
        set { caches.encoded = newValue }
    }
    /// The bytes this entry was read from in the file, so the next read of a newer version can
    /// recognise it unchanged without parsing it. Dropped by any change. Not part of equality.
    var readBytes: EncodedBytes? {
        get { caches.read }
        set { caches.read = newValue }
    }
    /// Both caches, in a value that is always equal: whether bytes are cached never makes two
    /// entries differ (an Optional would: nil != some).
    private var caches = EntryCaches()

    public init(
        id: String, name: String? = nil, url: String? = nil, port: Int? = nil, transport: Transport? = nil,
        liveness: Liveness = .lease, ttlSeconds: Int? = nil, capabilities: Capabilities = Capabilities(),
        health: Health = Health(), requiresSession: Bool? = nil, metadata: JSONValue? = nil,
        headers: [String: String]? = nil
    ) {
        self.id = id
        self.name = name
        self.url = url
        self.port = port
        self.transport = transport
        self.liveness = liveness
        self.ttlSeconds = ttlSeconds
        self.capabilities = capabilities
        self.health = health
        self.requiresSession = requiresSession
        self.metadata = metadata
        self.headers = headers
        self.extra = JSONObject()
    }

    /// The entry as it may be shown or served to anyone: without `headers` (which hold secrets).
    public var withoutSecrets: ServerEntry {
        guard headers != nil else { return self }
        var copy = self
        copy.headers = nil
        return copy
    }

    /// Whether `other` has the same fields as this entry, `health` and `lastSeen` aside (which
    /// processes other than the owner may report): what an owner's anti-entropy compares.
    func sameOwnedFields(as other: ServerEntry) -> Bool {
        var a = self, b = other
        a.health = Health()
        b.health = Health()
        a.lastSeen = nil
        b.lastSeen = nil
        return a == b
    }

    /// Whether `id` is a valid entry id.
    public static func isValidID(_ id: String) -> Bool {
        let u = id.utf8
        guard let first = u.first, u.count <= 64, isAlnum(first) else { return false }
        return u.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    private static func isAlnum(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
    }
}

/// Key order remembered from the file. Always equal: two entries with the same fields are the
/// same entry however their keys were ordered.
struct KeyOrder: Sendable, Hashable {
    var keys: [String] = []
    static func == (_: KeyOrder, _: KeyOrder) -> Bool { true }
    func hash(into hasher: inout Hasher) {}
}

/// The cached encodings of an entry. Always equal, hashes to nothing.
struct EntryCaches: Sendable, Hashable {
    var encoded: EncodedBytes?
    var read: EncodedBytes?
    static func == (_: EntryCaches, _: EntryCaches) -> Bool { true }
    func hash(into hasher: inout Hasher) {}
}

/// Encoded JSON kept with an entry (see `ServerEntry.encoded`). Always equal.
final class EncodedBytes: Sendable, Hashable {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    static func == (_: EncodedBytes, _: EncodedBytes) -> Bool { true }
    func hash(into hasher: inout Hasher) {}
}
