import Testing
import RegistryKit
@testable import RegistryHTTP
import RegistryServerPolicy

/// CORS and the Host check, as a browser (or an attacker's page through DNS rebinding) meets them.
@Suite("CORS and Host check over HTTP", .serialized)
struct AccessTests {
    @Test func aLoopbackOriginGetsCORSHeaders() async throws {
        try await ServerFixture.start().use { fixture async throws in
            let host = ("Host", "127.0.0.1:\(fixture.port)")
            for origin in ["http://localhost:5173", "http://127.0.0.1:8080", "http://[::1]:3000"] {
                let response = try await fixture.get("/servers", headers: [host, ("Origin", origin)])
                #expect(response.status == 200, "\(origin)")
                #expect(response.header("access-control-allow-origin") == origin)
                #expect(response.header("vary") == "Origin")
            }
            // No Origin (curl, same-origin navigation): no CORS headers needed, none sent.
            let plain = try await fixture.get("/servers")
            #expect(plain.status == 200)
            #expect(plain.header("access-control-allow-origin") == nil)
        }
    }

    @Test func anotherOriginIsRefused() async throws {
        try await ServerFixture.start().use { fixture async throws in
            let response = try await fixture.get("/servers", headers: [("Host", "127.0.0.1:\(fixture.port)"), ("Origin", "https://evil.example")])
            #expect(response.status == 403)
            #expect(response.header("access-control-allow-origin") == nil)
            #expect(try response.json()["code"] == .string("HTTP_FORBIDDEN_ORIGIN"))
            #expect(response.body.contains("--allow-origin"))
            let sse = try await fixture.get("/events", headers: [("Host", "localhost:\(fixture.port)"), ("Origin", "null")])
            #expect(sse.status == 403)
        }
    }

    @Test func preflight() async throws {
        try await ServerFixture.start().use { fixture async throws in
            let host = ("Host", "localhost:\(fixture.port)")
            let allowed = try await TestHTTP.request(port: fixture.port, "OPTIONS", "/events", headers: [
                host, ("Origin", "http://localhost:5173"), ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "last-event-id"),
            ])
            #expect(allowed.status == 204)
            #expect(allowed.header("access-control-allow-origin") == "http://localhost:5173")
            #expect(allowed.header("access-control-allow-methods") == "GET, HEAD, OPTIONS")
            #expect(allowed.header("access-control-allow-headers")?.contains("Last-Event-ID") == true)
            #expect(allowed.header("access-control-max-age") == "600")
            #expect(allowed.header("access-control-allow-private-network") == nil)

            let refused = try await TestHTTP.request(port: fixture.port, "OPTIONS", "/servers", headers: [
                host, ("Origin", "http://evil.example"), ("Access-Control-Request-Method", "GET"),
            ])
            #expect(refused.status == 403)
            #expect(refused.header("access-control-allow-origin") == nil)
        }
    }

    @Test func allowOriginWidensAndStarAllowsAll() async throws {
        try await ServerFixture.start(access: AccessPolicy(allowedOrigins: ["https://app.example.com"])).use { fixture async throws in
            let host = ("Host", "127.0.0.1:\(fixture.port)")
            let listed = try await fixture.get("/servers", headers: [host, ("Origin", "https://app.example.com")])
            #expect(listed.status == 200)
            #expect(listed.header("access-control-allow-origin") == "https://app.example.com")
            // A public page reaching a loopback server: Chrome's Private Network Access preflight.
            let pna = try await TestHTTP.request(port: fixture.port, "OPTIONS", "/servers", headers: [
                host, ("Origin", "https://app.example.com"), ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Private-Network", "true"),
            ])
            #expect(pna.status == 204)
            #expect(pna.header("access-control-allow-private-network") == "true")
            #expect(try await fixture.get("/servers", headers: [host, ("Origin", "https://other.example.com")]).status == 403)
        }
        // '*' lets every site's pages in: only with the token (refused without one).
        await #expect(throws: (any Error).self) {
            try await ServerFixture.start(access: AccessPolicy(allowedOrigins: ["*"])).stop()
        }
        let token = AccessToken.generate()
        try await ServerFixture.start(access: AccessPolicy(allowedOrigins: ["*"]), token: token).use { fixture async throws in
            let without = try await fixture.get("/servers", headers: [("Host", "127.0.0.1:\(fixture.port)"), ("Origin", "https://anyone.example")])
            #expect(without.status == 401)
            let response = try await fixture.get("/servers", headers: [
                ("Host", "127.0.0.1:\(fixture.port)"), ("Origin", "https://anyone.example"), ("Authorization", "Bearer \(token.value)"),
            ])
            #expect(response.status == 200)
            #expect(response.header("access-control-allow-origin") == "*")
            #expect(response.header("vary") == nil)
        }
    }

    @Test func aNonLoopbackHostIsRefused() async throws {
        try await ServerFixture.start().use { fixture async throws in
            // What a page on evil.example sends after rebinding its name to 127.0.0.1.
            for host in ["evil.example:\(fixture.port)", "evil.example", "127.0.0.1.nip.io:\(fixture.port)", "192.168.0.7:\(fixture.port)"] {
                for path in ["/servers", "/events", "/", "/registry"] {
                    let response = try await fixture.get(path, headers: [("Host", host)])
                    #expect(response.status == 403, "\(host) \(path)")
                    #expect(try response.json()["code"] == .string("HTTP_FORBIDDEN_HOST"))
                }
            }
            for host in ["localhost:\(fixture.port)", "127.0.0.1:\(fixture.port)", "[::1]:\(fixture.port)", "LOCALHOST"] {
                #expect(try await fixture.get("/healthz", headers: [("Host", host)]).status == 200, "\(host)")
            }
        }
    }

    @Test func aMissingOrRepeatedHostIsRefused() async throws {
        try await ServerFixture.start().use { fixture async throws in
            let none = try await fixture.get("/servers", headers: [])
            #expect(none.status == 403)
            let twice = try await fixture.get("/servers", headers: [("Host", "localhost:\(fixture.port)"), ("Host", "evil.example")])
            #expect(twice.status == 400)
        }
    }

    @Test func allowHostAddsAName() async throws {
        try await ServerFixture.start(access: AccessPolicy(allowedHosts: ["registry.lan"])).use { fixture async throws in
            #expect(try await fixture.get("/healthz", headers: [("Host", "registry.lan:\(fixture.port)")]).status == 200)
            #expect(try await fixture.get("/healthz", headers: [("Host", "other.lan:\(fixture.port)")]).status == 403)
        }
    }
}
