#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// What one active check of a server found.
struct ProbeOutcome: Sendable {
    var reachable: Bool
    var message: String
}

/// Blocking network checks with one deadline for the whole check, without Foundation:
/// - `http`: the MCP streamable HTTP handshake — POST `initialize`, POST
///   `notifications/initialized`, POST `ping` (carrying the `Mcp-Session-Id` the server gave
///   and the negotiated `MCP-Protocol-Version`), then DELETE of the session;
/// - `sse`: the legacy HTTP+SSE flow — GET the event stream, read its `endpoint` event, POST
///   `initialize`, `notifications/initialized` and `ping` there, read the answers from the stream;
/// - `ws`, `https`, `wss`: a TCP connect (no WebSocket or TLS in the core).
/// A server is reachable only when `initialize` and `ping` both come back as correct JSON-RPC
/// results; an HTTP error, an error object, garbage or silence is a failure that says what was
/// seen. Name lookups run on a helper thread so that they, too, end at the deadline.
enum Prober {
    struct Target {
        var scheme: String
        var host: String
        var port: Int
        var path: String
    }

    /// `url` as URLParts reads it (`scheme://host:port/path?query`, IPv6 hosts in brackets), the
    /// port defaulted by scheme and the fragment dropped. Nil if it names no host and port.
    static func target(for url: String) -> Target? {
        guard case .success(let parts) = URLParts.parse(url), !parts.host.isEmpty, let port = parts.port else { return nil }
        var path = parts.path
        if let hash = path.firstIndex(of: "#") { path = String(path[..<hash]) }
        if path.isEmpty || path.first == "?" { path = "/" + path }
        return Target(scheme: parts.scheme, host: parts.host, port: port, path: path)
    }

    static func probe(_ entry: ServerEntry, timeoutMillis: Int) -> ProbeOutcome {
        let transport = entry.transport ?? entry.url.flatMap(ServerEntry.transport(fromURL:)) ?? .http
        guard let url = entry.url else {
            if transport == .stdio {
                return ProbeOutcome(reachable: true, message: "stdio server: alive by its liveness, nothing to probe")
            }
            return ProbeOutcome(reachable: false, message: "no probe-able URL")
        }
        // The entry's own headers (e.g. Authorization) go with every request, in a stable order.
        let headers = (entry.headers ?? [:]).sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        return probe(url: url, transport: transport, headers: headers, timeoutMillis: timeoutMillis)
    }

    /// The check for `url` by `transport`, sending `headers` (e.g. `Authorization`) with every
    /// HTTP request. Never longer than `timeoutMillis` (name lookup included).
    static func probe(url: String, transport: Transport, headers: [(String, String)], timeoutMillis: Int) -> ProbeOutcome {
        if transport == .stdio {
            return ProbeOutcome(reachable: true, message: "stdio server: alive by its liveness, nothing to probe")
        }
        guard let target = target(for: url) else {
            return ProbeOutcome(reachable: false, message: "no probe-able URL")
        }
        let deadline = Deadline(timeoutMillis: timeoutMillis)
        if let bad = headers.first(where: { !isToken($0.0) || !isHeaderValue($0.1) }) {
            return ProbeOutcome(reachable: false, message: "header \"\(bad.0.prefix(40))\" cannot be sent in HTTP (not a token, or CR/LF/NUL in its value)")
        }
        let result: Result<String, ProbeFailure>
        if target.scheme == "https" || target.scheme == "wss" {
            // No TLS in the core: reachability of the port is what can be checked.
            result = tcpOnly(target, deadline: deadline)
        } else {
            switch transport {
            case .ws, .stdio: result = tcpOnly(target, deadline: deadline)
            case .http: result = streamableHTTP(target, headers: headers, deadline: deadline)
            case .sse: result = legacySSE(target, headers: headers, deadline: deadline)
            }
        }
        switch result {
        case .success(let message): return ProbeOutcome(reachable: true, message: message)
        case .failure(let why): return ProbeOutcome(reachable: false, message: why.description)
        }
    }

    // MARK: - The checks

    private static func tcpOnly(_ t: Target, deadline: Deadline) -> Result<String, ProbeFailure> {
        switch connect(t, deadline: deadline) {
        case .success(let conn):
            conn.close()
            return .success("TCP connect to \(t.host):\(t.port) ok (\(t.scheme): no protocol check in the core)")
        case .failure(let why):
            return .failure(why)
        }
    }

    static let protocolVersion = "2025-06-18"
    private static let initializeID = "peer-registry-probe-init"
    private static let pingID = "peer-registry-probe-ping"
    private static let initializeBody = #"{"jsonrpc":"2.0","id":"\#(initializeID)","method":"initialize","params":{"protocolVersion":"\#(protocolVersion)","capabilities":{},"clientInfo":{"name":"peer-registry-probe","version":"\#(PeerRegistryVersion.text)"}}}"#
    private static let initializedBody = #"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
    private static let pingBody = #"{"jsonrpc":"2.0","id":"\#(pingID)","method":"ping"}"#

    /// MCP streamable HTTP (2025-03-26 and later).
    private static func streamableHTTP(_ t: Target, headers: [(String, String)], deadline whole: Deadline) -> Result<String, ProbeFailure> {
        // Once the server has handed out a session, the last fifth of the time (at most 250 ms)
        // is kept for deleting it, so a server that hangs mid-handshake still gets it closed.
        let reserved = whole.earlier(by: min(250, Int64(whole.timeoutMillis / 5)))
        var deadline = whole
        let postHeaders = headers + [("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream")]
        // 1. initialize
        let initialized: (session: String?, version: String)
        switch post(t, path: t.path, headers: postHeaders, body: initializeBody, deadline: whole, step: "initialize") {
        case .failure(let why): return .failure(why)
        case .success(let (response, conn)):
            defer { conn.close() }
            let session = response.header("mcp-session-id")
            if session != nil { deadline = reserved }
            guard response.status == 200 else {
                if let session { deleteSession(t, session: session, headers: headers, deadline: whole) }
                return .failure(response.failure("initialize", conn: conn, deadline: deadline))
            }
            switch readResult(response, conn: conn, id: initializeID, deadline: deadline, step: "initialize") {
            case .failure(let why):
                if let session { deleteSession(t, session: session, headers: headers, deadline: whole) }
                return .failure(why)
            case .success(let result):
                guard let version = result["protocolVersion"]?.stringValue, !version.isEmpty else {
                    if let session { deleteSession(t, session: session, headers: headers, deadline: whole) }
                    return .failure(ProbeFailure("the initialize result has no protocolVersion: not an MCP server"))
                }
                initialized = (session, version)
            }
        }
        var sessionHeaders = postHeaders + [("MCP-Protocol-Version", initialized.version)]
        if let session = initialized.session { sessionHeaders.append(("Mcp-Session-Id", session)) }
        defer {
            if let session = initialized.session { deleteSession(t, session: session, headers: headers + [("MCP-Protocol-Version", initialized.version)], deadline: whole) }
        }
        // 2. notifications/initialized: any 2xx (202 Accepted, as the spec says).
        switch post(t, path: t.path, headers: sessionHeaders, body: initializedBody, deadline: deadline, step: "notifications/initialized") {
        case .failure(let why): return .failure(why)
        case .success(let (response, conn)):
            defer { conn.close() }
            guard (200..<300).contains(response.status) else {
                return .failure(response.failure("notifications/initialized", conn: conn, deadline: deadline))
            }
        }
        // 3. ping
        switch post(t, path: t.path, headers: sessionHeaders, body: pingBody, deadline: deadline, step: "ping") {
        case .failure(let why): return .failure(why)
        case .success(let (response, conn)):
            defer { conn.close() }
            guard response.status == 200 else { return .failure(response.failure("ping", conn: conn, deadline: deadline)) }
            if case .failure(let why) = readResult(response, conn: conn, id: pingID, deadline: deadline, step: "ping") {
                return .failure(why)
            }
        }
        let session = initialized.session == nil ? "stateless" : "session deleted after"
        return .success("MCP ping ok after initialize (protocol \(initialized.version), \(session))")
    }

    /// Ends the session the probe opened (best effort, within what is left of the deadline).
    private static func deleteSession(_ t: Target, session: String, headers: [(String, String)], deadline: Deadline) {
        guard case .success(let conn) = connect(t, deadline: deadline) else { return }
        defer { conn.close() }
        let request = requestText(method: "DELETE", target: t, path: t.path, headers: headers + [("Mcp-Session-Id", session)], body: nil)
        guard conn.sendAll(request, deadline: deadline) == nil else { return }
        _ = HTTPResponse.read(conn, deadline: deadline)  // the answer (200, or 405 if not allowed) is not judged
    }

    /// The legacy HTTP+SSE transport (MCP 2024-11-05).
    private static func legacySSE(_ t: Target, headers: [(String, String)], deadline: Deadline) -> Result<String, ProbeFailure> {
        let stream: Connection
        let streamResponse: HTTPResponse
        switch connect(t, deadline: deadline) {
        case .failure(let why): return .failure(why)
        case .success(let c): stream = c
        }
        defer { stream.close() }  // closing the stream ends the legacy session
        let get = requestText(method: "GET", target: t, path: t.path, headers: headers + [("Accept", "text/event-stream")], body: nil)
        if let why = stream.sendAll(get, deadline: deadline) { return .failure(why.prefixed("GET of the SSE stream")) }
        switch HTTPResponse.read(stream, deadline: deadline) {
        case .failure(let why): return .failure(why.prefixed("GET of the SSE stream"))
        case .success(let r): streamResponse = r
        }
        guard streamResponse.status == 200 else { return .failure(streamResponse.failure("GET of the SSE stream", conn: stream, deadline: deadline)) }
        guard streamResponse.isEventStream else {
            return .failure(ProbeFailure("GET of the SSE stream answered HTTP 200 with Content-Type \"\(streamResponse.header("content-type") ?? "none")\", not text/event-stream"))
        }
        var events = SSEReader(response: streamResponse, conn: stream)
        // The first event names where to POST.
        var endpoint: String?
        while endpoint == nil {
            switch events.next(deadline: deadline) {
            case .failure(let why): return .failure(why.prefixed("waiting for the endpoint event"))
            case .success(let event) where event.type == "endpoint": endpoint = event.data.trimmingCharacters(in: " \r\n\t")
            case .success: continue
            }
        }
        guard let endpoint, let messages = postTarget(endpoint, base: t) else {
            return .failure(ProbeFailure("the endpoint event \"\(endpoint?.prefix(80) ?? "")\" is not a usable URL"))
        }
        let postHeaders = headers + [("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream")]
        var version = protocolVersion
        let steps: [(String, String, String?)] = [("initialize", initializeBody, initializeID), ("notifications/initialized", initializedBody, nil), ("ping", pingBody, pingID)]
        for (step, body, id) in steps {
            switch post(messages, path: messages.path, headers: postHeaders, body: body, deadline: deadline, step: step) {
            case .failure(let why): return .failure(why)
            case .success(let (response, conn)):
                conn.close()
                guard (200..<300).contains(response.status) else { return .failure(response.failure(step, conn: conn, deadline: deadline)) }
            }
            guard let id else { continue }
            // The answer arrives on the stream, possibly after other messages.
            while true {
                switch events.next(deadline: deadline) {
                case .failure(let why): return .failure(why.prefixed("waiting for the \(step) answer on the SSE stream"))
                case .success(let event):
                    guard event.type == "message" else { continue }
                    switch judge(event.data, id: id, step: step) {
                    case .none: continue
                    case .some(.failure(let why)): return .failure(why)
                    case .some(.success(let result)):
                        if step == "initialize" {
                            guard let v = result["protocolVersion"]?.stringValue, !v.isEmpty else {
                                return .failure(ProbeFailure("the initialize result has no protocolVersion: not an MCP server"))
                            }
                            version = v
                        }
                    }
                }
                break
            }
        }
        return .success("MCP ping ok over SSE after initialize (protocol \(version))")
    }

    /// Where the legacy endpoint event points: an absolute http URL, an absolute path, or a path
    /// relative to the stream's.
    private static func postTarget(_ endpoint: String, base: Target) -> Target? {
        if endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://") {
            guard let t = target(for: endpoint), t.scheme == "http" else { return nil }
            return t
        }
        guard !endpoint.isEmpty, !endpoint.contains(where: { $0 == "\r" || $0 == "\n" || $0 == " " }) else { return nil }
        var t = base
        if endpoint.hasPrefix("/") {
            t.path = endpoint
        } else {
            let dir = base.path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? "/"
            let parent = dir.lastIndex(of: "/").map { String(dir[...$0]) } ?? "/"
            t.path = parent + endpoint
        }
        return t
    }

    // MARK: - JSON-RPC

    /// Reads the JSON-RPC answer to request `id` from a JSON body or an event stream and
    /// returns its `result` object.
    private static func readResult(_ response: HTTPResponse, conn: Connection, id: String, deadline: Deadline, step: String) -> Result<JSONObject, ProbeFailure> {
        if response.isEventStream {
            var events = SSEReader(response: response, conn: conn)
            while true {
                switch events.next(deadline: deadline) {
                case .failure(let why): return .failure(why.prefixed("reading the \(step) answer"))
                case .success(let event):
                    guard event.type == "message" else { continue }
                    if let verdict = judge(event.data, id: id, step: step) { return verdict }
                }
            }
        }
        var body = BodyReader(response: response, conn: conn)
        switch body.readAll(limit: maxBody, deadline: deadline) {
        case .failure(let why): return .failure(why.prefixed("reading the \(step) answer"))
        case .success(let bytes):
            let text = String(decoding: bytes, as: UTF8.self)
            return judge(text, id: id, step: step)
                ?? .failure(ProbeFailure("the \(step) answer is not a JSON-RPC response to it: \(excerpt(bytes))"))
        }
    }

    /// Nil when `text` is a JSON-RPC message about something else (the caller reads on); else
    /// the `result` object of the response to `id`, or why it is not a correct one.
    private static func judge(_ text: String, id: String, step: String) -> Result<JSONObject, ProbeFailure>? {
        let bytes = Array(text.utf8)
        guard let value = parseJSON(bytes) else {
            return .failure(ProbeFailure("the \(step) answer is not JSON: \(excerpt(bytes))"))
        }
        let messages = value.arrayValue ?? [value]
        for message in messages {
            guard let object = message.objectValue else {
                return .failure(ProbeFailure("the \(step) answer is not a JSON-RPC object: \(excerpt(bytes))"))
            }
            guard object["id"]?.stringValue == id else { continue }
            guard object["jsonrpc"]?.stringValue == "2.0" else {
                return .failure(ProbeFailure("the \(step) answer is not JSON-RPC 2.0: \(excerpt(bytes))"))
            }
            if let error = object["error"]?.objectValue {
                let code = error["code"]?.int64Value.map(String.init) ?? "?"
                let text = error["message"]?.stringValue ?? ""
                return .failure(ProbeFailure("\(step) answered JSON-RPC error \(code): \(text.prefix(160))"))
            }
            guard let result = object["result"]?.objectValue else {
                return .failure(ProbeFailure("the \(step) answer has no result object: \(excerpt(bytes))"))
            }
            return .success(result)
        }
        return nil
    }

    private static func parseJSON(_ bytes: [UInt8]) -> JSONValue? {
        bytes.withUnsafeBufferPointer { buffer -> JSONValue? in
            do { return try JSONParser.parse(buffer, maxDepth: 64) } catch { return nil }
        }
    }

    static func excerpt(_ bytes: some Collection<UInt8>) -> String {
        let shown = bytes.prefix(120).map { $0 >= 0x20 && $0 < 0x7F ? String(UnicodeScalar($0)) : "·" }.joined()
        return bytes.isEmpty ? "(empty)" : "\"\(shown)\"" + (bytes.count > 120 ? "…" : "")
    }

    // MARK: - HTTP/1.1, one request per connection

    /// The most of a response body (or of an event stream) the probe reads.
    static let maxBody = 1 << 20

    private static func post(_ t: Target, path: String, headers: [(String, String)], body: String, deadline: Deadline, step: String) -> Result<(HTTPResponse, Connection), ProbeFailure> {
        let conn: Connection
        switch connect(t, deadline: deadline) {
        case .failure(let why): return .failure(why.prefixed(step))
        case .success(let c): conn = c
        }
        let request = requestText(method: "POST", target: t, path: path, headers: headers, body: body)
        if let why = conn.sendAll(request, deadline: deadline) {
            conn.close()
            return .failure(why.prefixed(step))
        }
        switch HTTPResponse.read(conn, deadline: deadline) {
        case .failure(let why):
            conn.close()
            return .failure(why.prefixed(step))
        case .success(let response):
            return .success((response, conn))
        }
    }

    private static let reservedHeaders: Set<String> = ["host", "content-length", "connection", "transfer-encoding", "user-agent"]

    private static func requestText(method: String, target t: Target, path: String, headers: [(String, String)], body: String?) -> [UInt8] {
        let host = t.host.contains(":") ? "[\(t.host)]" : t.host
        var text = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(t.port)\r\nUser-Agent: peer-registry-probe\r\nConnection: close\r\n"
        // Each name once; a later value wins (the probe's own come after the entry's).
        var seen = Set<String>()
        var lines: [String] = []
        for (name, value) in headers.reversed() {
            let lower = name.lowercased()
            guard !reservedHeaders.contains(lower), seen.insert(lower).inserted else { continue }
            lines.append("\(name): \(value)\r\n")
        }
        text += lines.reversed().joined()
        if let body {
            text += "Content-Length: \(body.utf8.count)\r\n\r\n" + body
        } else {
            text += "\r\n"
        }
        return Array(text.utf8)
    }

    private static func isToken(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 256 && s.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || "!#$%&'*+-.^_`|~".utf8.contains(b)
        }
    }

    private static func isHeaderValue(_ s: String) -> Bool {
        s.utf8.count <= 8192 && s.utf8.allSatisfy { $0 != 0 && $0 != 0x0D && $0 != 0x0A }
    }

    // MARK: - Sockets

    struct Deadline {
        let atMillis: Int64
        let timeoutMillis: Int
        init(timeoutMillis: Int) {
            self.timeoutMillis = timeoutMillis
            atMillis = Sys.monotonicMicros() / 1000 + Int64(timeoutMillis)
        }
        private init(atMillis: Int64, timeoutMillis: Int) {
            self.atMillis = atMillis
            self.timeoutMillis = timeoutMillis
        }
        /// The same deadline, `millis` earlier (messages still name the whole timeout).
        func earlier(by millis: Int64) -> Deadline { Deadline(atMillis: atMillis - millis, timeoutMillis: timeoutMillis) }
        var leftMillis: Int64 { atMillis - Sys.monotonicMicros() / 1000 }
    }

    /// One TCP connection with the bytes received but not yet consumed.
    final class Connection {
        let fd: Int32
        var buffer: [UInt8] = []
        var eof = false
        private var closed = false
        init(fd: Int32) { self.fd = fd }
        deinit { close() }

        func close() {
            if !closed { closed = true; _ = Glibc.close(fd) }
        }

        func sendAll(_ bytes: [UInt8], deadline: Deadline) -> ProbeFailure? {
            var sent = 0
            while sent < bytes.count {
                guard Prober.wait(fd, events: Int16(POLLOUT), deadline: deadline) else {
                    return ProbeFailure("timed out sending after \(deadline.timeoutMillis) ms")
                }
                let n = bytes.withUnsafeBytes { raw -> Int in
                    guard let base = raw.baseAddress else { return 0 }
                    return send(fd, base + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                }
                if n < 0 {
                    if errno == EAGAIN || errno == EINTR { continue }
                    return ProbeFailure("send failed: \(Sys.errnoMessage())")
                }
                sent += n
            }
            return nil
        }

        /// Receives more bytes into `buffer`; false (with `eof` set) when the peer closed.
        func fill(deadline: Deadline, waiting what: @autoclosure () -> String) -> Result<Bool, ProbeFailure> {
            var chunk = [UInt8](repeating: 0, count: 16384)
            while true {
                guard Prober.wait(fd, events: Int16(POLLIN), deadline: deadline) else {
                    return .failure(ProbeFailure("no \(what()) within \(deadline.timeoutMillis) ms"))
                }
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n < 0 {
                    if errno == EAGAIN || errno == EINTR { continue }
                    return .failure(ProbeFailure("recv failed: \(Sys.errnoMessage())"))
                }
                if n == 0 { eof = true; return .success(false) }
                buffer.append(contentsOf: chunk[0..<n])
                return .success(true)
            }
        }
    }

    struct HTTPResponse {
        var status: Int
        var headers: [(String, String)]  // names lowercased

        func header(_ name: String) -> String? { headers.first { $0.0 == name }?.1 }

        var isEventStream: Bool {
            header("content-type")?.lowercased().hasPrefix("text/event-stream") ?? false
        }

        /// Reads the status line and headers; the body stays in `conn.buffer`.
        static func read(_ conn: Connection, deadline: Deadline) -> Result<HTTPResponse, ProbeFailure> {
            while true {
                if let end = headEnd(conn.buffer) {
                    let head = String(decoding: conn.buffer[..<end], as: UTF8.self)
                    conn.buffer.removeFirst(end + 4)
                    let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
                    guard let first = lines.first, first.hasPrefix("HTTP/1."), first.count >= 12,
                          let status = Int(first.dropFirst(9).prefix(3)), (100...599).contains(status)
                    else { return .failure(ProbeFailure("not an HTTP answer: \(excerpt(Array(head.utf8)))")) }
                    var headers: [(String, String)] = []
                    for line in lines.dropFirst() {
                        guard let colon = line.firstIndex(of: ":") else { continue }
                        headers.append((line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: " \t")))
                    }
                    if (100..<200).contains(status) { continue }  // 100 Continue and friends
                    return .success(HTTPResponse(status: status, headers: headers))
                }
                if conn.buffer.count > 65536 { return .failure(ProbeFailure("an HTTP header larger than 64 KiB")) }
                switch conn.fill(deadline: deadline, waiting: "HTTP answer") {
                case .failure(let why): return .failure(why)
                case .success(true): continue
                case .success(false):
                    if conn.buffer.isEmpty { return .failure(ProbeFailure("the connection closed without an HTTP answer")) }
                    return .failure(ProbeFailure("the connection closed inside the HTTP header: \(excerpt(conn.buffer))"))
                }
            }
        }

        private static func headEnd(_ r: [UInt8]) -> Int? {
            guard r.count >= 4 else { return nil }
            for i in 0...(r.count - 4) where r[i] == 13 && r[i + 1] == 10 && r[i + 2] == 13 && r[i + 3] == 10 { return i }
            return nil
        }

        /// Why an answer with this status fails `step`, with an excerpt of its body.
        func failure(_ step: String, conn: Connection, deadline: Deadline) -> ProbeFailure {
            var body = BodyReader(response: self, conn: conn)
            // A short look only: the verdict is the status; the body helps a person see why.
            let shortDeadline = Deadline(timeoutMillis: Int(max(0, min(deadline.leftMillis, 200))))
            let bytes = (try? body.readAll(limit: 4096, deadline: shortDeadline).get()) ?? []
            return ProbeFailure("HTTP \(status) to \(step)" + (bytes.isEmpty ? "" : ": \(excerpt(bytes))"))
        }
    }

    /// The decoded body of a response: by Content-Length, chunked, or up to the close.
    struct BodyReader {
        enum Framing { case length(Int), chunked, untilClose }
        let conn: Connection
        var framing: Framing
        var chunkLeft = 0
        var done = false
        var total = 0

        init(response: HTTPResponse, conn: Connection) {
            self.conn = conn
            if response.header("transfer-encoding")?.lowercased().contains("chunked") == true {
                framing = .chunked
            } else if let length = response.header("content-length").flatMap({ Int($0) }), length >= 0 {
                framing = .length(length)
                done = length == 0
            } else {
                framing = response.status == 204 || response.status == 304 ? .length(0) : .untilClose
                if case .length = framing { done = true }
            }
        }

        /// The next decoded bytes (empty: the body ended).
        mutating func next(deadline: Deadline) -> Result<[UInt8], ProbeFailure> {
            while !done {
                switch framing {
                case .length(let left):
                    if !conn.buffer.isEmpty {
                        let n = min(left, conn.buffer.count)
                        let out = Array(conn.buffer.prefix(n))
                        conn.buffer.removeFirst(n)
                        framing = .length(left - n)
                        done = left - n == 0
                        return .success(out)
                    }
                case .untilClose:
                    if !conn.buffer.isEmpty {
                        defer { conn.buffer.removeAll(keepingCapacity: true) }
                        return .success(conn.buffer)
                    }
                    if conn.eof { done = true; continue }
                case .chunked:
                    if chunkLeft > 0 {
                        if !conn.buffer.isEmpty {
                            let n = min(chunkLeft, conn.buffer.count)
                            let out = Array(conn.buffer.prefix(n))
                            conn.buffer.removeFirst(n)
                            chunkLeft -= n
                            if chunkLeft == 0 { chunkLeft = -2 }  // then its CRLF
                            return .success(out)
                        }
                    } else if let lineEnd = crlf(conn.buffer) {
                        let line = String(decoding: conn.buffer[..<lineEnd], as: UTF8.self)
                        conn.buffer.removeFirst(lineEnd + 2)
                        if chunkLeft == -2 {
                            guard line.isEmpty else { return .failure(ProbeFailure("malformed chunked encoding")) }
                            chunkLeft = 0
                            continue
                        }
                        let hex = line.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: " \t") } ?? ""
                        guard let size = Int(hex, radix: 16), size >= 0, size <= Prober.maxBody else {
                            return .failure(ProbeFailure("malformed chunked encoding: \(excerpt(Array(line.utf8)))"))
                        }
                        if size == 0 { done = true; continue }  // trailers are not read
                        chunkLeft = size
                        continue
                    }
                }
                if conn.eof {
                    if case .untilClose = framing { done = true; continue }
                    return .failure(ProbeFailure("the connection closed inside the HTTP body"))
                }
                switch conn.fill(deadline: deadline, waiting: "complete answer") {
                case .failure(let why): return .failure(why)
                case .success: continue
                }
            }
            return .success([])
        }

        mutating func readAll(limit: Int, deadline: Deadline) -> Result<[UInt8], ProbeFailure> {
            var out: [UInt8] = []
            while true {
                switch next(deadline: deadline) {
                case .failure(let why): return .failure(why)
                case .success(let bytes):
                    if bytes.isEmpty { return .success(out) }
                    out += bytes
                    if out.count > limit { return .success(Array(out.prefix(limit))) }
                }
            }
        }

        private func crlf(_ r: [UInt8]) -> Int? {
            guard r.count >= 2 else { return nil }
            for i in 0...(r.count - 2) where r[i] == 13 && r[i + 1] == 10 { return i }
            return nil
        }
    }

    /// Server-sent events from a response body (the WHATWG event-stream format).
    struct SSEReader {
        struct Event { var type: String; var data: String }
        var body: BodyReader
        var pending: [UInt8] = []
        var read = 0

        init(response: HTTPResponse, conn: Connection) {
            body = BodyReader(response: response, conn: conn)
        }

        mutating func next(deadline: Deadline) -> Result<Event, ProbeFailure> {
            while true {
                if let (end, skip) = blankLine(pending) {
                    let block = String(decoding: pending[..<end], as: UTF8.self)
                    pending.removeFirst(end + skip)
                    var type = "message"
                    var data: [Substring] = []
                    for line in block.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) {
                        if line.hasPrefix(":") { continue }
                        let (field, value): (Substring, Substring)
                        if let colon = line.firstIndex(of: ":") {
                            field = line[..<colon]
                            var v = line[line.index(after: colon)...]
                            if v.first == " " { v = v.dropFirst() }
                            value = v
                        } else {
                            (field, value) = (line, "")
                        }
                        if field == "event" { type = String(value) } else if field == "data" { data.append(value) }
                    }
                    // As the event-stream spec says, an event with empty data is not dispatched
                    // (comments, retry:, a resumability priming event "id: x / data:").
                    let joined = data.joined(separator: "\n")
                    if joined.isEmpty { continue }
                    return .success(Event(type: type, data: joined))
                }
                guard read <= Prober.maxBody else { return .failure(ProbeFailure("more than 1 MiB of events without the answer")) }
                switch body.next(deadline: deadline) {
                case .failure(let why): return .failure(why)
                case .success(let bytes):
                    if bytes.isEmpty { return .failure(ProbeFailure("the event stream ended without the answer")) }
                    read += bytes.count
                    pending += bytes
                }
            }
        }

        /// The end of the first event block and the length of its terminating blank line.
        private func blankLine(_ r: [UInt8]) -> (Int, Int)? {
            var i = 0
            while i + 1 < r.count {
                if r[i] == 10 && r[i + 1] == 10 { return (i, 2) }
                if r[i] == 13 && r[i + 1] == 13 { return (i, 2) }
                if i + 3 < r.count, r[i] == 13, r[i + 1] == 10, r[i + 2] == 13, r[i + 3] == 10 { return (i, 4) }
                i += 1
            }
            return nil
        }
    }

    /// Polls `fd` until `events` or the deadline. True when ready.
    static func wait(_ fd: Int32, events: Int16, deadline: Deadline) -> Bool {
        while true {
            let left = deadline.leftMillis
            if left <= 0 { return false }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let n = poll(&p, 1, Int32(clamping: left))
            if n > 0 { return true }
            if n == 0 { return false }
            if errno != EINTR { return false }
        }
    }

    /// A non-blocking connect to the first address of `t` that answers before the deadline.
    private static func connect(_ t: Target, deadline: Deadline) -> Result<Connection, ProbeFailure> {
        let addresses: AddressList
        switch resolve(t, deadline: deadline) {
        case .failure(let why): return .failure(why)
        case .success(let list): addresses = list
        }
        var lastError = "no address for \(t.host)"
        var cursor: UnsafeMutablePointer<addrinfo>? = addresses.first
        while let ai = cursor {
            cursor = ai.pointee.ai_next
            let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), ai.pointee.ai_protocol)
            guard fd >= 0 else { lastError = "socket failed: \(Sys.errnoMessage())"; continue }
            if Glibc.connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 { return .success(Connection(fd: fd)) }
            guard errno == EINPROGRESS else {
                lastError = "connect to \(t.host):\(t.port) failed: \(Sys.errnoMessage())"
                Glibc.close(fd)
                continue
            }
            guard wait(fd, events: Int16(POLLOUT), deadline: deadline) else {
                lastError = "connect to \(t.host):\(t.port) timed out after \(deadline.timeoutMillis) ms"
                Glibc.close(fd)
                continue
            }
            var soError: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len)
            if soError == 0 { return .success(Connection(fd: fd)) }
            lastError = "connect to \(t.host):\(t.port) failed: \(Sys.errnoMessage(soError))"
            Glibc.close(fd)
        }
        return .failure(ProbeFailure(lastError))
    }

    // MARK: - Name lookup with a deadline

    /// A getaddrinfo result, freed when the last holder lets go.
    final class AddressList: @unchecked Sendable {
        let first: UnsafeMutablePointer<addrinfo>?
        init(_ first: UnsafeMutablePointer<addrinfo>?) { self.first = first }
        deinit { if let first { freeaddrinfo(first) } }
    }

    /// A lookup running on a helper thread: the prober waits on `readFD` (a socketpair) until the
    /// deadline and then walks away; the thread's result is freed with the last reference.
    final class Lookup: Sendable {
        struct State: @unchecked Sendable {
            var done = false
            var rc: Int32 = 0
            var list: AddressList?
        }
        let state = ForkSafeMutex(State())
        let readFD: Int32
        let writeFD: Int32
        init?() {
            var fds: [Int32] = [-1, -1]
            let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
            guard socketpair(AF_UNIX, type, 0, &fds) == 0 else { return nil }
            readFD = fds[0]
            writeFD = fds[1]
        }
        deinit {
            Glibc.close(readFD)
            Glibc.close(writeFD)
        }
    }

    private static func resolve(_ t: Target, deadline: Deadline) -> Result<AddressList, ProbeFailure> {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        let port = String(t.port)
        // A numeric host (127.0.0.1, ::1) needs no lookup: getaddrinfo returns at once.
        if isNumericHost(t.host) {
            hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST
            var list: UnsafeMutablePointer<addrinfo>?
            let rc = getaddrinfo(t.host, port, &hints, &list)
            guard rc == 0 else { return .failure(ProbeFailure("cannot use address \(t.host): \(String(cString: gai_strerror(rc)))")) }
            return .success(AddressList(list))
        }
        guard let lookup = Lookup() else { return .failure(ProbeFailure("socketpair failed: \(Sys.errnoMessage())")) }
        let host = t.host
        Sys.runOnThreadOrInline("lookup \(host)") {
            var list: UnsafeMutablePointer<addrinfo>?
            var h = addrinfo()
            h.ai_socktype = Int32(SOCK_STREAM.rawValue)
            h.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG
            let rc = getaddrinfo(host, port, &h, &list)
            let result = AddressList(rc == 0 ? list : nil)
            lookup.state.withLock { state in
                state.done = true
                state.rc = rc
                state.list = result
            }
            var one: UInt8 = 1
            _ = send(lookup.writeFD, &one, 1, Int32(MSG_NOSIGNAL))
        }
        guard wait(lookup.readFD, events: Int16(POLLIN), deadline: deadline) else {
            return .failure(ProbeFailure("looking up \(host) took longer than \(deadline.timeoutMillis) ms"))
        }
        let (done, rc, list) = lookup.state.withLock { ($0.done, $0.rc, $0.list) }
        guard done, rc == 0, let list else {
            let why = done ? String(cString: gai_strerror(rc)) : "no answer"
            return .failure(ProbeFailure("cannot resolve \(host): \(why)"))
        }
        return .success(list)
    }

    private static func isNumericHost(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    struct ProbeFailure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
        func prefixed(_ step: String) -> ProbeFailure { ProbeFailure("\(step): \(description)") }
    }
}

private extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        let drop: (Character) -> Bool = { set.contains($0) }
        guard let start = firstIndex(where: { !drop($0) }), let end = lastIndex(where: { !drop($0) }) else { return "" }
        return String(self[start...end])
    }
}
