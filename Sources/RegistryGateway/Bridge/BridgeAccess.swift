import HTTPTypes

/// Who may call a bridge: only this machine's own processes. The one place the policy lives
/// (to be replaced by the servers' shared policy module): a non-loopback Host or a foreign
/// Origin is refused with 403 (DNS rebinding, pages of other sites), a missing or wrong bearer
/// token with 401.
struct BridgeAccess: Sendable {
    let token: String

    struct Refusal: Sendable {
        var status: HTTPResponse.Status
        var message: String
    }

    func check(_ head: HTTPRequest) -> Refusal? {
        if let authority = head.authority, !Self.isLoopbackAuthority(authority) {
            return Refusal(status: .forbidden, message: "Forbidden: Host \"\(authority.prefix(100))\" is not a loopback name")
        }
        if let origin = head.headerFields[.origin], !Self.isLoopbackOrigin(origin) {
            return Refusal(status: .forbidden, message: "Forbidden: Origin \"\(origin.prefix(100))\" is not this machine")
        }
        guard let auth = head.headerFields[.authorization], auth.hasPrefix("Bearer "),
              Self.constantTimeEqual(Array(auth.utf8.dropFirst(7)), Array(token.utf8)) else {
            return Refusal(status: .unauthorized, message: "Unauthorized: send the bearer token of this server's registry entry (its \"headers\")")
        }
        return nil
    }

    static func isLoopbackAuthority(_ authority: String) -> Bool {
        var host = Substring(authority.lowercased())
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return false }
            host = host[host.startIndex...close]
            return host == "[::1]"
        }
        if let colon = host.firstIndex(of: ":") { host = host[..<colon] }
        return host == "localhost" || host == "127.0.0.1" || host.hasSuffix(".localhost")
    }

    static func isLoopbackOrigin(_ origin: String) -> Bool {
        let o = origin.lowercased()
        for scheme in ["http://", "https://"] where o.hasPrefix(scheme) {
            return isLoopbackAuthority(String(o.dropFirst(scheme.count)))
        }
        return false
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<a.count { diff |= a[i] ^ b[i] }
        return diff == 0
    }
}
