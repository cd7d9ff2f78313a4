import Foundation
import Synchronization
import Testing
@testable import RegistryKit

/// Registry.probeSync speaks MCP: HEALTHY only after a correct initialize + ping exchange with a
/// real MCP server (the official Python SDK's MCPServer, started as a process), never for servers
/// that answer 400, 500, garbage or nothing (written here with raw sockets: nothing real
/// misbehaves on demand); and the whole check, name lookup included, ends at its deadline.
@Suite struct ProbeTests {
    // MARK: a real MCPServer

    @Test(arguments: ["http", "sse"])
    func aRealSDKServerIsHealthy(transport: String) throws {
        let server = try SDKServer(transport: transport)
        defer { server.stop() }
        let dir = TempRegistryDir()
        let registry = try dir.open()
        defer { registry.close() }
        let path = transport == "http" ? "/mcp" : "/sse"
        try registry.register(ServerEntry(id: "sdk", url: "http://127.0.0.1:\(server.port)\(path)",
                                          transport: transport == "http" ? .http : .sse))
        let probed = try registry.probeSync("sdk", policy: ProbePolicy(timeout: .seconds(5)))
        #expect(probed.health.status == .healthy, "\(probed.health.message ?? "")")
        #expect(probed.health.message?.contains("MCP ping ok") == true && probed.health.message?.contains("after initialize") == true)
        if transport == "http" {
            // initialize, notifications/initialized, ping, then the session is deleted.
            let methods = try server.waitForRequests(4).map { "\($0["method"] ?? "") \($0["rpc"] as? String ?? "-") \($0["status"] ?? "")" }
            #expect(methods == ["POST initialize 200", "POST notifications/initialized 202", "POST ping 200", "DELETE - 200"])
        }
    }

    // MARK: servers that do not complete the handshake

    static let initResult = #"{"jsonrpc":"2.0","id":"peer-registry-probe-init","result":{"protocolVersion":"2025-06-18","capabilities":{}}}"#

    static let misbehaving: [(String, @Sendable (String) -> String?, String)] = [
        ("400", { _ in http("400 Bad Request", #"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Missing session ID"}}"#) }, "HTTP 400 to initialize"),
        ("500", { _ in http("500 Internal Server Error", "boom") }, "HTTP 500 to initialize"),
        ("garbage", { _ in "\u{1}\u{2}garbage\r\n\r\n" }, "not an HTTP answer"),
        ("html", { _ in http("200 OK", "<html></html>", type: "text/html") }, "not JSON"),
        ("chunked SSE error", { _ in
            let event = "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"peer-registry-probe-init\",\"error\":{\"code\":-32602,\"message\":\"bad version\"}}\r\n\r\n"
            let size = String(event.utf8.count, radix: 16)
            return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n\(size)\r\n\(event)\r\n0\r\n\r\n"
        }, "initialize answered JSON-RPC error -32602"),
        ("ping 500", { body in
            if body.contains("\"initialize\"") { return http("200 OK", initResult, extra: "Mcp-Session-Id: s1\r\n") }
            if body.contains("notifications/initialized") { return http("202 Accepted", "") }
            if body.isEmpty { return http("200 OK", "") }  // the DELETE
            return http("500 Internal Server Error", "")
        }, "HTTP 500 to ping"),
        ("hangs", { _ in nil }, "no HTTP answer within 600 ms"),
        // A priming event with empty data (as Swift's MCP SDK sends) is skipped, not judged;
        // the answer after it is the verdict.
        ("priming, then error", { _ in
            http("200 OK", "id: p_1\ndata: \n\nid: p_2\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"peer-registry-probe-init\",\"error\":{\"code\":-32000,\"message\":\"no\"}}\n\n", type: "text/event-stream")
        }, "initialize answered JSON-RPC error -32000"),
    ]

    @Test(arguments: 0..<misbehaving.count)
    func aServerThatDoesNotCompleteTheHandshakeIsNeverHealthy(_ index: Int) throws {
        let (name, respond, why) = Self.misbehaving[index]
        let server = try CannedServer(respond)
        defer { server.stop() }
        let outcome = Prober.probe(url: "http://127.0.0.1:\(server.port)/mcp", transport: .http, headers: [], timeoutMillis: 600)
        #expect(!outcome.reachable, "\(name): \(outcome.message)")
        #expect(outcome.message.contains(why), "\(name): \(outcome.message)")
    }

    @Test func theEntrysHeadersAreSentAndTheProbesOwnWin() throws {
        let server = try CannedServer { _ in http("500 Internal Server Error", "") }
        defer { server.stop() }
        _ = Prober.probe(url: "http://127.0.0.1:\(server.port)/mcp", transport: .http,
                         headers: [("Authorization", "Bearer s3cret"), ("Content-Length", "99"), ("Host", "evil")], timeoutMillis: 1000)
        let head = try #require(server.heads.withLock { $0.first })
        #expect(head.contains("\r\nAuthorization: Bearer s3cret\r\n"))
        #expect(!head.contains("evil") && !head.contains("Content-Length: 99"))
        let refused = Prober.probe(url: "http://127.0.0.1:\(server.port)/mcp", transport: .http,
                                   headers: [("X-Bad", "a\r\nInjected: 1")], timeoutMillis: 500)
        #expect(!refused.reachable && refused.message.contains("cannot be sent"))
    }

    // MARK: deadlines

    @Test func aNumericHostNeedsNoLookupAndARefusedPortFailsFast() {
        let started = ContinuousClock.now
        let outcome = Prober.probe(url: "http://127.0.0.1:1/mcp", transport: .http, headers: [], timeoutMillis: 2000)
        #expect(!outcome.reachable)
        #expect(outcome.message.contains("refused"), "\(outcome.message)")
        #expect(ContinuousClock.now - started < .seconds(1))
    }

    @Test func targetsAreSplit() throws {
        let v6 = try #require(Prober.target(for: "http://[::1]:8080/mcp?x=1#f"))
        #expect(v6.host == "::1" && v6.port == 8080 && v6.path == "/mcp?x=1")
        let bare = try #require(Prober.target(for: "http://user@localhost:9"))
        #expect(bare.host == "localhost" && bare.path == "/")
        #expect(Prober.target(for: "http://:80/x") == nil)
    }
}

// MARK: - helpers

private func http(_ status: String, _ body: String, type: String = "application/json", extra: String = "") -> String {
    "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.utf8.count)\r\n\(extra)Connection: close\r\n\r\n\(body)"
}

/// bindings/python/tests/mcp_fixture_server.py: an official-SDK MCPServer logging its requests.
private final class SDKServer {
    let process = Process()
    let log: String
    let port: Int

    init(transport: String) throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let script = root.appendingPathComponent("bindings/python/tests/mcp_fixture_server.py").path
        try SDKServer.requireSDK()
        log = NSTemporaryDirectory() + "probe-\(UUID().uuidString.prefix(8)).log"
        let out = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, transport, log]
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line = Data()
        while let byte = try out.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) {
            line.append(byte)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self)) else {
            kill(process.processIdentifier, SIGKILL)
            throw RegistryError(.io, "the MCP fixture server did not start (python3 \(script))")
        }
        self.port = port
    }

    /// The SDK is installed when missing (pip, as the Python suites do), never silently skipped.
    static func requireSDK() throws {
        func run(_ args: [String]) throws -> Int32 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = args
            try p.run()
            p.waitUntilExit()
            return p.terminationStatus
        }
        if try run(["python3", "-c", "import mcp.server.mcpserver, uvicorn"]) == 0 { return }
        guard try run(["python3", "-m", "pip", "install", "--quiet", "mcp>=2.3,<3"]) == 0 else {
            throw RegistryError(.io, "the MCP Python SDK is missing and could not be installed: python3 -m pip install 'mcp>=2.3,<3'")
        }
    }

    func waitForRequests(_ count: Int) throws -> [[String: Any]] {
        for _ in 0..<250 {
            let lines = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n")
            if lines.count >= count {
                return try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:] }
            }
            usleep(20_000)
        }
        throw RegistryError(.timeout, "the fixture server logged fewer than \(count) requests")
    }

    func stop() {
        // SIGKILL, not SIGTERM: a child of the test runner inherits its blocked signals.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: log)
    }
}

/// A loopback listener answering each request (head + body as text) with `respond(request)`;
/// nil keeps the connection open without a word.
private final class CannedServer: @unchecked Sendable {
    let fd: Int32
    let port: Int
    let heads = Mutex<[String]>([])
    private let stopped = Atomic<Bool>(false)
    private let held = Mutex<[Int32]>([])
    private var thread: Thread?

    init(_ respond: @escaping @Sendable (String) -> String?) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && listen(fd, 16) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard bound else { throw RegistryError(.io, "cannot listen on loopback: \(errno)") }
        port = Int(UInt16(bigEndian: addr.sin_port))
        let listener = fd
        let thread = Thread { [self] in
            let me = self
            while !me.stopped.load(ordering: .relaxed) {
                var p = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, 50) > 0 else { continue }
                let conn = accept(listener, nil, nil)
                guard conn >= 0 else { continue }
                let request = CannedServer.readRequest(conn)
                me.heads.withLock { $0.append(request) }
                let body = request.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
                if let answer = respond(body) {
                    _ = answer.withCString { send(conn, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
                    close(conn)
                } else {
                    me.held.withLock { $0.append(conn) }
                }
            }
        }
        self.thread = thread
        thread.start()
    }

    static func readRequest(_ conn: Int32) -> String {
        var data = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65536)
        var expected: Int?
        while expected.map({ data.count < $0 }) ?? true {
            var p = pollfd(fd: conn, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 2000) > 0 else { break }
            let n = recv(conn, &chunk, chunk.count, 0)
            guard n > 0 else { break }
            data += chunk[0..<n]
            let text = String(decoding: data, as: UTF8.self)
            if expected == nil, let end = text.range(of: "\r\n\r\n") {
                let head = text[..<end.lowerBound].lowercased()
                let length = head.components(separatedBy: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                expected = text.utf8.distance(from: text.utf8.startIndex, to: end.upperBound.samePosition(in: text.utf8)!) + length
            }
        }
        return String(decoding: data, as: UTF8.self)
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        while thread?.isFinished == false { usleep(10_000) }
        held.withLock { $0.forEach { close($0) } }
        close(fd)
    }
}
