import RegistryKit

/// What the agent publishes of a local entry, and why it publishes nothing (docs/CLUSTER.md).
enum Publication {
    enum Outcome: Equatable {
        /// The entry JSON to store in etcd.
        case publish(String)
        /// Not published, with the note the agent logs once.
        case refused(String)
    }

    /// A local live entry as the other machines should see it: only `"scope": "cluster"`
    /// entries; without `headers` (secrets stay on the machine); a loopback host in the URL
    /// replaced by `advertise` — or, with no `--advertise`, refused, since nobody elsewhere could
    /// reach it. `stdio` servers cannot be reached from another machine at all.
    static func outcome(_ entry: ServerEntry, advertise: String?) -> Outcome? {
        guard entry.scope == .cluster else { return nil }
        var e = entry
        e.headers = nil
        guard let url = e.url, e.transport != .stdio else {
            return .refused("entry \"\(entry.id)\" is a stdio server: it cannot be reached from another machine, so it is not published")
        }
        guard let parts = URLHost(url) else {
            return .refused("entry \"\(entry.id)\": its URL \(url.prefix(200)) names no host, so it is not published")
        }
        if parts.isLoopback {
            guard let advertise else {
                return .refused("entry \"\(entry.id)\" listens on loopback (\(url.prefix(200))): other machines cannot reach it; start the agent with --advertise HOST to publish it as that host, or register a reachable URL")
            }
            e.url = parts.replacingHost(with: advertise)
        }
        return .publish(e.jsonText)
    }
}

/// The host part of a `scheme://[user@]host[:port][/...]` URL.
struct URLHost {
    let prefix: Substring   // "scheme://user@"
    let host: Substring     // "127.0.0.1", "[::1]", "localhost"
    let suffix: Substring   // ":8080/mcp"

    init?(_ url: String) {
        guard let colon = url.firstIndex(of: ":") else { return nil }
        let rest = url[url.index(after: colon)...]
        guard rest.hasPrefix("//") else { return nil }
        let afterScheme = rest.dropFirst(2)
        let delimiters: Set<Character> = ["/", "?", "#"]
        let authorityEnd: Substring.Index = afterScheme.firstIndex(where: { delimiters.contains($0) }) ?? afterScheme.endIndex
        let authority = afterScheme[..<authorityEnd]
        let hostStart = authority.lastIndex(of: "@").map { authority.index(after: $0) } ?? authority.startIndex
        let hostAndPort = authority[hostStart...]
        let hostEnd: Substring.Index
        if hostAndPort.first == "[" {
            guard let close = hostAndPort.firstIndex(of: "]") else { return nil }
            hostEnd = hostAndPort.index(after: close)
        } else {
            hostEnd = hostAndPort.firstIndex(of: ":") ?? hostAndPort.endIndex
        }
        host = hostAndPort[..<hostEnd]
        guard !host.isEmpty else { return nil }
        prefix = url[..<hostStart]
        suffix = url[hostEnd...]
    }

    /// localhost, 127.0.0.0/8, ::1, and the wildcard addresses a server binds to listen everywhere.
    var isLoopback: Bool {
        let h = host.lowercased()
        if h == "localhost" || h.hasSuffix(".localhost") || h == "[::1]" || h == "0.0.0.0" || h == "[::]" { return true }
        let octets = h.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    func replacingHost(with newHost: String) -> String {
        let bracketed = newHost.contains(":") && !newHost.hasPrefix("[") ? "[\(newHost)]" : newHost
        return String(prefix) + bracketed + String(suffix)
    }
}
