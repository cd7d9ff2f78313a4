/// Who may talk to the registry server: which `Host` names it answers and which browser origins
/// may read its answers (CORS). Safe by default: loopback only.
///
/// - Host: a browser on the machine can be made to send requests to 127.0.0.1 from any web page
///   through DNS rebinding (`evil.example` resolving to 127.0.0.1). Such requests carry the
///   attacker's name in `Host`, so only loopback names (plus names listed in `allowedHosts`) are
///   answered; everything else gets 403.
/// - Origin: a page on a loopback origin (`http://localhost:5173`, `http://127.0.0.1:8080`,
///   `http://[::1]:3000`, http or https, any port) may read the answers; other origins only when
///   listed in `allowedOrigins` (`*` allows every origin). A request from another origin gets 403,
///   so a page elsewhere learns nothing — not even through a request it cannot read.
public struct AccessPolicy: Sendable, Equatable {
    /// Extra origins allowed besides loopback ones, exactly as a browser sends them
    /// (`https://app.example.com`, `null` for file:// pages); `*` allows every origin.
    public var allowedOrigins: [String]
    /// Extra host names (without port) answered besides loopback ones, e.g. the address the
    /// server was bound to when it is not a loopback address.
    public var allowedHosts: [String]

    public init(allowedOrigins: [String] = [], allowedHosts: [String] = []) {
        self.allowedOrigins = allowedOrigins
        self.allowedHosts = allowedHosts.map { $0.lowercased() }
    }

    /// Whether every origin is allowed (`--allow-origin '*'`).
    public var allowsAnyOrigin: Bool { allowedOrigins.contains("*") }

    /// Whether a request with this `Host` header value is answered. `nil` (no Host header) is
    /// refused: every HTTP/1.1 client, and every browser, sends one.
    public func allowsHost(_ host: String?) -> Bool {
        guard let host, let (name, _) = Self.splitHostPort(host) else { return false }
        return Self.isLoopbackName(name) || allowedHosts.contains(name)
    }

    /// Whether a page from `origin` may read the answers. `host` is the request's Host: a page
    /// served by this server itself (same origin) is always allowed.
    public func allowsOrigin(_ origin: String, host: String?) -> Bool {
        if allowsAnyOrigin || allowedOrigins.contains(origin) { return true }
        guard let (scheme, authority) = Self.splitOrigin(origin) else { return false }
        if let host, scheme == "http", authority.lowercased() == host.lowercased() { return true }
        guard scheme == "http" || scheme == "https", let (name, _) = Self.splitHostPort(authority) else { return false }
        return Self.isLoopbackName(name)
    }

    /// `localhost`, `127.0.0.1`, `[::1]` (lowercased, brackets kept for IPv6).
    static func isLoopbackName(_ name: String) -> Bool {
        name == "localhost" || name == "127.0.0.1" || name == "[::1]"
    }

    /// Splits `name[:port]` (`[v6]:port` for IPv6) and lowercases the name. nil when the port is
    /// not 1-5 digits or the name is empty or holds characters a host name cannot.
    static func splitHostPort(_ value: String) -> (String, Int?)? {
        var name = Substring(value)
        var port: Int?
        if name.hasPrefix("[") {
            guard let close = name.firstIndex(of: "]") else { return nil }
            let rest = name[name.index(after: close)...]
            if !rest.isEmpty {
                guard rest.first == ":", let p = parsePort(rest.dropFirst()) else { return nil }
                port = p
            }
            name = name[...close]
        } else if let colon = name.lastIndex(of: ":") {
            guard let p = parsePort(name[name.index(after: colon)...]) else { return nil }
            port = p
            name = name[..<colon]
        }
        guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "@") }) else {
            return nil
        }
        return (name.lowercased(), port)
    }

    private static func parsePort(_ digits: Substring) -> Int? {
        guard (1...5).contains(digits.count), digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(digits).flatMap { $0 <= 65535 ? $0 : nil }
    }

    /// `scheme://authority` (no path, as browsers send `Origin`) → (lowercased scheme, authority).
    static func splitOrigin(_ origin: String) -> (String, String)? {
        guard let range = origin.range(of: "://") else { return nil }
        let scheme = origin[..<range.lowerBound].lowercased()
        let authority = String(origin[range.upperBound...])
        guard !scheme.isEmpty, !authority.isEmpty, !authority.contains("/") else { return nil }
        return (scheme, authority)
    }
}
