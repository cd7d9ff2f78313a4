import Testing
@testable import RegistryHTTP
@testable import RegistryServerPolicy

@Suite("Access policy: Host names and origins")
struct AccessPolicyTests {
    let policy = AccessPolicy()

    @Test(arguments: ["localhost", "localhost:3001", "LocalHost:80", "127.0.0.1", "127.0.0.1:1", "[::1]", "[::1]:3001"])
    func loopbackHostsAreAnswered(_ host: String) {
        #expect(policy.allowsHost(host))
    }

    @Test(arguments: [
        "evil.example", "evil.example:3001", "localhost.evil.example", "127.0.0.1.nip.io", "127.0.0.2", "0.0.0.0:3001",
        "192.168.1.10:3001", "[::1", "[::2]:80", "localhost:99999", "localhost:", "localhost:80x", "", "local host", "user@localhost",
    ])
    func otherHostsAreRefused(_ host: String) {
        #expect(!policy.allowsHost(host))
    }

    @Test func aMissingHostIsRefused() {
        #expect(!policy.allowsHost(nil))
    }

    @Test func allowedHostsWidenTheHostCheck() {
        let wide = AccessPolicy(allowedHosts: ["Registry.LAN"])
        #expect(wide.allowsHost("registry.lan:3001"))
        #expect(wide.allowsHost("localhost"))
        #expect(!wide.allowsHost("other.lan"))
    }

    @Test(arguments: [
        "http://localhost", "http://localhost:5173", "http://127.0.0.1:8080", "http://[::1]:3000", "https://localhost:8443",
        "HTTP://LOCALHOST:1",
    ])
    func loopbackOriginsAreAllowed(_ origin: String) {
        #expect(policy.allowsOrigin(origin, host: "127.0.0.1:3001"))
    }

    @Test(arguments: [
        "http://evil.example", "https://evil.example:3001", "http://localhost.evil.example", "null", "file://",
        "ws://localhost:1234", "http://127.0.0.1.evil.example", "http://localhost:5173/path", "localhost:5173",
    ])
    func otherOriginsAreRefused(_ origin: String) {
        #expect(!policy.allowsOrigin(origin, host: "127.0.0.1:3001"))
    }

    @Test func thePageTheServerServesIsSameOrigin() {
        let wide = AccessPolicy(allowedHosts: ["registry.lan"])
        #expect(wide.allowsOrigin("http://registry.lan:3001", host: "registry.lan:3001"))
        #expect(!wide.allowsOrigin("http://registry.lan:9999", host: "registry.lan:3001"))
    }

    @Test func allowOriginListsExactOriginsOrEverything() {
        let listed = AccessPolicy(allowedOrigins: ["https://app.example.com", "null"])
        #expect(listed.allowsOrigin("https://app.example.com", host: nil))
        #expect(listed.allowsOrigin("null", host: nil))
        #expect(!listed.allowsOrigin("https://app.example.com:444", host: nil))
        #expect(!listed.allowsOrigin("https://evil.example", host: nil))
        #expect(!listed.allowsAnyOrigin)
        let any = AccessPolicy(allowedOrigins: ["*"])
        #expect(any.allowsAnyOrigin)
        #expect(any.allowsOrigin("https://anything.example", host: nil))
    }
}
