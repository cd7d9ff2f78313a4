#if canImport(Glibc)
import Glibc
#endif

/// What one active check of a server found.
struct ProbeOutcome: Sendable {
    var reachable: Bool
    var message: String
}

/// Blocking network checks with a deadline, without Foundation: a TCP connect for `ws`, an HTTP
/// request carrying an MCP `ping` for `http`/`sse`. Every call is bounded by `timeoutMillis`.
enum Prober {
    struct Target {
        var scheme: String
        var host: String
        var port: Int
        var path: String
    }

    /// Splits `scheme://host:port/path?query` (IPv6 hosts in brackets). Nil if unusable.
    static func target(for url: String) -> Target? {
        guard let scheme = ServerEntry.scheme(of: url), let port = ServerEntry.port(fromURL: url),
              let colon = url.firstIndex(of: ":"), url[colon...].hasPrefix("://")
        else { return nil }
        let rest = url[url.index(colon, offsetBy: 3)...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        var path = String(rest[authorityEnd...])
        if let hash = path.firstIndex(of: "#") { path = String(path[..<hash]) }
        if path.isEmpty || path.first == "?" { path = "/" + path }
        var hostPort = rest[..<authorityEnd]
        if let at = hostPort.lastIndex(of: "@") { hostPort = hostPort[hostPort.index(after: at)...] }
        let host: Substring
        if hostPort.first == "[", let close = hostPort.firstIndex(of: "]") {
            host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
        } else if let c = hostPort.lastIndex(of: ":") {
            host = hostPort[..<c]
        } else {
            host = hostPort
        }
        guard !host.isEmpty else { return nil }
        return Target(scheme: scheme, host: String(host), port: port, path: path)
    }

    static func probe(_ entry: ServerEntry, timeoutMillis: Int) -> ProbeOutcome {
        let transport = entry.transport ?? entry.url.flatMap(ServerEntry.transport(fromURL:)) ?? .http
        if transport == .stdio {
            return ProbeOutcome(reachable: true, message: "stdio server: alive by its liveness, nothing to probe")
        }
        guard let url = entry.url, let target = target(for: url) else {
            return ProbeOutcome(reachable: false, message: "no probe-able URL")
        }
        if target.scheme == "https" || target.scheme == "wss" {
            // No TLS in the core: reachability of the port is what can be checked.
            return tcpOnly(target, timeoutMillis: timeoutMillis)
        }
        switch transport {
        case .ws, .stdio: return tcpOnly(target, timeoutMillis: timeoutMillis)
        case .http, .sse: return httpPing(target, timeoutMillis: timeoutMillis)
        }
    }

    private static func tcpOnly(_ t: Target, timeoutMillis: Int) -> ProbeOutcome {
        let deadline = Sys.monotonicMicros() / 1000 + Int64(timeoutMillis)
        switch connect(t, deadline: deadline, timeoutMillis: timeoutMillis) {
        case .success(let fd):
            Glibc.close(fd)
            return ProbeOutcome(reachable: true, message: "TCP connect to \(t.host):\(t.port) ok")
        case .failure(let why):
            return ProbeOutcome(reachable: false, message: why.description)
        }
    }

    /// POSTs a JSON-RPC `ping` to the MCP endpoint. An HTTP answer below 500 means the server is
    /// up (a 4xx means it wants a session or another method, but it answered); a JSON-RPC result
    /// means it speaks MCP.
    private static func httpPing(_ t: Target, timeoutMillis: Int) -> ProbeOutcome {
        let deadline = Sys.monotonicMicros() / 1000 + Int64(timeoutMillis)
        let fd: Int32
        switch connect(t, deadline: deadline, timeoutMillis: timeoutMillis) {
        case .success(let f): fd = f
        case .failure(let why): return ProbeOutcome(reachable: false, message: why.description)
        }
        defer { Glibc.close(fd) }
        let body = #"{"jsonrpc":"2.0","id":"peer-registry-probe","method":"ping"}"#
        let hostHeader = t.host.contains(":") ? "[\(t.host)]:\(t.port)" : "\(t.host):\(t.port)"
        let request = "POST \(t.path) HTTP/1.1\r\nHost: \(hostHeader)\r\nUser-Agent: peer-registry-probe\r\n"
            + "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
        var bytes = Array(request.utf8)
        var sent = 0
        while sent < bytes.count {
            guard wait(fd, events: Int16(POLLOUT), deadline: deadline) else {
                return ProbeOutcome(reachable: false, message: "timed out sending the ping after \(timeoutMillis) ms")
            }
            let n = bytes.withUnsafeMutableBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                return ProbeOutcome(reachable: false, message: "send failed: \(Sys.errnoMessage())")
            }
            sent += n
        }
        bytes = []
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while response.count < 65536 {
            if let status = statusLine(response), let end = headerEnd(response) {
                let text = String(decoding: response[end...], as: UTF8.self)
                if status >= 500 { return ProbeOutcome(reachable: false, message: "HTTP \(status) to an MCP ping") }
                if text.contains("\"result\"") { return ProbeOutcome(reachable: true, message: "MCP ping ok (HTTP \(status))") }
                if status >= 400 || text.contains("\"error\"") { return ProbeOutcome(reachable: true, message: "reachable (HTTP \(status) to an MCP ping)") }
            }
            guard wait(fd, events: Int16(POLLIN), deadline: deadline) else {
                if let status = statusLine(response) { return ProbeOutcome(reachable: status < 500, message: "HTTP \(status), no MCP ping result in time") }
                return ProbeOutcome(reachable: false, message: "no HTTP answer within \(timeoutMillis) ms")
            }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                return ProbeOutcome(reachable: false, message: "recv failed: \(Sys.errnoMessage())")
            }
            if n == 0 { break }
            response.append(contentsOf: chunk[0..<n])
        }
        if let status = statusLine(response) {
            return ProbeOutcome(reachable: status < 500, message: "HTTP \(status) to an MCP ping")
        }
        return ProbeOutcome(reachable: false, message: "the connection closed without an HTTP answer")
    }

    private static func statusLine(_ r: [UInt8]) -> Int? {
        guard r.count >= 12, r.starts(with: Array("HTTP/1.".utf8)) else { return nil }
        return Int(String(decoding: r[9..<12], as: UTF8.self))
    }

    private static func headerEnd(_ r: [UInt8]) -> Int? {
        guard r.count >= 4 else { return nil }
        for i in 0...(r.count - 4) where r[i] == 13 && r[i + 1] == 10 && r[i + 2] == 13 && r[i + 3] == 10 { return i + 4 }
        return nil
    }

    /// Polls `fd` until `events` or the deadline. True when ready.
    private static func wait(_ fd: Int32, events: Int16, deadline: Int64) -> Bool {
        while true {
            let left = deadline - Sys.monotonicMicros() / 1000
            if left <= 0 { return false }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let n = poll(&p, 1, Int32(clamping: left))
            if n > 0 { return true }
            if n == 0 { return false }
            if errno != EINTR { return false }
        }
    }

    /// A non-blocking connect to the first address of `t` that answers before the deadline.
    private static func connect(_ t: Target, deadline: Int64, timeoutMillis: Int) -> Result<Int32, ProbeFailure> {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(t.host, String(t.port), &hints, &list)
        guard rc == 0, let first = list else {
            return .failure(ProbeFailure("cannot resolve \(t.host): \(String(cString: gai_strerror(rc)))"))
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address for \(t.host)"
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let ai = cursor {
            cursor = ai.pointee.ai_next
            let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), ai.pointee.ai_protocol)
            guard fd >= 0 else { lastError = "socket failed: \(Sys.errnoMessage())"; continue }
            if Glibc.connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 { return .success(fd) }
            guard errno == EINPROGRESS else {
                lastError = "connect to \(t.host):\(t.port) failed: \(Sys.errnoMessage())"
                Glibc.close(fd)
                continue
            }
            guard wait(fd, events: Int16(POLLOUT), deadline: deadline) else {
                lastError = "connect to \(t.host):\(t.port) timed out after \(timeoutMillis) ms"
                Glibc.close(fd)
                continue
            }
            var soError: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len)
            if soError == 0 { return .success(fd) }
            lastError = "connect to \(t.host):\(t.port) failed: \(Sys.errnoMessage(soError))"
            Glibc.close(fd)
        }
        return .failure(ProbeFailure(lastError))
    }

    struct ProbeFailure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }
}
