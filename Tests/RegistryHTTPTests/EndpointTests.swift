import Glibc
import Testing
import RegistryKit
@testable import RegistryHTTP

/// The HTTP endpoints, over a real socket against a server listening on a free port.
@Suite("HTTP endpoints", .serialized)
struct EndpointTests {
    /// Two servers: a lease entry (registered by the fixture's handle) and a static one, plus a
    /// stdio server that has no URL.
    static func populated() async throws -> ServerFixture {
        try await ServerFixture.start { registry in
            try registry.register(ServerEntry(
                id: "journey", name: "Journey", url: "http://127.0.0.1:8080/mcp",
                capabilities: Capabilities(tools: ["findTrips", "shared"], resources: ["resource://journey/"], prompts: ["plan-trip"]),
                health: Health(status: .healthy)))
            try registry.register(ServerEntry(
                id: "static-ws", url: "ws://127.0.0.1:1234", liveness: .none,
                capabilities: Capabilities(tools: ["shared"], resources: ["resource://journey/trips/"])))
            try registry.register(ServerEntry(id: "local-stdio", transport: .stdio, liveness: .none, capabilities: Capabilities(tools: ["local"])))
        }
    }

    @Test func registryHasTheShapeLegacyReadersExpect() async throws {
        try await Self.populated().use { fixture async throws in
            let response = try await fixture.get("/registry")
            #expect(response.status == 200)
            #expect(response.header("content-type") == "application/json; charset=utf-8")
            let body = try response.json()
            #expect(body.keys == ["servers"])
            let servers = try #require(body["servers"]?.arrayValue).compactMap(\.objectValue)
            // The stdio server has no URL or port: a port/url reader could only trip on it.
            #expect(servers.compactMap { $0["id"]?.stringValue } == ["journey", "static-ws"])
            for server in servers {
                #expect(Array(server.keys.prefix(4)) == ["port", "url", "pid", "startedAt"])
            }
            let journey = servers[0]
            #expect(journey["port"] == .int(8080))
            #expect(journey["url"] == .string("http://127.0.0.1:8080/mcp"))
            #expect(journey["pid"] == .int(getpid()))
            #expect(journey["startedAt"]?.stringValue?.hasSuffix("Z") == true)
            #expect(servers[1]["pid"] == .null)  // a static entry names no process
            #expect(servers[1]["port"] == .int(1234))
        }
    }

    /// `/registry` and `/servers` are encoded once per registry state and shared: a change (a
    /// write here, then an entry whose lease holder is gone) must show in the next answer.
    @Test func cachedListingsFollowEveryChange() async throws {
        try await Self.populated().use { fixture async throws in
            func ids(_ path: String) async throws -> [String] {
                let body = try await fixture.get(path).json()
                return try #require(body["servers"]?.arrayValue).compactMap { $0.objectValue?["id"]?.stringValue }
            }
            #expect(try await ids("/registry") == ["journey", "static-ws"])
            #expect(try await ids("/registry") == ["journey", "static-ws"])
            #expect(try await ids("/servers") == ["journey", "static-ws", "local-stdio"])
            try fixture.registry.register(ServerEntry(id: "late", url: "http://127.0.0.1:9090/mcp", liveness: .none))
            #expect(try await ids("/registry") == ["journey", "static-ws", "late"])
            #expect(try await ids("/servers") == ["journey", "static-ws", "local-stdio", "late"])
            try fixture.registry.unregister("journey")
            #expect(try await ids("/registry") == ["static-ws", "late"])
            #expect(try await ids("/servers") == ["static-ws", "local-stdio", "late"])
        }
    }

    @Test func serversIsTheLibraryListing() async throws {
        try await Self.populated().use { fixture async throws in
            let response = try await fixture.get("/servers")
            #expect(response.status == 200)
            #expect(response.body == (try fixture.registry.list().jsonText) + "\n")
            #expect(response.header("cache-control") == "no-store")
        }
    }

    @Test func serversFilters() async throws {
        try await Self.populated().use { fixture async throws in
            func ids(_ query: String) async throws -> [String] {
                let response = try await fixture.get("/servers?" + query)
                #expect(response.status == 200, "\(query): \(response)")
                return try (response.json()["servers"]?.arrayValue ?? []).compactMap { $0.objectValue?["id"]?.stringValue }
            }
            #expect(try await ids("healthy=true") == ["journey"])
            #expect(try await ids("healthy=false") == ["static-ws", "local-stdio"])
            #expect(try await ids("transport=ws") == ["static-ws"])
            #expect(try await ids("tool=shared") == ["journey", "static-ws"])
            #expect(try await ids("tool=shared&transport=http") == ["journey"])
            #expect(try await ids("resource=resource%3A%2F%2Fjourney%2Ftrips%2F7") == ["journey", "static-ws"])
            #expect(try await ids("prompt=plan-trip") == ["journey"])
            #expect(try await ids("status=UNKNOWN") == ["static-ws", "local-stdio"])
            #expect(try await ids("tool=nobody").isEmpty)
            for bad in ["transport=carrier-pigeon", "healthy=maybe", "colour=blue", "status=FINE"] {
                let response = try await fixture.get("/servers?" + bad)
                #expect(response.status == 400, "\(bad)")
                #expect(try response.json()["code"] == .string("PEERREG_EINVAL"))
            }
        }
    }

    @Test func serverByID() async throws {
        try await Self.populated().use { fixture async throws in
            let found = try await fixture.get("/servers/journey")
            #expect(found.status == 200)
            #expect(found.body == (try fixture.registry.get("journey").jsonText) + "\n")
            let missing = try await fixture.get("/servers/nobody")
            #expect(missing.status == 404)
            let error = try missing.json()
            #expect(error["code"] == .string("PEERREG_ENOTFOUND"))
            #expect(error["error"]?.stringValue?.contains("nobody") == true)
        }
    }

    @Test func resolve() async throws {
        try await Self.populated().use { fixture async throws in
            func resolved(_ query: String) async throws -> (Int, JSONObject) {
                let response = try await fixture.get("/resolve?" + query)
                return (response.status, try response.json())
            }
            var (status, body) = try await resolved("tool=findTrips")
            #expect(status == 200 && body["id"] == .string("journey"))
            (status, body) = try await resolved("tool=static-ws.shared")  // qualified
            #expect(status == 200 && body["id"] == .string("static-ws"))
            (status, body) = try await resolved("tool=shared")  // HEALTHY beats UNKNOWN
            #expect(status == 200 && body["id"] == .string("journey"))
            (status, body) = try await resolved("resource=resource%3A%2F%2Fjourney%2Ftrips%2F1")  // longest prefix
            #expect(status == 200 && body["id"] == .string("static-ws"))
            (status, body) = try await resolved("prompt=plan-trip")
            #expect(status == 200 && body["id"] == .string("journey"))
            (status, body) = try await resolved("tool=nobody-has-it")
            #expect(status == 404 && body["code"] == .string("PEERREG_ENOTFOUND"))
            for bad in ["", "tool=a&prompt=b", "colour=blue"] {
                (status, body) = try await resolved(bad)
                #expect(status == 400 && body["code"] == .string("PEERREG_EINVAL"), "\(bad)")
            }
        }
    }

    @Test func resolveAmbiguousIs409() async throws {
        try await ServerFixture.start { registry in
            for id in ["a", "b"] {
                try registry.register(ServerEntry(id: id, url: "http://127.0.0.1:80\(id == "a" ? 81 : 82)/", liveness: .none,
                                                  capabilities: Capabilities(tools: ["same"])))
            }
        }.use { fixture async throws in
            let response = try await fixture.get("/resolve?tool=same")
            #expect(response.status == 409)
            let body = try response.json()
            #expect(body["code"] == .string("PEERREG_EAMBIGUOUS"))
            #expect(body["error"]?.stringValue?.contains("a, b") == true)
        }
    }

    @Test func healthzAndACorruptRegistry() async throws {
        try await Self.populated().use { fixture async throws in
            let healthy = try await fixture.get("/healthz")
            #expect(healthy.status == 200)
            let ok = try healthy.json()
            #expect(ok["ok"] == .bool(true))
            #expect(ok["servers"] == .int(3))
            #expect(ok["registry"] == .string(fixture.path))

            try fixture.overwriteFile("{\"servers\": [ this is not json")
            let sick = try await fixture.get("/healthz")
            #expect(sick.status == 503)
            #expect(try sick.json()["code"] == .string("PEERREG_ECORRUPT"))
            let list = try await fixture.get("/servers")
            #expect(list.status == 503)
            #expect(try list.json()["code"] == .string("PEERREG_ECORRUPT"))
            #expect(try await fixture.get("/registry").status == 503)
        }
    }

    @Test func statusPageAndItsFiles() async throws {
        try await ServerFixture.start().use { fixture async throws in
            #expect(fixture.server.staticDirectory != nil)
            let page = try await fixture.get("/")
            #expect(page.status == 200)
            #expect(page.header("content-type") == "text/html; charset=utf-8")
            #expect(page.body.contains("<script type=\"module\" src=\"/status.js\">"))
            #expect(page.header("content-security-policy")?.contains("script-src 'self'") == true)
            let script = try await fixture.get("/status.js")
            #expect(script.status == 200)
            #expect(script.header("content-type") == "text/javascript; charset=utf-8")
            #expect(script.body.contains("new EventSource('/events')"))
            #expect(try await fixture.get("/status.css").status == 200)
            let missing = try await fixture.get("/../Package.swift")
            #expect(missing.status == 404)
            let unknown = try await fixture.get("/nothing-here")
            #expect(unknown.status == 404)
            #expect(try unknown.json()["code"] == .string("HTTP_404"))
        }
    }
}
