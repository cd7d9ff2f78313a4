/// Where an entry is visible, and where a caller looks (docs/CLUSTER.md).
///
/// As an entry's `scope`: `local` (the default) keeps it on this machine; `cluster` lets the
/// cluster agent (`peer-registry agent`) publish it to the other machines. As a filter's or a
/// resolve's scope: `local` (the default) looks at this machine's registry only; `cluster`
/// looks at this machine's registry and at the other machines' entries that the agent mirrors
/// into the cluster view beside it.
public enum EntryScope: String, Sendable, CaseIterable, Hashable {
    case local, cluster
}

extension ServerEntry {
    /// `"scope"` in the file: `.cluster` when the entry opts in to publication by the cluster
    /// agent, `.local` otherwise (absent means local, so nothing leaks by accident). Stored
    /// with the entry's other fields; older readers keep it as an unknown field.
    public var scope: EntryScope {
        get { extra["scope"]?.stringValue.flatMap(EntryScope.init(rawValue:)) ?? .local }
        set { extra["scope"] = newValue == .local ? nil : .string(newValue.rawValue) }
    }

    /// The machine (agent `--node` name) a remote entry lives on; nil for this machine's
    /// entries. Set by the cluster agent in the view; `register` refuses it.
    public var node: String? {
        get { extra["node"]?.stringValue }
        set { extra["node"] = newValue.map(JSONValue.string) }
    }

    /// True for a remote entry whose freshness cannot be vouched for: this machine's agent has
    /// lost etcd, or is not running. Such an entry is the last known state of its node (it
    /// still lists and resolves, after fresh candidates). Never set on local entries.
    public var isStale: Bool {
        get { extra["stale"]?.boolValue ?? false }
        set { extra["stale"] = newValue ? .bool(true) : nil }
    }

    /// Whether `name` can be a node name: the same rule as an id (it names a key segment in
    /// etcd and appears in qualified names).
    public static func isValidNodeName(_ name: String) -> Bool { isValidID(name) }

    /// The identity of an entry across the cluster: its id on this machine, `node/id` for a
    /// remote one (ids contain no slash, so the two never collide).
    public var clusterKey: String { node.map { $0 + "/" + id } ?? id }

    /// What `register` accepts of the cluster fields: `scope` is `local` or `cluster`; `node`
    /// and `stale` belong to the agent's view and are refused in a registration.
    static func validateClusterFields(_ extra: JSONObject) throws(RegistryError) {
        if let v = extra["scope"], v != .null {
            guard let s = v.stringValue, EntryScope(rawValue: s) != nil else {
                throw RegistryError(.invalid, "field \"scope\": must be \"local\" or \"cluster\"")
            }
        }
        for key in ["node", "stale"] where extra[key] != nil {
            throw RegistryError(.invalid, "field \"\(key)\": is set by the cluster agent on other machines' entries, not at register")
        }
    }
}
