extension Registry {
    /// The one live server that handles `name` as a capability of `kind`.
    ///
    /// Tools and prompts: `server.tool` is qualified (split at the first dot, when the part before
    /// it is a server id); a bare name goes to the one live server declaring it, preferring
    /// HEALTHY over DEGRADED over UNKNOWN. Resources: an exact declaration wins, else the longest
    /// declared prefix of the URI that ends at a path boundary (see `ResourceMatch`). DOWN
    /// servers never resolve.
    ///
    /// With `scope: .cluster` the other machines' entries of the cluster view are candidates
    /// too (docs/CLUSTER.md): at the same health a local server wins over a remote one, and a
    /// fresh remote one over a stale one; a qualified `server.tool` names a local id first.
    /// - Throws: `.notFound` when nothing live handles it, `.ambiguous` (listing the candidates)
    ///   when several equally healthy servers do, plus the read errors of `list`.
    /// Cost: one `stat`, hash lookups in the per-generation index, one liveness check per candidate.
    public func resolve(_ kind: CapabilityKind, _ name: String, scope: EntryScope = .local) throws(RegistryError) -> ServerEntry {
        guard !name.isEmpty else { throw RegistryError(.invalid, "the \(kind.name) name is empty") }
        try enter()
        defer { leave() }
        let snap = try snapshot()
        let remote = scope == .cluster ? try clusterView.snapshot() : nil
        let judge = judge()
        let index = snap.index
        let servers = snap.document.servers
        switch kind {
        case .tool, .prompt:
            if let dot = name.firstIndex(of: ".") {
                let id = String(name[..<dot])
                let local = String(name[name.index(after: dot)...])
                func declares(_ e: ServerEntry) -> Bool {
                    (kind == .tool ? e.capabilities.tools : e.capabilities.prompts).contains(local)
                }
                if let position = snap.positionByID[id], declares(servers[position]) {
                    let entry = servers[position]
                    guard judge.isAlive(entry) else {
                        throw RegistryError(.notFound, "server \"\(entry.id)\" declares \(kind.name) \"\(local)\" but is not running")
                    }
                    guard entry.health.status != .down else {
                        throw RegistryError(.notFound, "server \"\(entry.id)\" declares \(kind.name) \"\(local)\" but is DOWN")
                    }
                    return entry
                }
                if let remote {
                    let named = remote.document.servers.indices.filter { remote.document.servers[$0].id == id && declares(remote.document.servers[$0]) }
                    if let found = try pick([], named, servers, remote.document.servers, judge, kind, name) { return found }
                }
            }
            let table = kind == .tool ? index.tools : index.prompts
            let remoteTable = remote.map { kind == .tool ? $0.index.tools : $0.index.prompts }
            if let found = try pick(table[name] ?? [], remoteTable?[name] ?? [], servers, remote?.document.servers ?? [], judge, kind, name) {
                return found
            }
        case .resource:
            let utf8 = name.utf8
            let remoteIndex = remote?.index
            var lengths = index.resourceLengths
            if let remoteIndex { lengths = Array(Set(lengths).union(remoteIndex.resourceLengths)).sorted(by: >) }
            for length in lengths where length <= utf8.count {
                guard let prefix = String(utf8.prefix(length)), ResourceMatch.handles(prefix, name) else { continue }
                let candidates = index.resources[prefix] ?? []
                let remoteCandidates = remoteIndex?.resources[prefix] ?? []
                guard !candidates.isEmpty || !remoteCandidates.isEmpty else { continue }
                if let found = try pick(candidates, remoteCandidates, servers, remote?.document.servers ?? [], judge, kind, name) {
                    return found
                }
            }
        }
        throw RegistryError(.notFound, "no live server handles \(kind.name) \"\(name.prefix(200))\"\(scope == .cluster ? " in the cluster" : "")")
    }

    /// Resolves a tool name (see `resolve(_:_:)`).
    public func resolveTool(_ name: String) throws(RegistryError) -> ServerEntry { try resolve(.tool, name) }
    /// Resolves a resource URI (see `resolve(_:_:)`).
    public func resolveResource(_ uri: String) throws(RegistryError) -> ServerEntry { try resolve(.resource, uri) }
    /// Resolves a prompt name (see `resolve(_:_:)`).
    public func resolvePrompt(_ name: String) throws(RegistryError) -> ServerEntry { try resolve(.prompt, name) }

    /// The best live, not-DOWN candidate; nil when there is none; `.ambiguous` on a tie. Health
    /// first; at equal health a local entry beats a fresh remote one, which beats a stale one.
    private func pick(_ positions: [Int], _ remotePositions: [Int], _ servers: [ServerEntry], _ remoteServers: [ServerEntry],
                      _ judge: LivenessJudge, _ kind: CapabilityKind, _ name: String) throws(RegistryError) -> ServerEntry? {
        var best: [ServerEntry] = []
        var bestRank = (Int.max, Int.max)
        func consider(_ e: ServerEntry, locality: Int) {
            let rank = (e.health.status.preference, locality)
            guard e.health.status != .down, rank <= bestRank else { return }
            if rank < bestRank {
                best = [e]
                bestRank = rank
            } else {
                best.append(e)
            }
        }
        for p in positions where p < servers.count {
            let e = servers[p]
            // Liveness last: it costs a system call, and a worse candidate needs none.
            guard (e.health.status.preference, 0) <= bestRank, judge.isAlive(e) else { continue }
            consider(e, locality: 0)
        }
        for p in remotePositions where p < remoteServers.count {
            let e = remoteServers[p]
            consider(e, locality: e.isStale ? 2 : 1)
        }
        guard best.count <= 1 else {
            let ids = best.map(\.clusterKey).sorted()
            throw RegistryError(.ambiguous, "\(kind.name) \"\(name.prefix(200))\" is declared by \(ids.count) equally healthy (\(best[0].health.status.name)) servers: \(ids.joined(separator: ", ")); qualify it as <server>.\(kind == .resource ? "<name>" : String(name.prefix(200)))")
        }
        return best.first
    }
}
