import HTTPTypes
#if canImport(Glibc)
import Glibc
#endif

/// The secret a client must show to a server of this project (as Jupyter's token): the file
/// `servers.json` is 0600, and a server on a loopback port must not hand it to every local user.
///
/// A server makes a new random token at start (or takes `$PEER_REGISTRY_TOKEN`), prints its URL
/// with `?token=...`, and writes it to a 0600 runtime file in the registry's directory
/// (`RuntimeFile`). A client shows it as `Authorization: Bearer <token>` (programs), as
/// `?token=<token>` in the URL (a browser's first visit, EventSource), or as the cookie the
/// server sets on that first visit (`cookieName(port:)`).
public struct AccessToken: Sendable, Equatable, CustomStringConvertible {
    /// The token text: 1-256 characters of `A-Z a-z 0-9 - . _ ~` (URL-safe as it is).
    public let value: String

    /// The environment variable that fixes the token instead of a random one.
    public static let environmentVariable = "PEER_REGISTRY_TOKEN"
    /// The shortest token accepted from the environment (a random one is 64 hex digits).
    public static let minimumLength = 32

    /// A new random token: 256 bits from the system's generator (getrandom), in hex.
    public static func generate() -> AccessToken {
        var rng = SystemRandomNumberGenerator()
        let hex = (0..<4).map { _ -> String in
            let s = String(rng.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }.joined()
        return AccessToken(unchecked: hex)
    }

    private init(unchecked value: String) { self.value = value }

    /// `value` as a token, or nil when it is shorter than `minimumLength`, longer than 256, or
    /// holds a character outside `A-Z a-z 0-9 - . _ ~`.
    public init?(_ value: String) {
        guard (Self.minimumLength...256).contains(value.utf8.count), value.utf8.allSatisfy(Self.isTokenByte) else { return nil }
        self.value = value
    }

    /// `$PEER_REGISTRY_TOKEN` when set (nil when it is not set); throws when it is set but not
    /// a valid token, so that a typo does not silently fall back to a random one.
    public static func fromEnvironment() throws(PolicyError) -> AccessToken? {
        guard let raw = getenv(environmentVariable) else { return nil }
        let text = String(cString: raw)
        guard let token = AccessToken(text) else {
            throw PolicyError("$\(environmentVariable): use \(minimumLength) to 256 characters of A-Z a-z 0-9 - . _ ~")
        }
        return token
    }

    /// The token from the environment, else a new random one.
    public static func fromEnvironmentOrGenerate() throws(PolicyError) -> AccessToken {
        try fromEnvironment() ?? generate()
    }

    /// The token of the servers of the registry at `registryPath`: `$PEER_REGISTRY_TOKEN` when
    /// set, else the one kept in `<registry dir>/runtime/token` (0600), made there on first use.
    /// Kept, so that a restarted server does not lock out the pages and programs that have it;
    /// delete the file to change it.
    /// - Throws: `PolicyError` for a bad `$PEER_REGISTRY_TOKEN`, or a token file that cannot be
    ///   made or is not this user's alone.
    public static func forRegistry(at registryPath: String) throws(PolicyError) -> AccessToken {
        if let token = try fromEnvironment() { return token }
        let path = RuntimeFile.directory(forRegistryAt: registryPath) + "/token"
        if let existing = try RuntimeFile.readPrivate(path) {
            guard let token = AccessToken(String(existing.trimmingSpaces())) else {
                throw PolicyError("\(path) does not hold a token (\(minimumLength) to 256 characters of A-Z a-z 0-9 - . _ ~): delete it and a new one is made")
            }
            return token
        }
        let token = generate()
        try RuntimeFile.writePrivate(registryPath: registryPath, fileName: "token", contents: token.value + "\n", replace: false)
        // Another server may have made it first: theirs wins.
        if let made = try RuntimeFile.readPrivate(path), let kept = AccessToken(String(made.trimmingSpaces())) { return kept }
        return token
    }

    static func isTokenByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
            || b == UInt8(ascii: "-") || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "~")
    }

    /// Whether `candidate` is this token, in time that does not depend on where they differ.
    public func matches<S: StringProtocol>(_ candidate: S) -> Bool {
        let a = Array(value.utf8)
        let b = Array(candidate.utf8)
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<a.count {
            difference |= a[i] ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0
    }

    /// The cookie a browser keeps the token in. Cookies are not kept per port, so the name
    /// carries it (as Jupyter's does): two servers on one host do not overwrite each other's.
    public static func cookieName(port: Int) -> String { "peer-registry-token-\(port)" }

    /// Never prints the secret.
    public var description: String { "AccessToken(\(value.count) characters)" }

    // MARK: - Finding a token in a request

    /// Where a request showed its token.
    public enum Presentation: Sendable, Equatable {
        case bearer, query, cookie
    }

    /// The token a request shows, with where it was found: `Authorization: Bearer`, then the
    /// `token` query parameter, then the cookie `cookieName`. nil when it shows none.
    public static func presented(authorization: String?, query: String?, cookies: [String], cookieName: String) -> (String, Presentation)? {
        if let authorization {
            let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                return (String(parts[1].trimmingSpaces()), .bearer)
            }
        }
        if let query, let token = queryValue(query, name: "token") { return (token, .query) }
        for header in cookies {
            for pair in header.split(separator: ";") {
                let kv = pair.trimmingSpaces().split(separator: "=", maxSplits: 1)
                if kv.count == 2, kv[0] == cookieName { return (String(kv[1]), .cookie) }
            }
        }
        return nil
    }

    /// The first value of parameter `name` in a query string (`a=1&token=x`), percent-decoded.
    public static func queryValue(_ query: String, name: String) -> String? {
        for pair in query.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard kv.count == 2, kv[0] == name else { continue }
            return percentDecoded(kv[1])
        }
        return nil
    }

    /// `query` without its `token` parameter (for a redirect that takes the token out of the
    /// address bar); nil when nothing is left.
    public static func queryWithoutToken(_ query: String) -> String? {
        let kept = query.split(separator: "&").filter { !$0.hasPrefix("token=") && $0 != "token" }
        return kept.isEmpty ? nil : kept.joined(separator: "&")
    }

    static func percentDecoded(_ s: Substring) -> String? {
        var bytes: [UInt8] = []
        var it = Array(s.utf8)[...]
        while let b = it.popFirst() {
            if b == UInt8(ascii: "%") {
                guard it.count >= 2, let hi = hexValue(it[it.startIndex]), let lo = hexValue(it[it.startIndex + 1]) else { return nil }
                bytes.append(hi << 4 | lo)
                it = it.dropFirst(2)
            } else if b == UInt8(ascii: "+") {
                bytes.append(0x20)
            } else {
                bytes.append(b)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: b - 0x30
        case 0x41...0x46: b - 0x41 + 10
        case 0x61...0x66: b - 0x61 + 10
        default: nil
        }
    }
}

extension StringProtocol {
    func trimmingSpaces() -> Substring {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" || s.first == "\n" { s.removeFirst() }
        while s.last == " " || s.last == "\t" || s.last == "\n" { s.removeLast() }
        return s
    }
}

/// A policy that cannot be applied as given (a bad token in the environment, a runtime file
/// that cannot be written, a combination of options that would open the registry to any web
/// page). The message says what to change.
public struct PolicyError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
