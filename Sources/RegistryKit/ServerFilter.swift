/// Which live entries `Registry.list` returns. Every condition set must hold.
public struct ServerFilter: Sendable, Hashable {
    /// `true`: only HEALTHY entries; `false`: only entries that are not HEALTHY.
    public var healthy: Bool?
    /// Only entries with this health status.
    public var status: HealthStatus?
    public var transport: Transport?
    /// Only entries declaring this tool.
    public var tool: String?
    /// Only entries declaring this resource, or a prefix of it.
    public var resource: String?
    /// Only entries declaring this prompt.
    public var prompt: String?
    /// Where to look: nil or `.local`, this machine's registry; `.cluster`, also the other
    /// machines' entries mirrored by the cluster agent (each carrying `node`), after the local
    /// ones (docs/CLUSTER.md).
    public var scope: EntryScope?

    public init(healthy: Bool? = nil, status: HealthStatus? = nil, transport: Transport? = nil,
                tool: String? = nil, resource: String? = nil, prompt: String? = nil, scope: EntryScope? = nil) {
        self.healthy = healthy
        self.status = status
        self.transport = transport
        self.tool = tool
        self.resource = resource
        self.prompt = prompt
        self.scope = scope
    }

    /// Parses the C ABI's filter object (`{"healthy":true,"transport":"http","tool":"x"}`,
    /// `"scope":"cluster"` to include the other machines' entries).
    /// - Throws: `.invalid` for unknown keys or wrong types.
    public init(jsonText: String, limits: RegistryLimits = .default) throws(RegistryError) {
        guard case .object(let o) = try JSONValue.parse(jsonText, limits: limits) else {
            throw RegistryError(.invalid, "a filter must be a JSON object")
        }
        self.init()
        for m in o.members {
            switch (m.key, m.value) {
            case (_, .null): continue
            case ("healthy", .bool(let b)): healthy = b
            case ("status", .string(let s)):
                guard let st = HealthStatus(name: s) else { throw RegistryError(.invalid, "filter \"status\": must be HEALTHY, DEGRADED, DOWN or UNKNOWN") }
                status = st
            case ("transport", .string(let s)):
                guard let t = Transport(rawValue: s) else { throw RegistryError(.invalid, "filter \"transport\": must be http, sse, ws or stdio") }
                transport = t
            case ("tool", .string(let s)): tool = s
            case ("resource", .string(let s)): resource = s
            case ("prompt", .string(let s)): prompt = s
            case ("scope", .string(let s)):
                guard let sc = EntryScope(rawValue: s) else { throw RegistryError(.invalid, "filter \"scope\": must be local or cluster") }
                scope = sc
            case ("healthy", _), ("status", _), ("transport", _), ("tool", _), ("resource", _), ("prompt", _), ("scope", _):
                throw RegistryError(.invalid, "filter \"\(m.key)\": wrong type")
            default:
                throw RegistryError(.invalid, "unknown filter key \"\(m.key.prefix(64))\" (known: healthy, status, transport, tool, resource, prompt, scope)")
            }
        }
    }

    /// No condition and this machine's scope: every live local entry.
    var selectsAllLocal: Bool {
        healthy == nil && status == nil && transport == nil && tool == nil && resource == nil && prompt == nil
            && (scope ?? .local) == .local
    }

    func matches(_ e: ServerEntry) -> Bool {
        if let healthy, (e.health.status == .healthy) != healthy { return false }
        if let status, e.health.status != status { return false }
        if let transport, e.transport != transport { return false }
        if let tool, !e.capabilities.tools.contains(tool) { return false }
        if let prompt, !e.capabilities.prompts.contains(prompt) { return false }
        if let resource, !e.capabilities.resources.contains(where: { ResourceMatch.handles($0, resource) }) { return false }
        return true
    }
}

/// What `Registry.list` returns: the live entries and the file generation they come from.
public struct RegistryListing: Sendable, Hashable {
    public var generation: Int64
    public var servers: [ServerEntry]

    public init(generation: Int64, servers: [ServerEntry]) {
        self.generation = generation
        self.servers = servers
    }

    /// `{"generation":N,"servers":[...]}`, as the C ABI hands it out. Entries reuse the JSON
    /// they were last written with, so listing an unchanged registry encodes nothing.
    public var jsonText: String {
        var out: [UInt8] = []
        out.reserveCapacity(64 + servers.count * 512)
        out.append(contentsOf: "{\"generation\":\(generation),\"servers\":".utf8)
        ServerEntry.appendJSONArray(servers, into: &out)
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }
}

extension ServerEntry {
    /// Appends `[entry,entry,...]` (see `appendJSON`).
    static func appendJSONArray(_ entries: [ServerEntry], into out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        for (i, e) in entries.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            e.appendJSON(into: &out)
        }
        out.append(UInt8(ascii: "]"))
    }
}

/// What kind of capability a name is resolved as.
public enum CapabilityKind: Int32, Sendable, CaseIterable {
    case tool = 1, resource = 2, prompt = 3

    public var name: String {
        switch self {
        case .tool: "tool"
        case .resource: "resource"
        case .prompt: "prompt"
        }
    }
}

/// Which declared resources handle a URI: the same URI, or a prefix of it that ends at a
/// boundary — the declaration ends with `/`, `:`, `?` or `#`, or the URI continues with `/`,
/// `?` or `#` right after it. So `resource://journey/` and `resource://journey/trips` handle
/// `resource://journey/trips/1`, but `resource://journey/trips/42` does not handle `.../421`.
enum ResourceMatch {
    static func handles(_ declared: String, _ uri: String) -> Bool {
        let d = declared.utf8, u = uri.utf8
        guard u.count >= d.count, u.starts(with: d) else { return false }
        if u.count == d.count { return true }
        if let last = d.last, last == UInt8(ascii: "/") || last == UInt8(ascii: ":") || last == UInt8(ascii: "?") || last == UInt8(ascii: "#") {
            return true
        }
        let next = u[u.index(u.startIndex, offsetBy: d.count)]
        return next == UInt8(ascii: "/") || next == UInt8(ascii: "?") || next == UInt8(ascii: "#")
    }
}
