import Foundation
import Synchronization
import Testing
@testable import RegistryKit

@Suite struct ConcurrencyTests {
    /// 16 processes register and unregister at once into one registry; 4 are SIGKILLed mid-run.
    /// Afterwards the file parses, every acknowledged registration of a survivor that it did not
    /// unregister is present, and nothing of the killed ones is left.
    @Test(arguments: 0..<2)
    func crowdOfProcessesWithKills(round: Int) throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        let iterations = 40
        let workers = try (0..<16).map { try Worker(["crowd", dir.file, "w\($0)", String(iterations)]) }
        let doomed = [1, 5, 9, 13]
        for i in doomed {
            // Kill each after it acknowledged a few registrations, while it is still writing.
            #expect(workers[i].waitFor { $0 == "ACK w\(i)-\(4 + round * 3)" })
            workers[i].kill9()
        }
        for (i, w) in workers.enumerated() where !doomed.contains(i) {
            #expect(w.waitFor(timeout: 120) { $0 == "DONE" }, "worker \(i) finished: \(w.output.suffix(3)) \(w.errors)")
        }

        let listed = Set(try reg.list().servers.map(\.id))
        for (i, w) in workers.enumerated() {
            let acked = Set(w.output.filter { $0.hasPrefix("ACK ") }.map { String($0.dropFirst(4)) })
            let unregistered = Set(w.output.filter { $0.hasPrefix("UNREG ") }.map { String($0.dropFirst(6)) })
            let mine = listed.filter { $0.hasPrefix("w\(i)-") }
            if doomed.contains(i) {
                #expect(mine.isEmpty, "killed worker \(i) left \(mine.sorted())")
            } else {
                #expect(acked.count == iterations)
                #expect(mine == acked.subtracting(unregistered), "worker \(i): listed \(mine.count), expected \(acked.count - unregistered.count)")
            }
        }
        // The next write removes the dead for good; the file is valid format v1 throughout.
        try reg.prune()
        let raw = try JSONValue.parse(dir.contents())
        let inFile = Set(raw.objectValue?["servers"]?.arrayValue?.compactMap { $0.objectValue?["id"]?.stringValue } ?? [])
        #expect(inFile == listed)
        try validateAgainstSchema([dir.file])

        for (i, w) in workers.enumerated() where !doomed.contains(i) { w.finish() }
        #expect(try reg.list().servers.isEmpty, "every survivor unregistered on close")
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        #expect(!leftovers.contains("servers.json.tmp"))
    }

    @Test func threadsSharingOneHandle() async throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for t in 0..<8 {
                group.addTask {
                    for i in 0..<25 {
                        let id = "t\(t)-\(i)"
                        try reg.register(entry(id, port: 1000 + t * 100 + i, tools: ["tool-\(id)"]))
                        #expect(try reg.resolveTool("tool-\(id)").id == id)
                        try reg.setHealth(id, .healthy)
                        if i % 5 == 0 { try reg.unregister(id) }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try reg.list().servers.count == 8 * 20)
        #expect(try reg.generation() == 8 * (25 * 2 + 5))
    }

    /// A reader may open the file just before a writer renames a new one over it: it then holds
    /// an inode with no links left, which is an old version, not a hard-link attack.
    @Test func readsNeverFailWhileAnotherProcessWrites() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        try reg.register(entry("steady", port: 1, liveness: .none))
        let writer = try Worker(["write-loop", dir.file, "churn"])
        defer { writer.kill9() }
        #expect(writer.waitFor { $0 == "READY" })
        var reads = 0
        let deadline = Date().addingTimeInterval(2)
        while Date() < deadline {
            let fresh = try dir.open()  // opening checks the file too
            #expect(try fresh.list().servers.contains { $0.id == "steady" })
            #expect(try fresh.get("steady").port == 1)
            fresh.close()
            reads += 1
        }
        #expect(reads > 50)
        #expect(try reg.generation() > 10, "the writer really was writing")
    }

    @Test func twoHandlesInOneProcess() throws {
        let dir = TempRegistryDir()
        let a = try dir.open(), b = try dir.open()
        defer { a.close(); b.close() }
        try a.register(entry("from-a", port: 1))
        try b.register(entry("from-b", port: 2))
        #expect(try a.list().servers.map(\.id) == ["from-a", "from-b"])
        expectError(.exists) { try b.register(entry("from-a", port: 3)) }
        // A held lease entry is its holder's (it would restore it): another handle may not remove it.
        expectError(.permission) { try b.unregister("from-a") }
        try a.register(entry("static-a", port: 4, liveness: .none))
        try b.unregister("static-a")  // an operator may remove anyone's unleased entry
        try a.unregister("from-a")
        #expect(try a.list().servers.map(\.id) == ["from-b"])
    }

    /// A reader re-reading a newer version reuses the entries whose bytes did not change, and
    /// must still see every change, whatever its position: first, middle, last, added, removed.
    @Test func rereadsReuseUnchangedEntriesAndSeeEveryChange() throws {
        let dir = TempRegistryDir()
        let reader = try dir.open(), writer = try dir.open()
        defer { reader.close(); writer.close() }
        for i in 0..<20 { try writer.register(entry("e\(i)", port: 100 + i, tools: ["t\(i)"], liveness: .none)) }
        #expect(try reader.list().servers.count == 20)
        try writer.setHealth("e0", .healthy, message: "first")
        try writer.setHealth("e10", .degraded, message: "middle")
        try writer.setHealth("e19", .down, message: "last")
        try writer.unregister("e5")
        try writer.register(entry("e20", port: 120, tools: ["t20"], liveness: .none))
        var changed = entry("e7", port: 999, tools: ["moved"], liveness: .none)
        changed.metadata = ["v": 2]
        try writer.register(changed)
        let seen = try reader.list().servers
        let fresh = try dir.open()
        defer { fresh.close() }
        #expect(seen == (try fresh.list().servers), "what a reusing reader sees equals a fresh parse")
        #expect(seen.map(\.id) == (0..<21).filter { $0 != 5 }.map { "e\($0)" })
        #expect(seen.first { $0.id == "e10" }?.health.message == "middle")
        #expect(seen.first { $0.id == "e7" }?.port == 999)
        #expect(try reader.resolveTool("moved").id == "e7")
        expectError(.notFound) { _ = try reader.resolveTool("t7") }
    }

    @Test func readersReparseOnlyWhenTheFileChanged() throws {
        let dir = TempRegistryDir()
        let reader = try dir.open(), writer = try dir.open()
        defer { reader.close(); writer.close() }
        try writer.register(entry("a", port: 1))
        let first = try reader.snapshot()
        #expect(try reader.snapshot() === first, "unchanged file: the same parsed snapshot")
        try writer.register(entry("b", port: 2))
        let second = try reader.snapshot()
        #expect(second !== first)
        #expect(second.document.generation == 2)
    }
}
