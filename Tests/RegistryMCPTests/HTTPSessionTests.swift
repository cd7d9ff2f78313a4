import Foundation
import MCP
import RegistryKit
@testable import RegistryMCP
import Testing

// The streamable-HTTP session layer, without sockets: requests go straight to `HTTPSessions`
// (the Python suite drives the same code through a real HTTP client).

@Suite struct HTTPSessionTests {
    static let initialize = #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#

    static func post(_ body: String, session: String? = nil) -> MCP.HTTPRequest {
        var headers = ["Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                       "MCP-Protocol-Version": "2025-06-18"]
        if let session { headers["MCP-Session-Id"] = session }
        return MCP.HTTPRequest(method: "POST", headers: headers, body: Data(body.utf8), path: "/mcp")
    }

    /// Everything a streamed response carries, until it ends.
    static func collect(_ response: MCP.HTTPResponse) async throws -> String {
        guard case .stream(let stream, _) = response else { return String(decoding: response.bodyData ?? Data(), as: UTF8.self) }
        var text = ""
        for try await chunk in stream { text += String(decoding: chunk, as: UTF8.self) }
        return text
    }

    static func withSessions(maxSessions: Int = 64, _ body: (HTTPSessions, Harness) async throws -> Void) async throws {
        try await withHarness { h in
            var options = RegistryMCPServer.HTTPOptions()
            options.maxSessions = maxSessions
            let sessions = HTTPSessions(server: h.server, options: options)
            try await body(sessions, h)
            await sessions.closeAll()
        }
    }

    @Test func initializeStartsASessionThatLaterRequestsUse() async throws {
        try await Self.withSessions { sessions, h in
            try h.add("journey")
            let started = await sessions.handle(Self.post(Self.initialize))
            #expect(started.statusCode == 200)
            let id = try #require(started.headers["MCP-Session-Id"])
            #expect(id.count == 32 && id.allSatisfy(\.isHexDigit))
            #expect(try await Self.collect(started).contains("\"serverInfo\""))

            let call = await sessions.handle(Self.post(#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"instances/list"}}"#, session: id))
            #expect(call.statusCode == 200)
            #expect(try await Self.collect(call).contains(#"\"id\":\"journey\""#))
        }
    }

    @Test func requestsWithoutOrWithAnUnknownSessionAreRefused() async throws {
        try await Self.withSessions { sessions, _ in
            let list = #"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#
            let none = await sessions.handle(Self.post(list))
            #expect(none.statusCode == 400)
            let unknown = await sessions.handle(Self.post(list, session: "feedface"))
            #expect(unknown.statusCode == 404)
        }
    }

    @Test func deleteEndsTheSession() async throws {
        try await Self.withSessions { sessions, _ in
            let started = await sessions.handle(Self.post(Self.initialize))
            let id = try #require(started.headers["MCP-Session-Id"])
            _ = try await Self.collect(started)
            let deleted = await sessions.handle(MCP.HTTPRequest(method: "DELETE", headers: ["MCP-Session-Id": id], path: "/mcp"))
            #expect(deleted.statusCode == 200)
            let after = await sessions.handle(Self.post(#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#, session: id))
            #expect(after.statusCode == 404)
        }
    }

    @Test func aFullTableMakesRoomByClosingTheLeastRecentlyUsedSession() async throws {
        // 64 initialize requests used to lock every other client out for an hour (503).
        try await Self.withSessions(maxSessions: 2) { sessions, _ in
            var ids: [String] = []
            for _ in 0..<2 {
                let ok = await sessions.handle(Self.post(Self.initialize))
                #expect(ok.statusCode == 200)
                ids.append(try #require(ok.headers["MCP-Session-Id"]))
                _ = try await Self.collect(ok)
            }
            // The first session is used again: the second is now the least recently used.
            let list = #"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#
            let used = await sessions.handle(Self.post(list, session: ids[0]))
            #expect(used.statusCode == 200)
            _ = try await Self.collect(used)

            let third = await sessions.handle(Self.post(Self.initialize))
            #expect(third.statusCode == 200)
            _ = try await Self.collect(third)
            #expect(await sessions.handle(Self.post(list, session: ids[1])).statusCode == 404)
            let still = await sessions.handle(Self.post(list, session: ids[0]))
            #expect(still.statusCode == 200)
            _ = try await Self.collect(still)
        }
    }

    @Test func aForeignOriginIsRefused() async throws {
        try await Self.withSessions { sessions, _ in
            var request = Self.post(Self.initialize)
            request = MCP.HTTPRequest(method: "POST", headers: request.headers.merging(["Origin": "https://evil.example"]) { $1 },
                                      body: request.body, path: "/mcp")
            let refused = await sessions.handle(request)
            #expect(refused.statusCode == 403)
        }
    }
}
