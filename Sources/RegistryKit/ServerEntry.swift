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
    /// The fields, shared by copies until one of them changes (copy on write): copying an
    /// entry is one retain. As a plain struct of seventeen fields a copy cost about ten retains
    /// and its release as many, and the registry copies entries wholesale — every read of a
    /// changed file, every listing, every write (at 1,000 entries those copies were a third of
    /// the first read after another process's write).
    private final class Fields: @unchecked Sendable {
        var id: String
        var name: String? = nil
        var url: String? = nil
        var port: Int? = nil
        var transport: Transport? = nil
        var pid: Int32? = nil
        var pidStartTime: UInt64? = nil
        var startedAt: String? = nil
        var lastSeen: String? = nil
        var liveness: Liveness
        var ttlSeconds: Int? = nil
        var capabilities: Capabilities
        var health: Health
        var requiresSession: Bool? = nil
        var metadata: JSONValue? = nil
        var headers: [String: String]? = nil
        var extra: JSONObject
        var isLegacy = false
        var keyOrder = KeyOrder()
        var encoded: EncodedBytes?
        var read: EncodedBytes?

        init(id: String, liveness: Liveness, capabilities: Capabilities, health: Health, extra: JSONObject) {
            self.id = id
            self.liveness = liveness
            self.capabilities = capabilities
            self.health = health
            self.extra = extra
        }

        func copy() -> Fields {
            let c = Fields(id: id, liveness: liveness, capabilities: capabilities, health: health, extra: extra)
            c.name = name
            c.url = url
            c.port = port
            c.transport = transport
            c.pid = pid
            c.pidStartTime = pidStartTime
            c.startedAt = startedAt
            c.lastSeen = lastSeen
            c.ttlSeconds = ttlSeconds
            c.requiresSession = requiresSession
            c.metadata = metadata
            c.headers = headers
            c.isLegacy = isLegacy
            c.keyOrder = keyOrder
            c.encoded = encoded
            c.read = read
            return c
        }
    }

    private var fields: Fields

    /// The fields, unshared first if another copy holds them too.
    private mutating func unique() -> Fields {
        if !isKnownUniquelyReferenced(&fields) { fields = fields.copy() }
        return fields
    }

    /// For a setter: the fields, unshared, with the cached encodings dropped (they no longer
    /// describe the entry).
    private mutating func changing() -> Fields {
        let f = unique()
        f.encoded = nil
        f.read = nil
        return f
    }

    /// `^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`: it names a lease file and splits qualified names.
    public var id: String {
        get { fields.id }
        set { changing().id = newValue }
    }
    public var name: String? {
        get { fields.name }
        set { changing().name = newValue }
    }
    public var url: String? {
        get { fields.url }
        set { changing().url = newValue }
    }
    public var port: Int? {
        get { fields.port }
        set { changing().port = newValue }
    }
    public var transport: Transport? {
        get { fields.transport }
        set { changing().transport = newValue }
    }
    public var pid: Int32? {
        get { fields.pid }
        set { changing().pid = newValue }
    }
    /// The start time of `pid` (Linux: `/proc/<pid>/stat` field 22, clock ticks since boot),
    /// recorded at registration for `pid` liveness so a reused pid is not taken for the server.
    public var pidStartTime: UInt64? {
        get { fields.pidStartTime }
        set { changing().pidStartTime = newValue }
    }
    /// ISO 8601 UTC, e.g. `2026-11-21T09:30:00.000Z`.
    public var startedAt: String? {
        get { fields.startedAt }
        set { changing().startedAt = newValue }
    }
    /// ISO 8601 UTC; updated by `heartbeat`.
    public var lastSeen: String? {
        get { fields.lastSeen }
        set { changing().lastSeen = newValue }
    }
    public var liveness: Liveness {
        get { fields.liveness }
        set { changing().liveness = newValue }
    }
    public var ttlSeconds: Int? {
        get { fields.ttlSeconds }
        set { changing().ttlSeconds = newValue }
    }
    public var capabilities: Capabilities {
        get { fields.capabilities }
        set { changing().capabilities = newValue }
    }
    public var health: Health {
        get { fields.health }
        set { changing().health = newValue }
    }
    public var requiresSession: Bool? {
        get { fields.requiresSession }
        set { changing().requiresSession = newValue }
    }
    /// Anything the registrant wants to publish (any JSON, within the limits).
    public var metadata: JSONValue? {
        get { fields.metadata }
        set { changing().metadata = newValue }
    }
    /// HTTP headers a client sends when it connects (e.g. `Authorization: Bearer …` for a
    /// supervised server's bridge). **Secrets**: the registry file is readable by its owner only,
    /// and servers and tools built on the registry never serve or print them (see
    /// `withoutSecrets`). Names are HTTP tokens, values have no CR, LF or NUL.
    public var headers: [String: String]? {
        get { fields.headers }
        set { changing().headers = newValue }
    }
    /// Fields this version does not know, kept as they were.
    public var extra: JSONObject {
        get { fields.extra }
        set { changing().extra = newValue }
    }
    /// True for an entry written by an older tool without `id` (read as `port-<port>`); it is
    /// written back exactly as it was, without the derived id.
    public internal(set) var isLegacy: Bool {
        get { fields.isLegacy }
        set { changing().isLegacy = newValue }
    }
    /// The order of the keys as read from the file, so a rewrite keeps it. Not part of equality.
    var keyOrder: KeyOrder {
        get { fields.keyOrder }
        set { changing().keyOrder = newValue }
    }
    /// This entry's JSON as last encoded or read; any change to a field drops it, so a write
    /// re-encodes only the entries it changed. Not part of equality.
    var encoded: EncodedBytes? {
        get { fields.encoded }
        set { unique().encoded = newValue }
    }
    /// The bytes this entry was read from in the file, so the next read of a newer version can
    /// recognise it unchanged without parsing it. Dropped by any change. Not part of equality.
    var readBytes: EncodedBytes? {
        get { fields.read }
        set { unique().read = newValue }
    }

    /// Whether `other` declares the same capabilities; at once when they are copies of one entry.
    func sameCapabilities(as other: ServerEntry) -> Bool {
        fields === other.fields || fields.capabilities == other.fields.capabilities
    }

    /// Equal when every field is (key order and cached encodings aside).
    public static func == (a: ServerEntry, b: ServerEntry) -> Bool {
        if a.fields === b.fields { return true }
        let x = a.fields, y = b.fields
        return x.id == y.id && x.name == y.name && x.url == y.url && x.port == y.port && x.transport == y.transport
            && x.pid == y.pid && x.pidStartTime == y.pidStartTime && x.startedAt == y.startedAt
            && x.lastSeen == y.lastSeen && x.liveness == y.liveness && x.ttlSeconds == y.ttlSeconds
            && x.capabilities == y.capabilities && x.health == y.health && x.requiresSession == y.requiresSession
            && x.metadata == y.metadata && x.headers == y.headers && x.extra == y.extra && x.isLegacy == y.isLegacy
    }

    public func hash(into hasher: inout Hasher) {
        let f = fields
        hasher.combine(f.id)
        hasher.combine(f.name)
        hasher.combine(f.url)
        hasher.combine(f.port)
        hasher.combine(f.transport)
        hasher.combine(f.pid)
        hasher.combine(f.pidStartTime)
        hasher.combine(f.startedAt)
        hasher.combine(f.lastSeen)
        hasher.combine(f.liveness)
        hasher.combine(f.ttlSeconds)
        hasher.combine(f.capabilities)
        hasher.combine(f.health)
        hasher.combine(f.requiresSession)
        hasher.combine(f.metadata)
        hasher.combine(f.headers)
        hasher.combine(f.extra)
        hasher.combine(f.isLegacy)
    }

    public init(
        id: String, name: String? = nil, url: String? = nil, port: Int? = nil, transport: Transport? = nil,
        liveness: Liveness = .lease, ttlSeconds: Int? = nil, capabilities: Capabilities = Capabilities(),
        health: Health = Health(), requiresSession: Bool? = nil, metadata: JSONValue? = nil,
        headers: [String: String]? = nil
    ) {
        fields = Fields(id: id, liveness: liveness, capabilities: capabilities, health: health, extra: JSONObject())
        fields.name = name
        fields.url = url
        fields.port = port
        fields.transport = transport
        fields.ttlSeconds = ttlSeconds
        fields.requiresSession = requiresSession
        fields.metadata = metadata
        fields.headers = headers
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

/// Encoded JSON kept with an entry (see `ServerEntry.encoded`). Always equal.
final class EncodedBytes: Sendable, Hashable {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    static func == (_: EncodedBytes, _: EncodedBytes) -> Bool { true }
    func hash(into hasher: inout Hasher) {}
}
