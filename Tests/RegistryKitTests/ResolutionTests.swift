import Testing
@testable import RegistryKit

@Suite struct ResolutionTests {
    @Test func toolsResolveQualifiedBareAndByHealth() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        try reg.register(entry("alpha", port: 1, tools: ["search", "only-alpha"], liveness: .none))
        try reg.register(entry("beta", port: 2, tools: ["search"], liveness: .none))
        #expect(try reg.resolveTool("only-alpha").id == "alpha")
        #expect(try reg.resolveTool("beta.search").id == "beta")
        #expect(try reg.resolveTool("alpha.search").id == "alpha")

        let tie = expectError(.ambiguous) { _ = try reg.resolveTool("search") }
        #expect(tie?.message.contains("alpha, beta") == true, "\(String(describing: tie))")

        try reg.setHealth("beta", .degraded)
        #expect(try reg.resolveTool("search").id == "beta", "DEGRADED beats UNKNOWN")
        try reg.setHealth("alpha", .healthy)
        #expect(try reg.resolveTool("search").id == "alpha", "HEALTHY beats DEGRADED")
        try reg.setHealth("alpha", .down)
        #expect(try reg.resolveTool("search").id == "beta", "DOWN never resolves")
        expectError(.notFound) { _ = try reg.resolveTool("only-alpha") }
        expectError(.notFound) { _ = try reg.resolveTool("alpha.search") }
        try reg.resetHealth("alpha")
        #expect(try reg.resolveTool("alpha.search").id == "alpha")
        expectError(.notFound) { _ = try reg.resolveTool("nobody") }
        expectError(.notFound) { _ = try reg.resolveTool("gamma.search") }
    }

    @Test func dottedToolNamesStillResolveBare() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        try reg.register(entry("svc", tools: ["files.read"], liveness: .none))
        #expect(try reg.resolveTool("files.read").id == "svc")
        #expect(try reg.resolveTool("svc.files.read").id == "svc")
    }

    @Test func promptsResolveLikeTools() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        try reg.register(entry("p1", port: 1, prompts: ["plan-trip"], liveness: .none))
        #expect(try reg.resolvePrompt("plan-trip").id == "p1")
        #expect(try reg.resolvePrompt("p1.plan-trip").id == "p1")
        expectError(.notFound) { _ = try reg.resolveTool("plan-trip") }
    }

    @Test func resourcesResolveByLongestPrefixAndExactMatch() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        try reg.register(entry("journey", port: 1, resources: ["resource://journey/"], liveness: .none))
        try reg.register(entry("trips", port: 2, resources: ["resource://journey/trips/"], liveness: .none))
        try reg.register(entry("exact", port: 3, resources: ["resource://journey/trips/42"], liveness: .none))
        #expect(try reg.resolveResource("resource://journey/trips/1").id == "trips")
        #expect(try reg.resolveResource("resource://journey/other").id == "journey")
        #expect(try reg.resolveResource("resource://journey/trips/42").id == "exact")
        #expect(try reg.resolveResource("resource://journey/trips/421").id == "trips", "42 is not a prefix of 421: path boundaries count")
        expectError(.notFound) { _ = try reg.resolveResource("resource://elsewhere/") }
        try reg.setHealth("trips", .down)
        #expect(try reg.resolveResource("resource://journey/trips/1").id == "journey", "falls back to a shorter prefix")
        #expect(try reg.list(ServerFilter(resource: "resource://journey/trips/1")).servers.map(\.id) == ["journey", "trips"])
    }

    @Test func resourcePrefixesMatchAtBoundaries() {
        #expect(ResourceMatch.handles("resource://a/", "resource://a/b"))
        #expect(ResourceMatch.handles("resource://a", "resource://a/b"))
        #expect(ResourceMatch.handles("resource://a", "resource://a?x=1"))
        #expect(ResourceMatch.handles("file:", "file:/etc/hosts"))
        #expect(ResourceMatch.handles("resource://a/b", "resource://a/b"))
        #expect(!ResourceMatch.handles("resource://a", "resource://ab"))
        #expect(!ResourceMatch.handles("resource://a/b", "resource://a"))
    }

    @Test func deadServersNeverResolve() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        let owner = try Worker(["hold", dir.file, #"{"id":"mortal","url":"http://127.0.0.1:7/","capabilities":{"tools":["t"]}}"#])
        #expect(owner.waitFor { $0 == "ACK mortal" })
        #expect(try reg.resolveTool("t").id == "mortal")
        owner.kill9()
        expectError(.notFound) { _ = try reg.resolveTool("t") }
    }

    @Test func listFilters() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        try reg.register(entry("h", port: 1, tools: ["x"], liveness: .none, health: .healthy))
        try reg.register(ServerEntry(id: "w", url: "ws://127.0.0.1:2/", liveness: .none, capabilities: Capabilities(prompts: ["p"])))
        #expect(try reg.list(ServerFilter(healthy: true)).servers.map(\.id) == ["h"])
        #expect(try reg.list(ServerFilter(healthy: false)).servers.map(\.id) == ["w"])
        #expect(try reg.list(ServerFilter(transport: .ws)).servers.map(\.id) == ["w"])
        #expect(try reg.list(ServerFilter(tool: "x")).servers.map(\.id) == ["h"])
        #expect(try reg.list(ServerFilter(prompt: "p")).servers.map(\.id) == ["w"])
        #expect(try reg.list(ServerFilter(status: .unknown)).servers.map(\.id) == ["w"])
        #expect(try ServerFilter(jsonText: #"{"healthy":true,"transport":"http","tool":"x"}"#) == ServerFilter(healthy: true, transport: .http, tool: "x"))
        expectError(.invalid) { _ = try ServerFilter(jsonText: #"{"colour":"red"}"#) }
        expectError(.invalid) { _ = try ServerFilter(jsonText: #"{"transport":"carrier-pigeon"}"#) }
    }

    @Test func resetAllHealth() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        try reg.register(entry("a", port: 1, liveness: .none, health: .healthy))
        try reg.register(entry("b", port: 2, liveness: .none, health: .down))
        try reg.register(entry("c", port: 3, liveness: .none))
        #expect(try reg.resetAllHealth() == 2)
        #expect(try reg.list().servers.allSatisfy { $0.health.status == .unknown && $0.health.message == nil })
    }
}

/// A reader keeps the positions and the resolution index it built across another writer's
/// changes only while they still hold (`Snapshot.inherit`): each change below would be
/// misread by a reader that kept them regardless.
@Suite struct ReaderFollowsChangesTests {
    @Test func changesInPlaceAndReplacedIDsAreSeen() throws {
        let dir = TempRegistryDir()
        let writer = try dir.open()
        defer { writer.close() }
        let reader = try dir.open()
        defer { reader.close() }
        try writer.register(entry("a", port: 1, tools: ["t1"], liveness: .none))
        try writer.register(entry("b", port: 2, tools: ["tb"], liveness: .none))
        #expect(try reader.resolveTool("t1").id == "a")
        #expect(try reader.get("b").port == 2)

        // The same ids in the same places; a declares another tool.
        try writer.register(entry("a", port: 1, tools: ["t2"], liveness: .none))
        #expect(try reader.resolveTool("t2").id == "a")
        expectError(.notFound) { _ = try reader.resolveTool("t1") }

        // The same capabilities; a's port changes: the entry resolved is the new one.
        try writer.register(entry("a", port: 3, tools: ["t2"], liveness: .none))
        #expect(try reader.resolveTool("t2").port == 3)
        #expect(try reader.get("a").port == 3)

        // As many entries, declaring what the ones in their places did, under other ids.
        try writer.unregister("a")
        try writer.unregister("b")
        try writer.register(entry("x", port: 4, tools: ["t2"], liveness: .none))
        try writer.register(entry("y", port: 5, tools: ["tb"], liveness: .none))
        expectError(.notFound) { _ = try reader.get("a") }
        #expect(try reader.get("y").port == 5)
        #expect(try reader.resolveTool("t2").id == "x")
        #expect(try reader.resolveTool("tb").id == "y")

        // The same ids, swapped: positions no longer hold.
        try writer.unregister("x")
        try writer.register(entry("x", port: 6, tools: ["tx"], liveness: .none))
        #expect(try reader.get("x").port == 6)
        #expect(try reader.get("y").port == 5)
        #expect(try reader.resolveTool("tx").id == "x")
        expectError(.notFound) { _ = try reader.resolveTool("t2") }
    }
}
