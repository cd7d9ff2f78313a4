import Foundation
import Testing
@testable import RegistryKit

@Suite struct LivenessTests {
    @Test func leaseOwnerKilledIsGoneAtOnceAndPrunedByTheNextWriter() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        let owner = try Worker(["hold", dir.file, #"{"id":"doomed","url":"http://127.0.0.1:7/mcp"}"#])
        #expect(owner.waitFor { $0 == "ACK doomed" })
        #expect(try reg.get("doomed").pid == owner.process.processIdentifier)
        owner.kill9()
        expectError(.notFound) { _ = try reg.get("doomed") }
        #expect(try reg.list().servers.isEmpty)
        #expect(try dir.contents().contains("doomed"), "still in the file until a writer runs")
        try reg.register(entry("next"))
        #expect(try !dir.contents().contains("doomed"), "the next writer removed it")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/leases/doomed.lease"), "and its lease file")
    }

    @Test func anotherLiveOwnerHoldsTheIdButADeadOnesIdIsFree() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        let owner = try Worker(["hold", dir.file, #"{"id":"taken","url":"http://127.0.0.1:7/mcp"}"#])
        #expect(owner.waitFor { $0 == "ACK taken" })
        expectError(.exists) { try reg.register(entry("taken")) }
        owner.kill9()
        let stored = try reg.register(entry("taken"))
        #expect(stored.pid == getpid())
    }

    @Test func closingUnregistersLeaseEntriesOnly() throws {
        let dir = TempRegistryDir()
        let a = try dir.open()
        try a.register(entry("lease-one"))
        try a.register(entry("static-one", port: 1, liveness: .none))
        let b = try dir.open()
        defer { b.close() }
        a.close()
        #expect(try b.list().servers.map(\.id) == ["static-one"])
        #expect(try !dir.contents().contains("lease-one"))
    }

    @Test func pidLivenessFollowsTheProcessAndItsStartTime() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
        sleeper.arguments = ["30"]
        try sleeper.run()
        let pid = sleeper.processIdentifier
        var e = entry("by-pid", liveness: .pid)
        e.pid = pid
        let stored = try reg.register(e)
        #expect(stored.pidStartTime != nil)
        #expect(try reg.get("by-pid").pid == pid)

        // A reused pid: same number, different start time — not our server.
        var impostor = try JSONValue.parse(dir.contents()).objectValue!
        var servers = impostor["servers"]!.arrayValue!
        var first = servers[0].objectValue!
        first["pidStartTime"] = .int(stored.pidStartTime! + 1)
        servers[0] = .object(first)
        impostor["servers"] = .array(servers)
        try dir.write(JSONValue.object(impostor).jsonText)
        expectError(.notFound) { _ = try reg.get("by-pid") }
        try reg.register(e)

        sleeper.terminate()
        sleeper.waitUntilExit()
        expectError(.notFound) { _ = try reg.get("by-pid") }
        #expect(try reg.prune() == 1)

        var ghost = entry("ghost", liveness: .pid)
        ghost.pid = pid
        let error = expectError(.invalid) { try reg.register(ghost) }
        #expect(error?.message.contains("not running") == true)
        expectError(.invalid) { try reg.register(entry("nopid", liveness: .pid)) }
    }

    @Test func ttlEntriesExpireUnlessHeartbeating() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        var e = entry("beating", liveness: .ttl)
        e.ttlSeconds = 1
        try reg.register(e)
        var quiet = entry("quiet", port: 2, liveness: .ttl)
        quiet.ttlSeconds = 1
        try reg.register(quiet)
        #expect(try reg.list().servers.count == 2)
        for _ in 0..<3 {
            usleep(400_000)
            try reg.heartbeat("beating")
        }
        #expect(try reg.list().servers.map(\.id) == ["beating"], "quiet expired after 1 s, beating kept alive")
        expectError(.notFound) { try reg.heartbeat("quiet") }
        let defaulted = try reg.register(entry("default-ttl", port: 3, liveness: .ttl))
        #expect(defaulted.ttlSeconds == 30)
    }

    @Test func staticEntriesStayUntilUnregistered() throws {
        let dir = TempRegistryDir()
        let a = try dir.open()
        try a.register(ServerEntry(id: "remote", url: "https://mcp.example.com/", liveness: .none))
        a.close()
        let b = try dir.open()
        defer { b.close() }
        #expect(try b.get("remote").transport == .http)
        #expect(try b.prune() == 0)
        try b.unregister("remote")
        expectError(.notFound) { try b.unregister("remote") }
    }

    @Test func pruneRemovesOrphanedLeaseFiles() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        try reg.register(entry("kept"))
        FileManager.default.createFile(atPath: dir.path + "/leases/orphan.lease", contents: nil, attributes: [.posixPermissions: 0o600])
        try reg.prune()
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/leases/orphan.lease"))
        #expect(FileManager.default.fileExists(atPath: dir.path + "/leases/kept.lease"))
    }
}
