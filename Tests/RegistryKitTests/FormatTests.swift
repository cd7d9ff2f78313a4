import Foundation
import Testing
@testable import RegistryKit

@Suite struct FormatTests {
    @Test func registerFillsDefaultsAndWritesFormatV1() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        let stored = try reg.register(ServerEntry(id: "journey-service", name: "Journey Service", url: "http://127.0.0.1:8080/mcp",
                                                  capabilities: Capabilities(tools: ["findTrips"])))
        #expect(stored.pid == getpid())
        #expect(stored.port == 8080)
        #expect(stored.transport == .http)
        #expect(stored.liveness == .lease)
        #expect(stored.startedAt.flatMap(Timestamp.parse) != nil)
        #expect(stored.lastSeen == stored.startedAt)
        #expect(stored.health.status == .unknown)

        let top = try #require(try JSONValue.parse(dir.contents()).objectValue)
        #expect(top["version"] == .number("1"))
        #expect(top["generation"] == .number("1"))
        let first = try #require(top["servers"]?.arrayValue?.first?.objectValue)
        #expect(first["id"] == .string("journey-service"))
        #expect(first["url"] == .string("http://127.0.0.1:8080/mcp"))
        #expect(first["pid"] == .int(getpid()))
        #expect(first["health"]?.objectValue?["status"] == .string("UNKNOWN"))
        try validateAgainstSchema([dir.file])
    }

    @Test func generationIncreasesByOneOnEveryWrite() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        var seen: [Int64] = []
        try reg.register(entry("a"))
        seen.append(try reg.generation())
        try reg.setHealth("a", .healthy)
        seen.append(try reg.generation())
        try reg.heartbeat("a")
        seen.append(try reg.generation())
        try reg.unregister("a")
        seen.append(try reg.generation())
        #expect(seen == [1, 2, 3, 4])
        // A write that changes nothing (prune with nothing dead) writes nothing.
        #expect(try reg.prune() == 0)
        #expect(try reg.generation() == 4)
    }

    @Test func everyChangeReachesTheFileDespiteCachedEncodings() throws {
        let dir = TempRegistryDir()
        let writer = try dir.open()
        defer { writer.close() }
        var e = entry("cached", tools: ["one"])
        try writer.register(e)
        try writer.register(entry("other", port: 2))
        try writer.setHealth("cached", .degraded, message: "slow disk")
        e.capabilities.tools.append("two")
        e.metadata = ["v": 2]
        try writer.register(e)
        try writer.heartbeat("other")
        let fresh = try dir.open()  // a new handle reads the file itself
        defer { fresh.close() }
        let stored = try fresh.get("cached")
        #expect(stored.capabilities.tools == ["one", "two"])
        #expect(stored.metadata == ["v": 2])
        #expect(stored.health.status == .unknown, "re-registering replaced the reported health")
        let raw = try JSONValue.parse(dir.contents())
        let cached = raw.objectValue?["servers"]?.arrayValue?.first { $0.objectValue?["id"] == "cached" }
        #expect(cached.map { try? ServerEntry(jsonText: $0.jsonText) }??.capabilities.tools == ["one", "two"])
        #expect(try fresh.get("other").lastSeen == (try writer.get("other").lastSeen))
    }

    @Test func keepsFieldsItDoesNotKnow() throws {
        let dir = TempRegistryDir()
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try dir.write("""
            {"version":1,"generation":7,"writtenBy":{"tool":"future","v":[1,2]},
             "servers":[{"id":"static-one","url":"https://example.com/mcp","liveness":"none","zone":"eu-1",
                         "capabilities":{"tools":["t"],"resources":[],"prompts":[],"sampling":true},
                         "health":{"status":"HEALTHY","latencyMs":12.5},"metadata":{"deep":{"x":[null]}}}]}
            """)
        let reg = try dir.open()
        defer { reg.close() }
        try reg.register(entry("newcomer", port: 9000))
        let top = try #require(try JSONValue.parse(dir.contents()).objectValue)
        #expect(top["writtenBy"] == .object(JSONObject([("tool", "future"), ("v", [1, 2])])))
        #expect(top["generation"] == .number("8"))
        let servers = try #require(top["servers"]?.arrayValue)
        let kept = try #require(servers.first?.objectValue)
        #expect(kept["zone"] == .string("eu-1"))
        #expect(kept["capabilities"]?.objectValue?["sampling"] == .bool(true))
        #expect(kept["health"]?.objectValue?["latencyMs"] == .number("12.5"))
        #expect(kept["metadata"] == .object(JSONObject([("deep", .object(JSONObject([("x", [nil])])))])))
        #expect(servers.count == 2)
        try validateAgainstSchema([dir.file])
    }

    @Test func legacyEntriesAreReadAsPortIdsAndKeptAsTheyWere() throws {
        let dir = TempRegistryDir()
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        // What seed 000's servers write: no id, no version, pid of a live process (ours).
        let legacy = #"{"port":3100,"url":"ws://localhost:3100","pid":\#(getpid()),"startedAt":"2026-01-03T10:00:00.000Z"}"#
        try dir.write(#"{"servers":[\#(legacy),{"port":3101,"url":"ws://localhost:3101","pid":\#(getpid()),"startedAt":1767434400000}]}"#)
        let reg = try dir.open()
        defer { reg.close() }
        let listed = try reg.list().servers
        #expect(listed.map(\.id) == ["port-3100", "port-3101"])
        #expect(listed[0].liveness == .pid)
        #expect(listed[0].transport == nil)
        #expect(listed[1].startedAt == "2026-01-03T10:00:00.000Z")  // epoch milliseconds converted
        #expect(try reg.get("port-3100").url == "ws://localhost:3100")
        #expect(try reg.get("port-3100").jsonText.hasPrefix(#"{"id":"port-3100","#), "the API always shows the id")

        try reg.register(entry("modern"))
        let servers = try #require(try JSONValue.parse(dir.contents()).objectValue?["servers"]?.arrayValue)
        #expect(servers[0] == (try JSONValue.parse(legacy)), "a legacy entry is written back exactly as it was")
        try reg.unregister("port-3101")
        #expect(try reg.list().servers.map(\.id) == ["port-3100", "modern"])
        try validateAgainstSchema([dir.file])
    }

    @Test func legacyEntryOfADeadProcessIsPruned() throws {
        let dir = TempRegistryDir()
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/true")
        try p.run()
        p.waitUntilExit()
        try dir.write(#"{"servers":[{"port":3100,"url":"ws://localhost:3100","pid":\#(p.processIdentifier)}]}"#)
        let reg = try dir.open()
        defer { reg.close() }
        #expect(try reg.list().servers.isEmpty)
        #expect(try reg.prune() == 1)
        #expect(try !dir.contents().contains("3100"))
    }

    @Test func cachedBytesNeverMakeEqualEntriesDiffer() throws {
        let plain = entry("same", tools: ["t"])
        var cached = plain
        cached.encoded = EncodedBytes(Array(plain.jsonText.utf8))
        cached.readBytes = EncodedBytes([1, 2, 3])
        #expect(cached == plain)
        #expect(cached.hashValue == plain.hashValue)
        var changed = cached
        changed.port = 1
        #expect(changed != plain)
        #expect(changed.encoded == nil && changed.readBytes == nil, "a change drops the caches")
    }

    @Test func entryJSONRoundTrips() throws {
        let text = #"{"id":"x","name":"X","url":"http://[::1]:9/mcp","liveness":"none","requiresSession":true,"capabilities":{"tools":["a"],"resources":["r://"],"prompts":["p"]},"health":{"status":"DEGRADED","message":"slow"},"metadata":{"k":1},"extra":"kept"}"#
        let e = try ServerEntry(jsonText: text)
        #expect(e.port == nil, "parsing stores what was given; register fills the port in")
        #expect(e.url.flatMap(ServerEntry.port(fromURL:)) == 9)
        #expect(e.requiresSession == true)
        #expect(e.health.status == .degraded)
        #expect(e.extra["extra"] == .string("kept"))
        let again = try ServerEntry(jsonText: e.jsonText)
        #expect(again == e)
    }

    @Test(arguments: [
        (#"{"id":"a/b","url":"http://x:1/"}"#, "id"),
        (#"{"id":"a.b","url":"http://x:1/"}"#, "id"),
        (#"{"id":"-a","url":"http://x:1/"}"#, "id"),
        (#"{"id":"\#(String(repeating: "a", count: 65))","url":"http://x:1/"}"#, "id"),
        (#"{"id":"a","url":"no scheme"}"#, "url"),
        (#"{"id":"a","url":"http://x:1/","port":70000}"#, "port"),
        (#"{"id":"a","url":"http://x:1/","pid":-4}"#, "pid"),
        (#"{"id":"a","url":"http://x:1/","ttlSeconds":0}"#, "ttlSeconds"),
        (#"{"id":"a","url":"http://x:1/","startedAt":"yesterday"}"#, "startedAt"),
        (#"{"id":"a","url":"http://x:1/","requiresSession":"yes"}"#, "requiresSession"),
        (#"{"id":"a","url":"http://x:1/","capabilities":{"tools":[""]}}"#, "capabilities.tools"),
        (#"{"id":"a","url":"http://x:1/","health":{"status":"healthy"}}"#, "health.status"),
        (#"{"id":"a","url":"http://x:1/","name":"nul\u0000"}"#, "name"),
    ])
    func rejectsBadEntries(text: String, field: String) throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        let error = expectError(.invalid) { try reg.register(json: text) }
        #expect(error?.message.contains("\"\(field)\"") == true, "\(String(describing: error))")
        #expect(try reg.generation() == 0, "bad input changes nothing")
        #expect(!FileManager.default.fileExists(atPath: dir.file))
    }

    @Test func timestampsParseAndFormat() {
        #expect(Timestamp.format(millis: 0) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.parse("2026-11-21T09:30:00.123Z") == 1_795_253_400_123)
        #expect(Timestamp.parse("2026-11-21T10:30:00.1+01:00") == 1_795_253_400_100)
        #expect(Timestamp.parse("2026-11-21T09:30:00Z") == 1_795_253_400_000)
        #expect(Timestamp.parse("2026-13-21T09:30:00Z") == nil)
        #expect(Timestamp.parse("2026-11-21 09:30") == nil)
        let now = Timestamp.nowMillis()
        #expect(Timestamp.parse(Timestamp.format(millis: now)) == now)
    }
}
