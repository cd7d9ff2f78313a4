import Foundation
import Testing
@testable import RegistryKit

/// The cluster view as list/resolve/watch read it (docs/CLUSTER.md). The writer here is the
/// agent's own `ClusterViewWriter`; etcd and the agent are tested end to end in tests/cluster.
@Suite struct ClusterViewTests {
    func remote(_ id: String, node: String, port: Int = 9000, tools: [String] = [], health: HealthStatus = .unknown) -> ServerEntry {
        var e = entry(id, port: port, tools: tools, liveness: .lease, health: health)
        e.node = node
        e.scope = .cluster
        e.pid = 1  // another machine's pid: never judged here
        return e
    }

    @Test func clusterScopeAddsRemoteEntriesLocalScopeDoesNot() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        try reg.register(entry("mine", tools: ["x"], liveness: .none))
        let writer = try ClusterViewWriter(registryPath: dir.file)
        defer { writer.close() }
        try writer.write(node: "here", etcd: .connected, revision: 7, servers: [remote("theirs", node: "B"), remote("mine", node: "C")])
        #expect(try reg.list().servers.map(\.id) == ["mine"])
        let all = try reg.list(ServerFilter(scope: .cluster)).servers
        #expect(all.map(\.clusterKey) == ["mine", "B/theirs", "C/mine"])
        #expect(all.allSatisfy { !$0.isStale })
        #expect(try reg.list(ServerFilter(tool: "x", scope: .cluster)).servers.map(\.clusterKey) == ["mine"])
        // The view lives beside the registry and follows the documented format.
        let text = try String(contentsOfFile: dir.path + "/servers.cluster.json", encoding: .utf8)
        #expect(text.contains("\"etcd\":\"connected\"") && text.contains("\"node\":\"B\""))
    }

    @Test func remoteEntriesAreStaleWhenEtcdIsLostOrTheAgentIsGone() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        let writer = try ClusterViewWriter(registryPath: dir.file)
        try writer.write(node: "here", etcd: .connected, revision: 1, servers: [remote("r", node: "B")])
        #expect(try reg.list(ServerFilter(scope: .cluster)).servers.map(\.isStale) == [false])
        try writer.write(node: "here", etcd: .unreachable, revision: 1, servers: [remote("r", node: "B")])
        #expect(try reg.list(ServerFilter(scope: .cluster)).servers.map(\.isStale) == [true])
        #expect(try reg.list(ServerFilter(scope: .cluster)).jsonText.contains("\"stale\":true"))
        try writer.write(node: "here", etcd: .connected, revision: 2, servers: [remote("r", node: "B")])
        #expect(try reg.list(ServerFilter(scope: .cluster)).servers.map(\.isStale) == [false])
        writer.close()  // the agent lock is free: nobody vouches for the view any more
        #expect(try reg.list(ServerFilter(scope: .cluster)).servers.map(\.isStale) == [true])
    }

    @Test func oneAgentPerRegistry() throws {
        let dir = TempRegistryDir()
        let first = try ClusterViewWriter(registryPath: dir.file)
        let second = expectError(.exists) { _ = try ClusterViewWriter(registryPath: dir.file) }
        #expect(second?.message.contains("pid \(getpid())") == true, "\(String(describing: second))")
        try first.write(node: "here", etcd: .connected, revision: 1, servers: [remote("r", node: "B", tools: ["t"])])
        try first.write(node: "here", etcd: .connected, revision: 2, servers: [remote("r", node: "B", tools: ["t"])])
        first.close()
        // The next agent continues the view's generation, so watchers keep their order.
        let third = try ClusterViewWriter(registryPath: dir.file)
        try third.write(node: "here", etcd: .connected, revision: 3, servers: [])
        let text = try String(contentsOfFile: third.path, encoding: .utf8)
        #expect(text.contains("\"generation\":3,"), "\(text)")
        third.close()
    }

    @Test func writerRefusesEntriesWithoutNodeAndWritesNothing() throws {
        let dir = TempRegistryDir()
        let writer = try ClusterViewWriter(registryPath: dir.file)
        defer { writer.close() }
        try writer.write(node: "here", etcd: .connected, revision: 1, servers: [remote("ok", node: "B")])
        let before = try String(contentsOfFile: writer.path, encoding: .utf8)
        expectError(.invalid) { try writer.write(node: "here", etcd: .connected, revision: 2, servers: [entry("nonode")]) }
        expectError(.invalid) { try writer.write(node: "bad/node", etcd: .connected, revision: 2, servers: []) }
        #expect(try String(contentsOfFile: writer.path, encoding: .utf8) == before)
    }

    @Test func resolvePrefersHealthThenLocalThenFresh() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        let writer = try ClusterViewWriter(registryPath: dir.file)
        defer { writer.close() }
        try reg.register(entry("local", tools: ["t", "both"], liveness: .none))
        try writer.write(node: "here", etcd: .connected, revision: 1, servers: [
            remote("far", node: "B", tools: ["t", "remote-only", "two-remotes"]),
            remote("far2", node: "C", tools: ["two-remotes"]),
        ])
        expectError(.notFound) { _ = try reg.resolveTool("remote-only") }
        #expect(try reg.resolve(.tool, "remote-only", scope: .cluster).node == "B")
        #expect(try reg.resolve(.tool, "t", scope: .cluster).id == "local", "a local server wins a tie")
        #expect(try reg.resolve(.tool, "far.t", scope: .cluster).node == "B", "qualified by a remote id")
        let tie = expectError(.ambiguous) { _ = try reg.resolve(.tool, "two-remotes", scope: .cluster) }
        #expect(tie?.message.contains("B/far, C/far2") == true, "\(String(describing: tie))")
        // A healthier remote beats the local one; a DOWN remote never resolves.
        try writer.write(node: "here", etcd: .connected, revision: 2, servers: [remote("far", node: "B", tools: ["t"], health: .healthy)])
        #expect(try reg.resolve(.tool, "t", scope: .cluster).node == "B")
        try writer.write(node: "here", etcd: .connected, revision: 3, servers: [remote("far", node: "B", tools: ["remote-only"], health: .down)])
        expectError(.notFound) { _ = try reg.resolve(.tool, "remote-only", scope: .cluster) }
        // Resources: the longest prefix across both.
        try writer.write(node: "here", etcd: .connected, revision: 4, servers: [{
            var e = remote("docs", node: "B")
            e.capabilities.resources = ["resource://docs/deep/"]
            return e
        }()])
        var shallow = entry("shallow", port: 2, liveness: .none)
        shallow.capabilities.resources = ["resource://docs/"]
        try reg.register(shallow)
        #expect(try reg.resolve(.resource, "resource://docs/deep/x", scope: .cluster).node == "B")
        #expect(try reg.resolve(.resource, "resource://docs/other", scope: .cluster).id == "shallow")
    }

    @Test func watchWithClusterScopeSeesRemoteChanges() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        let writer = try ClusterViewWriter(registryPath: dir.file)
        let watch = try RegistryWatch(reg, filter: ServerFilter(scope: .cluster))
        defer { watch.close() }
        let local = try RegistryWatch(reg)
        defer { local.close() }
        try writer.write(node: "here", etcd: .connected, revision: 1, servers: [remote("same-id", node: "B"), remote("same-id", node: "C")])
        let added = try watch.next(timeoutMilliseconds: 5000)
        #expect(added?.added.map(\.clusterKey) == ["B/same-id", "C/same-id"])
        #expect(try local.next(timeoutMilliseconds: 300) == nil, "a local-scope watch ignores the view")
        try writer.write(node: "here", etcd: .connected, revision: 2, servers: [remote("same-id", node: "C")])
        #expect(try watch.next(timeoutMilliseconds: 5000)?.removed.map(\.clusterKey) == ["B/same-id"])
        // The agent dying is an event too: its entries turn stale.
        writer.close()
        let stale = try watch.next(timeoutMilliseconds: 5000)
        #expect(stale?.changed.map(\.isStale) == [true])
    }

    @Test func aCorruptViewFailsClusterReadsOnly() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        try reg.register(entry("mine", liveness: .none))
        try "{\"servers\": [ nope".write(toFile: dir.path + "/servers.cluster.json", atomically: false, encoding: .utf8)
        chmod(dir.path + "/servers.cluster.json", 0o600)
        let error = expectError(.corrupt) { _ = try reg.list(ServerFilter(scope: .cluster)) }
        #expect(error?.message.contains("cluster view") == true)
        #expect(try reg.list().servers.map(\.id) == ["mine"])
        expectError(.corrupt) { _ = try reg.resolve(.tool, "x", scope: .cluster) }
        // Entries of the view that do not validate are skipped, the rest kept.
        try """
            {"version":1,"etcd":"connected","servers":[{"id":"bad id","node":"B"},{"id":"nonode","url":"http://x:1/"},{"id":"ok","url":"http://x:1/","node":"B","liveness":"none"}]}
            """.write(toFile: dir.path + "/servers.cluster.json", atomically: true, encoding: .utf8)
        chmod(dir.path + "/servers.cluster.json", 0o600)
        #expect(try reg.list(ServerFilter(scope: .cluster)).servers.map(\.clusterKey) == ["mine", "B/ok"])
    }

    @Test func registerValidatesScopeAndRefusesAgentFields() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        let stored = try reg.register(json: #"{"id":"c","url":"http://127.0.0.1:1/mcp","liveness":"none","scope":"cluster"}"#)
        #expect(stored.scope == .cluster)
        #expect(try reg.get("c").scope == .cluster)
        #expect(try reg.register(json: #"{"id":"l","url":"http://127.0.0.1:1/mcp","liveness":"none"}"#).scope == .local)
        for bad in [#""scope":"global""#, #""scope":true"#, #""node":"B""#, #""stale":true"#] {
            expectError(.invalid) { _ = try reg.register(json: #"{"id":"x","url":"http://127.0.0.1:1/mcp","liveness":"none",\#(bad)}"#) }
        }
        #expect(try reg.list().servers.map(\.id) == ["c", "l"])
        expectError(.invalid) { _ = try ServerFilter(jsonText: #"{"scope":"galaxy"}"#) }
        #expect(try ServerFilter(jsonText: #"{"scope":"cluster"}"#).scope == .cluster)
    }
}
