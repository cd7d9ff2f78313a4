extension Registry {
    /// The one live server that handles `name` as a capability of `kind`.
    ///
    /// Tools and prompts: `server.tool` is qualified (split at the first dot, when the part before
    /// it is a server id); a bare name goes to the one live server declaring it, preferring
    /// HEALTHY over DEGRADED over UNKNOWN. Resources: an exact declaration wins, else the longest
    /// declared prefix of the URI that ends at a path boundary (see `ResourceMatch`). DOWN
    /// servers never resolve.
    /// - Throws: `.notFound` when nothing live handles it, `.ambiguous` (listing the candidates)
    ///   when several equally healthy servers do, plus the read errors of `list`.
    /// Cost: one `stat`, hash lookups in the per-generation index, one liveness check per candidate.
    public func resolve(_ kind: CapabilityKind, _ name: String) throws(RegistryError) -> ServerEntry {
        guard !name.isEmpty else { throw RegistryError(.invalid, "the \(kind.name) name is empty") }
        try enter()
        defer { leave() }
        let snap = try snapshot()
        let judge = judge()
        let index = snap.index
        let servers = snap.document.servers
        switch kind {
        case .tool, .prompt:
            if let dot = name.firstIndex(of: "."), let position = snap.positionByID[String(name[..<dot])] {
                let entry = servers[position]
                let local = String(name[name.index(after: dot)...])
                let declared = kind == .tool ? entry.capabilities.tools : entry.capabilities.prompts
                if declared.contains(local) {
                    guard judge.isAlive(entry) else {
                        throw RegistryError(.notFound, "server \"\(entry.id)\" declares \(kind.name) \"\(local)\" but is not running")
                    }
                    guard entry.health.status != .down else {
                        throw RegistryError(.notFound, "server \"\(entry.id)\" declares \(kind.name) \"\(local)\" but is DOWN")
                    }
                    return entry
                }
            }
            let table = kind == .tool ? index.tools : index.prompts
            if let found = try pick(table[name] ?? [], servers, judge, kind, name) { return found }
        case .resource:
            let utf8 = name.utf8
            for length in index.resourceLengths where length <= utf8.count {
                guard let prefix = String(utf8.prefix(length)), let candidates = index.resources[prefix],
                      ResourceMatch.handles(prefix, name) else { continue }
                if let found = try pick(candidates, servers, judge, kind, name) { return found }
            }
        }
        throw RegistryError(.notFound, "no live server handles \(kind.name) \"\(name.prefix(200))\"")
    }

    /// Resolves a tool name (see `resolve(_:_:)`).
    public func resolveTool(_ name: String) throws(RegistryError) -> ServerEntry { try resolve(.tool, name) }
    /// Resolves a resource URI (see `resolve(_:_:)`).
    public func resolveResource(_ uri: String) throws(RegistryError) -> ServerEntry { try resolve(.resource, uri) }
    /// Resolves a prompt name (see `resolve(_:_:)`).
    public func resolvePrompt(_ name: String) throws(RegistryError) -> ServerEntry { try resolve(.prompt, name) }

    /// The best live, not-DOWN candidate; nil when there is none; `.ambiguous` on a tie.
    private func pick(_ positions: [Int], _ servers: [ServerEntry], _ judge: LivenessJudge,
                      _ kind: CapabilityKind, _ name: String) throws(RegistryError) -> ServerEntry? {
        var best: [ServerEntry] = []
        var bestPreference = Int.max
        for p in positions where p < servers.count {
            let e = servers[p]
            let preference = e.health.status.preference
            guard e.health.status != .down, preference <= bestPreference, judge.isAlive(e) else { continue }
            if preference < bestPreference {
                best = [e]
                bestPreference = preference
            } else {
                best.append(e)
            }
        }
        guard best.count <= 1 else {
            let ids = best.map(\.id).sorted()
            throw RegistryError(.ambiguous, "\(kind.name) \"\(name.prefix(200))\" is declared by \(ids.count) equally healthy (\(best[0].health.status.name)) servers: \(ids.joined(separator: ", ")); qualify it as <server>.\(kind == .resource ? "<name>" : String(name.prefix(200)))")
        }
        return best.first
    }
}
