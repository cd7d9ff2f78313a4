import Testing
import RegistryKit
@testable import RegistryHTTP

/// `GET /events`: the current state first, then each change as it happens, resumable by id.
@Suite("Server-Sent Events", .serialized)
struct EventStreamTests {
    @Test func theFirstEventIsTheCurrentState() async throws {
        try await ServerFixture.start { registry in
            try registry.register(ServerEntry(id: "first", url: "http://127.0.0.1:9001/mcp"))
        }.use { fixture async throws in
            let client = try await EventStreamClient.connect(port: fixture.port)
            defer { client.close() }
            #expect(client.status == 200)
            #expect(client.header("content-type") == "text/event-stream; charset=utf-8")
            #expect(client.header("cache-control") == "no-store")
            let state = try #require(try await client.next())
            #expect(state.event == "state")
            let generation = try fixture.registry.generation()
            #expect(state.id == "\(generation)-\(fixture.server.hub.epoch)")
            #expect(try state.json()["generation"] == .int(generation))
            #expect(try state.ids("servers") == ["first"])
        }
    }

    @Test func aRegistrationArrivesAsAChange() async throws {
        try await ServerFixture.start().use { fixture async throws in
            let client = try await EventStreamClient.connect(port: fixture.port)
            defer { client.close() }
            let state = try await client.next("state")
            #expect(try state.ids("servers").isEmpty)

            // Another process registers after the browser connected.
            let other = try fixture.otherHandle()
            defer { other.close() }
            try other.register(ServerEntry(id: "late", url: "ws://127.0.0.1:1234", capabilities: Capabilities(tools: ["t"])))
            let added = try await client.next("change")
            #expect(try added.ids("added") == ["late"])
            #expect(try added.ids("removed").isEmpty)
            #expect(added.id == "\(try fixture.registry.generation())-\(fixture.server.hub.epoch)")
            #expect(try added.json()["added"]?.arrayValue?.first?.objectValue?["url"] == .string("ws://127.0.0.1:1234"))

            try other.setHealth("late", .degraded, message: "slow")
            let changed = try await client.next("change")
            #expect(try changed.ids("changed") == ["late"])
            let health = try changed.json()["changed"]?.arrayValue?.first?.objectValue?["health"]?.objectValue
            #expect(health?["status"] == .string("DEGRADED"))
            #expect(health?["message"] == .string("slow"))

            // The registrant goes away (closing its handle unregisters its lease entries).
            other.close()
            let removed = try await client.next("change")
            #expect(try removed.ids("removed") == ["late"])
            #expect(generationOf(removed.id) ?? 0 > generationOf(changed.id) ?? .max)
        }
    }

    @Test func everyClientGetsEveryChange() async throws {
        try await ServerFixture.start().use { fixture async throws in
            let clients = [
                try await EventStreamClient.connect(port: fixture.port),
                try await EventStreamClient.connect(port: fixture.port),
                try await EventStreamClient.connect(port: fixture.port),
            ]
            defer { for c in clients { c.close() } }
            for c in clients { _ = try await c.next("state") }
            try fixture.registry.register(ServerEntry(id: "fan-out", url: "http://127.0.0.1:9002/", liveness: .none))
            for c in clients {
                #expect(try await c.next("change").ids("added") == ["fan-out"])
            }
            let health = try await fixture.get("/healthz")
            #expect(try health.json()["sseClients"] == .int(3))
        }
    }

    @Test func aReconnectingClientThatIsUpToDateGetsNoReplay() async throws {
        try await ServerFixture.start { registry in
            try registry.register(ServerEntry(id: "a", url: "http://127.0.0.1:9003/", liveness: .none))
        }.use { fixture async throws in
            let first = try await EventStreamClient.connect(port: fixture.port)
            let state = try await first.next("state")
            first.close()

            let resumed = try await EventStreamClient.connect(port: fixture.port, lastEventID: state.id)
            defer { resumed.close() }
            try fixture.registry.register(ServerEntry(id: "b", url: "http://127.0.0.1:9004/", liveness: .none))
            // Nothing it already has: the next event is the change, not a state.
            let next = try #require(try await resumed.next())
            #expect(next.event == "change")
            #expect(try next.ids("added") == ["b"])
        }
    }

    @Test func aReconnectingClientThatMissedChangesGetsTheFullState() async throws {
        try await ServerFixture.start().use { fixture async throws in
            let first = try await EventStreamClient.connect(port: fixture.port)
            let state = try await first.next("state")
            first.close()
            // Changes while the browser was away.
            try fixture.registry.register(ServerEntry(id: "while-away", url: "http://127.0.0.1:9005/", liveness: .none))
            try fixture.registry.setHealth("while-away", .healthy)
            let currentID = "\(try fixture.registry.generation())-\(fixture.server.hub.epoch)"
            #expect(try await eventually { fixture.server.hub.currentEventID == currentID })

            let resumed = try await EventStreamClient.connect(port: fixture.port, lastEventID: state.id)
            defer { resumed.close() }
            let next = try #require(try await resumed.next())
            #expect(next.event == "state")
            #expect(next.id == currentID)
            #expect(try next.ids("servers") == ["while-away"])
            #expect(try next.json()["servers"]?.arrayValue?.first?.objectValue?["health"]?.objectValue?["status"] == .string("HEALTHY"))
        }
    }

    @Test func aDeathWithoutAWriteGetsItsOwnID() async throws {
        try await ServerFixture.start().use { fixture async throws in
            let client = try await EventStreamClient.connect(port: fixture.port)
            defer { client.close() }
            _ = try await client.next("state")
            try fixture.registry.register(ServerEntry(id: "short", url: "http://127.0.0.1:9006/", liveness: .ttl, ttlSeconds: 1))
            let added = try await client.next("change")
            #expect(added.id == "\(try fixture.registry.generation())-\(fixture.server.hub.epoch)")
            // Nobody writes: the ttl runs out and the watch sees the entry die.
            let expired = try await client.next("change", timeout: .seconds(5))
            #expect(try expired.ids("removed") == ["short"])
            #expect(expired.id == "\(try fixture.registry.generation()).1-\(fixture.server.hub.epoch)")

            // A client that saw the registration but not the expiry is sent the state again.
            let behind = try await EventStreamClient.connect(port: fixture.port, lastEventID: added.id)
            defer { behind.close() }
            let state = try await behind.next("state")
            #expect(state.id == expired.id)
            #expect(try state.ids("servers").isEmpty)
        }
    }

    @Test func keepAliveComments() async throws {
        try await ServerFixture.start(keepAlive: .milliseconds(100)).use { fixture async throws in
            let client = try await EventStreamClient.connect(port: fixture.port)
            defer { client.close() }
            _ = try await client.next("state")
            let comment = try #require(try await client.next(timeout: .seconds(5), includeComments: true))
            #expect(comment.comment == "keep-alive")
        }
    }

    @Test func aClientThatLeftIsForgotten() async throws {
        try await ServerFixture.start(keepAlive: .milliseconds(50)).use { fixture async throws in
            let client = try await EventStreamClient.connect(port: fixture.port)
            _ = try await client.next("state")
            #expect(fixture.server.hub.clientCount == 1)
            client.close()
            // The next keep-alive write fails and the stream is dropped.
            #expect(try await eventually { fixture.server.hub.clientCount == 0 })
        }
    }

    @Test func aCorruptRegistryIsReportedThenRecovers() async throws {
        try await ServerFixture.start { registry in
            try registry.register(ServerEntry(id: "before", url: "http://127.0.0.1:9007/", liveness: .none))
        }.use { fixture async throws in
            let client = try await EventStreamClient.connect(port: fixture.port)
            defer { client.close() }
            _ = try await client.next("state")
            try fixture.overwriteFile("{ not json")
            let problem = try await client.next("registry-error")
            #expect(problem.id == nil)  // the client keeps the id of the last state it has
            #expect(try problem.json()["code"] == .string("PEERREG_ECORRUPT"))

            // A browser connecting now learns what is wrong at once.
            let late = try await EventStreamClient.connect(port: fixture.port)
            defer { late.close() }
            #expect(try await late.next("registry-error").json()["code"] == .string("PEERREG_ECORRUPT"))

            let aside = try fixture.otherHandle().repair()
            #expect(aside != nil)
            let recovered = try await client.next("state")
            #expect(try recovered.ids("servers").isEmpty)
        }
    }

    @Test func aCrossOriginSubscriberGetsCORSHeaders() async throws {
        try await ServerFixture.start().use { fixture async throws in
            let client = try await EventStreamClient.connect(port: fixture.port, origin: "http://localhost:5173")
            defer { client.close() }
            #expect(client.status == 200)
            #expect(client.header("access-control-allow-origin") == "http://localhost:5173")
            _ = try await client.next("state")
        }
    }
}

/// The generation an event id starts with (`42` of `42-5f3a9c1e`, `42.1-5f3a9c1e`).
func generationOf(_ id: String?) -> Int? {
    id.flatMap { Int($0.prefix { $0.isNumber }) }
}
