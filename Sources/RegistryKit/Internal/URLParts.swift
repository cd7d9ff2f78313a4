/// The one URL parser of the registry: what `register` validates, where `port` and `transport`
/// defaults come from. Not a general URL library: `scheme:rest`, and for schemes with an
/// authority (`scheme://[userinfo@]host[:port]/path`) the host and port.
struct URLParts: Equatable {
    /// Lowercased.
    var scheme: String
    /// Empty when the URL has no authority (`stdio:server`); IPv6 hosts without brackets.
    var host: String
    /// The explicit port, if one was written.
    var explicitPort: Int?
    /// From the first `/`, `?` or `#` after the authority; `/` when there is none.
    var path: String

    /// The explicit port, else the scheme's default (80 for http/ws, 443 for https/wss).
    var port: Int? {
        if let explicitPort { return explicitPort }
        switch scheme {
        case "http", "ws": return 80
        case "https", "wss": return 443
        default: return nil
        }
    }

    /// Schemes that must name a host.
    static let networkSchemes: Set<String> = ["http", "https", "ws", "wss"]

    /// Parses `text`, or says what is wrong with it.
    static func parse(_ text: String) -> Result<URLParts, URLError> {
        let u = Array(text.utf8)
        guard !u.isEmpty else { return .failure(URLError("is empty")) }
        guard u.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else { return .failure(URLError("contains spaces or control characters")) }
        guard let colon = u.firstIndex(of: UInt8(ascii: ":")), colon > 0, isAlpha(u[0]),
              u[0..<colon].allSatisfy({ isAlpha($0) || isDigit($0) || $0 == 0x2B || $0 == 0x2D || $0 == 0x2E })
        else { return .failure(URLError("has no scheme (scheme:rest, the scheme starting with a letter)")) }
        let scheme = String(decoding: u[0..<colon], as: UTF8.self).lowercased()
        let rest = u[(colon + 1)...]
        guard rest.starts(with: "//".utf8) else {
            if networkSchemes.contains(scheme) { return .failure(URLError("needs //host after \(scheme):")) }
            return .success(URLParts(scheme: scheme, host: "", explicitPort: nil, path: String(decoding: rest, as: UTF8.self)))
        }
        let afterSlashes = rest.index(rest.startIndex, offsetBy: 2)
        let authorityEnd = rest[afterSlashes...].firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? rest.endIndex
        var hostPort = rest[afterSlashes..<authorityEnd]
        if let at = hostPort.lastIndex(of: UInt8(ascii: "@")) { hostPort = hostPort[(at + 1)...] }
        var host: ArraySlice<UInt8>
        var portText: ArraySlice<UInt8>? = nil
        if hostPort.first == UInt8(ascii: "[") {
            guard let close = hostPort.firstIndex(of: UInt8(ascii: "]")) else { return .failure(URLError("has an unclosed [ in its host")) }
            host = hostPort[(hostPort.startIndex + 1)..<close]
            let after = hostPort[(close + 1)...]
            if let first = after.first {
                guard first == UInt8(ascii: ":") else { return .failure(URLError("has characters after ]")) }
                portText = after.dropFirst()
            }
        } else if let c = hostPort.lastIndex(of: UInt8(ascii: ":")) {
            host = hostPort[..<c]
            portText = hostPort[(c + 1)...]
        } else {
            host = hostPort
        }
        var explicitPort: Int? = nil
        if let portText, !portText.isEmpty {
            guard portText.count <= 5, portText.allSatisfy(isDigit),
                  let p = Int(String(decoding: portText, as: UTF8.self)), (1...65535).contains(p)
            else { return .failure(URLError("has port \"\(String(decoding: portText.prefix(12), as: UTF8.self))\", not 1-65535")) }
            explicitPort = p
        }
        if networkSchemes.contains(scheme), host.isEmpty { return .failure(URLError("has no host")) }
        let path = authorityEnd < rest.endIndex ? String(decoding: rest[authorityEnd...], as: UTF8.self) : "/"
        return .success(URLParts(scheme: scheme, host: String(decoding: host, as: UTF8.self), explicitPort: explicitPort, path: path))
    }

    private static func isAlpha(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) }
    private static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
}

/// Why a URL was refused.
struct URLError: Error, Equatable {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}
