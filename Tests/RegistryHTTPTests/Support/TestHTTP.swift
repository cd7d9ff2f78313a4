import Foundation
import Glibc
import Logging
import RegistryHTTP
import RegistryServerPolicy
import RegistryKit

/// A minimal HTTP/1.1 client over a real TCP socket. It sends exactly the headers it is given
/// (a browser's Host and Origin, a forged Host, none at all), which the higher-level clients do
/// not allow, and it reads Server-Sent Events as they arrive. Every read has a deadline.
struct TestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs blocking socket work on its own thread, so tests never block the cooperative pool the
/// server's handlers run on.
func offThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try work() }) }
        thread.start()
    }
}

final class Connection: @unchecked Sendable {
    let fd: Int32
    private var closed = false

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestError("socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            Glibc.close(fd)
            throw TestError("connect to 127.0.0.1:\(port): errno \(errno)")
        }
    }

    deinit { close() }

    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }

    func send(_ text: String) throws {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw TestError("send: errno \(errno)") }
            bytes = bytes.dropFirst(n)
        }
    }

    /// Bytes available within `timeout`: nil on timeout, empty at end of stream.
    func receive(timeout: Duration) throws -> [UInt8]? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ms = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let ready = poll(&pfd, 1, max(ms, 0))
        if ready == 0 { return nil }
        guard ready > 0 else { throw TestError("poll: errno \(errno)") }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 { return [] }  // ECONNRESET and the like: the stream is over
        return Array(buffer[0..<n])
    }
}

/// A response: status, headers (names lowercased), body text.
struct TestResponse: Sendable, CustomStringConvertible {
    var status: Int
    var headers: [(name: String, value: String)]
    var body: String

    func header(_ name: String) -> String? {
        headers.first { $0.name == name.lowercased() }?.value
    }

    /// The body parsed with RegistryKit's strict parser.
    func json() throws -> JSONObject {
        guard case .object(let o) = try JSONValue.parse(body) else { throw TestError("body is not a JSON object: \(body)") }
        return o
    }

    var description: String { "\(status) \(headers.map { "\($0.name): \($0.value)" }) \(body.prefix(500))" }
}

/// Parses a status line and headers from the front of `bytes`; nil until they are complete.
func parseHead(_ bytes: [UInt8]) throws -> (status: Int, headers: [(name: String, value: String)], rest: [UInt8])? {
    let marker: [UInt8] = [13, 10, 13, 10]
    guard let end = bytes.indices.dropLast(3).first(where: { Array(bytes[$0..<$0 + 4]) == marker }) else { return nil }
    let head = String(decoding: bytes[..<end], as: UTF8.self)
    var lines = head.components(separatedBy: "\r\n")
    let statusLine = lines.removeFirst().split(separator: " ")
    guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw TestError("bad status line in \(head)") }
    let headers = lines.compactMap { line -> (name: String, value: String)? in
        guard let colon = line.firstIndex(of: ":") else { return nil }
        return (line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
    }
    return (status, headers, Array(bytes[(end + 4)...]))
}

/// Decodes `Transfer-Encoding: chunked` incrementally.
struct ChunkedDecoder {
    private var pending: [UInt8] = []
    private(set) var finished = false

    /// Feeds raw bytes; returns the payload bytes decoded so far.
    mutating func feed(_ bytes: [UInt8]) throws -> [UInt8] {
        pending += bytes
        var out: [UInt8] = []
        while !finished {
            guard let lineEnd = pending.indices.dropLast().first(where: { pending[$0] == 13 && pending[$0 + 1] == 10 }) else { break }
            let sizeText = String(decoding: pending[..<lineEnd], as: UTF8.self).split(separator: ";").first.map(String.init) ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { throw TestError("bad chunk size \(sizeText)") }
            let start = lineEnd + 2
            if size == 0 {
                finished = true
                pending = []
                break
            }
            guard pending.count >= start + size + 2 else { break }
            out += pending[start..<start + size]
            pending.removeFirst(start + size + 2)
        }
        return out
    }
}

enum TestHTTP {
    /// One request on a fresh connection (`Connection: close`), read to the end.
    /// `headers` are sent as given; pass a `Host` (or deliberately none).
    static func request(port: Int, _ method: String = "GET", _ path: String, headers: [(String, String)]? = nil,
                        timeout: Duration = .seconds(10)) async throws -> TestResponse {
        let sent = headers ?? [("Host", "127.0.0.1:\(port)")]
        return try await offThread {
            let connection = try Connection(port: port)
            defer { connection.close() }
            var text = "\(method) \(path) HTTP/1.1\r\n"
            for (name, value) in sent { text += "\(name): \(value)\r\n" }
            text += "Connection: close\r\n\r\n"
            try connection.send(text)
            var raw: [UInt8] = []
            let deadline = ContinuousClock.now + timeout
            while true {
                let left = deadline - ContinuousClock.now
                guard left > .zero, let bytes = try connection.receive(timeout: left) else {
                    throw TestError("\(method) \(path): no complete answer within \(timeout)")
                }
                if bytes.isEmpty { break }
                raw += bytes
            }
            guard let (status, headers, rest) = try parseHead(raw) else { throw TestError("\(method) \(path): incomplete head") }
            var body = rest
            if headers.contains(where: { $0.name == "transfer-encoding" && $0.value.lowercased().contains("chunked") }) {
                var decoder = ChunkedDecoder()
                body = try decoder.feed(rest)
            }
            return TestResponse(status: status, headers: headers, body: String(decoding: body, as: UTF8.self))
        }
    }
}

/// One Server-Sent Event as EventSource would dispatch it (or a comment line, kept for the
/// keep-alive test).
struct SSEEvent: Sendable, Equatable {
    var id: String?
    var event: String?
    var data: String?
    var comment: String?
    var retry: Int?
}

/// A client of `GET /events` on a raw socket: sends the request, checks the head, then hands out
/// events in the order they arrive.
final class EventStreamClient: @unchecked Sendable {
    let connection: Connection
    let status: Int
    let headers: [(name: String, value: String)]
    private var decoder = ChunkedDecoder()
    private var chunked: Bool
    private var text: [UInt8] = []

    private init(connection: Connection, status: Int, headers: [(name: String, value: String)], rest: [UInt8]) throws {
        self.connection = connection
        self.status = status
        self.headers = headers
        self.chunked = headers.contains { $0.name == "transfer-encoding" && $0.value.lowercased().contains("chunked") }
        try take(rest)
    }

    static func connect(port: Int, lastEventID: String? = nil, origin: String? = nil,
                        timeout: Duration = .seconds(10)) async throws -> EventStreamClient {
        try await offThread {
            let connection = try Connection(port: port)
            var request = "GET /events HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAccept: text/event-stream\r\n"
            if let lastEventID { request += "Last-Event-ID: \(lastEventID)\r\n" }
            if let origin { request += "Origin: \(origin)\r\n" }
            try connection.send(request + "\r\n")
            var raw: [UInt8] = []
            let deadline = ContinuousClock.now + timeout
            while true {
                if let (status, headers, rest) = try parseHead(raw) {
                    return try EventStreamClient(connection: connection, status: status, headers: headers, rest: rest)
                }
                let left = deadline - ContinuousClock.now
                guard left > .zero, let bytes = try connection.receive(timeout: left), !bytes.isEmpty else {
                    throw TestError("GET /events: no head within \(timeout)")
                }
                raw += bytes
            }
        }
    }

    func header(_ name: String) -> String? { headers.first { $0.name == name.lowercased() }?.value }

    private func take(_ bytes: [UInt8]) throws {
        text += chunked ? try decoder.feed(bytes) : bytes
    }

    /// The next event or comment within `timeout`; nil when none arrived in time.
    /// - Throws: when the stream ends.
    func next(timeout: Duration = .seconds(10), includeComments: Bool = false) async throws -> SSEEvent? {
        try await offThread { try self.nextBlocking(timeout: timeout, includeComments: includeComments) }
    }

    /// The next event of type `event` (others are skipped) within `timeout`.
    func next(_ event: String, timeout: Duration = .seconds(10)) async throws -> SSEEvent {
        let deadline = ContinuousClock.now + timeout
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero, let e = try await next(timeout: left) else { throw TestError("no \"\(event)\" event within \(timeout)") }
            if e.event == event { return e }
        }
    }

    private func nextBlocking(timeout: Duration, includeComments: Bool) throws -> SSEEvent? {
        let deadline = ContinuousClock.now + timeout
        while true {
            while let event = popMessage() {
                if event.comment != nil && !includeComments { continue }
                if event.retry != nil && event.data == nil && event.comment == nil { continue }
                return event
            }
            let left = deadline - ContinuousClock.now
            guard left > .zero, let bytes = try connection.receive(timeout: left) else { return nil }
            if bytes.isEmpty { throw TestError("the event stream ended") }
            try take(bytes)
        }
    }

    /// Splits off one message (up to a blank line) and parses its fields.
    private func popMessage() -> SSEEvent? {
        guard let end = text.indices.dropLast().first(where: { text[$0] == 10 && text[$0 + 1] == 10 }) else { return nil }
        let block = String(decoding: text[..<end], as: UTF8.self)
        text.removeFirst(end + 2)
        var event = SSEEvent()
        for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix(":") {
                event.comment = String(line.dropFirst()).trimmingCharacters(in: .whitespaces)
                continue
            }
            let parts = line.split(separator: ":", maxSplits: 1)
            let field = parts.first.map(String.init) ?? ""
            var value = parts.count > 1 ? String(parts[1]) : ""
            if value.hasPrefix(" ") { value.removeFirst() }
            switch field {
            case "id": event.id = value
            case "event": event.event = value
            case "data": event.data = (event.data.map { $0 + "\n" } ?? "") + value
            case "retry": event.retry = Int(value)
            default: break
            }
        }
        return event
    }

    func close() { connection.close() }
}

extension SSEEvent {
    func json() throws -> JSONObject {
        guard let data, case .object(let o) = try JSONValue.parse(data) else { throw TestError("event data is not a JSON object: \(String(describing: data))") }
        return o
    }

    /// The ids of the entries in `key` (`servers`, `added`, `removed`, `changed`).
    func ids(_ key: String) throws -> [String] {
        try (json()[key]?.arrayValue ?? []).compactMap { $0.objectValue?["id"]?.stringValue }
    }
}

/// A registry in a fresh temporary directory, and a server on it listening on a free port.
final class ServerFixture: @unchecked Sendable {
    let directory: String
    let registry: Registry
    let port: Int
    let server: RegistryHTTPServer
    private let task: Task<Void, any Error>

    var path: String { directory + "/servers.json" }

    private init(directory: String, registry: Registry, server: RegistryHTTPServer, port: Int, task: Task<Void, any Error>) {
        self.directory = directory
        self.registry = registry
        self.server = server
        self.port = port
        self.task = task
    }

    static func start(access: AccessPolicy = AccessPolicy(), token: AccessToken? = nil, keepAlive: Duration = .seconds(15),
                      prepare: (Registry) throws -> Void = { _ in }) async throws -> ServerFixture {
        var template = Array("/tmp/prk-http-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestError("mkdtemp failed") }
        let directory = String(cString: made)
        let registry = try Registry(path: directory + "/servers.json")
        try prepare(registry)
        // Stopping by cancellation makes the HTTP server log errors about its channels: not news.
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let server = RegistryHTTPServer(
            registry: registry,
            configuration: .init(host: "127.0.0.1", port: 0, access: access, token: token, keepAliveInterval: keepAlive),
            logger: logger)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let task = Task {
            defer { continuation.finish() }
            try await server.run { port in continuation.yield(port) }
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            _ = await task.result
            throw TestError("the server did not start: \(String(describing: await task.result))")
        }
        return ServerFixture(directory: directory, registry: registry, server: server, port: port, task: task)
    }

    /// Stops the server and waits for it; removes the directory.
    func stop() async {
        task.cancel()
        _ = await task.result
        registry.close()
        _ = try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs `body`, then stops the server, whether `body` threw or not.
    func use(_ body: (ServerFixture) async throws -> Void) async throws {
        do {
            try await body(self)
        } catch {
            await stop()
            throw error
        }
        await stop()
    }

    func get(_ path: String, headers: [(String, String)]? = nil) async throws -> TestResponse {
        try await TestHTTP.request(port: port, "GET", path, headers: headers)
    }

    /// A second handle on the same file, as another process would have.
    func otherHandle() throws -> Registry { try Registry(path: path) }

    /// Overwrites servers.json in place with `text` (to make it corrupt).
    func overwriteFile(_ text: String) throws {
        let fd = open(path, O_WRONLY | O_TRUNC | O_NOFOLLOW)
        guard fd >= 0 else { throw TestError("open \(path): errno \(errno)") }
        defer { Glibc.close(fd) }
        let bytes = Array(text.utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else { throw TestError("write failed") }
    }
}

/// Waits until `condition` holds, checking every 20 ms, for at most `timeout`.
func eventually(timeout: Duration = .seconds(5), _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}
