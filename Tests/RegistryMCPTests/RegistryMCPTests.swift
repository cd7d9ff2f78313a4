import Foundation
import MCP
import RegistryKit
import RegistryMCP
import Testing

// The registry as an MCP server, driven by the MCP Swift SDK's own client over its in-memory
// transport pair. Each test has its own registry directory.

@Suite struct HandshakeTests {
    @Test func initializeAdvertisesToolsAndSubscribableResources() async throws {
        try await withHarness { h in
            let caps = h.initializeResult.capabilities
            #expect(caps.tools != nil)
            #expect(caps.resources?.subscribe == true)
            #expect(caps.resources?.listChanged == true)
            #expect(h.initializeResult.serverInfo.name == "peer-registry")
            #expect(h.initializeResult.instructions?.contains("instances/list") == true)
        }
    }

    @Test func toolsListHasTheFourToolsWithInputAndOutputSchemas() async throws {
        try await withHarness { h in
            let tools = try await h.client.listTools().tools
            #expect(tools.map(\.name) == ["instances/list", "servers/get", "servers/resolve", "servers/health"])
            for tool in tools {
                #expect(tool.inputSchema["type"] == "object", "\(tool.name)")
                #expect(tool.outputSchema?["type"] == "object", "\(tool.name)")
                #expect(tool.description?.isEmpty == false)
            }
            let get = try #require(tools.first { $0.name == "servers/get" })
            #expect(get.inputSchema["required"] == ["id"])
            let resolve = try #require(tools.first { $0.name == "servers/resolve" })
            #expect(resolve.inputSchema["properties"]?["kind"]?["enum"] == ["tool", "resource", "prompt"])
        }
    }
}

@Suite struct InstancesListTests {
    @Test func listsLiveServersAsTextAndStructuredContent() async throws {
        try await withHarness { h in
            try h.add("journey", tools: ["findTrips"], health: .healthy)
            try h.add("weather", url: "ws://127.0.0.1:9/ws", tools: ["forecast"])
            let result = try await h.call("instances/list")
            #expect(result.isError == false)
            let servers = try #require(result.structured["servers"]?.arrayValue)
            #expect(servers.compactMap { $0["id"]?.stringValue } == ["journey", "weather"])
            #expect(servers.first?["url"] == "http://127.0.0.1:1/mcp")
            #expect(servers.first?["capabilities"]?["tools"] == ["findTrips"])
            #expect(servers.first?["health"]?["status"] == "HEALTHY")
            #expect(result.structured["generation"]?.intValue == Int(try h.registry.generation()))
            // The text is the same JSON as the structured content.
            #expect(result.textAsValue == result.structuredContent)
        }
    }

    @Test func metadataOfAnyShapeComesThrough() async throws {
        try await withHarness { h in
            let metadata: JSONValue = .object(JSONObject([
                ("project", "/home/user/project"), ("ratio", .number("1.5")),
                ("huge", .number("1e400")), ("big", .number("12345678901234567890")),
                ("nested", ["a": [1, 2, nil, true]]),
            ]))
            try h.registry.register(ServerEntry(id: "meta", url: "http://127.0.0.1:1/mcp", liveness: .none, metadata: metadata))
            let r = try await h.call("servers/get", ["id": "meta"])
            #expect(r.isError == false, "\(r.text)")
            let m = try #require(r.structured["metadata"])
            #expect(m["project"] == "/home/user/project")
            #expect(m["ratio"] == .double(1.5))
            #expect(m["huge"] == "1e400")  // no Double holds it: kept as its literal
            #expect(m["big"] == .double(12345678901234567890))
            #expect(m["nested"] == ["a": [1, 2, nil, true]])
            #expect(r.text.contains(#""huge":1e400"#))  // the text keeps the number as written
        }
    }

    @Test func filtersByHealthTransportAndTool() async throws {
        try await withHarness { h in
            try h.add("a", tools: ["x"], health: .healthy)
            try h.add("b", url: "ws://127.0.0.1:9/ws", tools: ["x", "y"])
            try h.add("c", tools: ["y"], health: .degraded)
            func ids(_ args: [String: Value]) async throws -> [String] {
                let r = try await h.call("instances/list", args)
                #expect(r.isError == false, "\(args): \(r.text)")
                return r.structured["servers"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
            }
            #expect(try await ids(["healthy": true]) == ["a"])
            #expect(try await ids(["healthy": false]) == ["b", "c"])
            #expect(try await ids(["transport": "ws"]) == ["b"])
            #expect(try await ids(["tool": "y"]) == ["b", "c"])
            #expect(try await ids(["tool": "y", "healthy": false, "transport": "http"]) == ["c"])
            #expect(try await ids(["healthy": .null]) == ["a", "b", "c"])
            #expect(try await ids(["tool": "nobody-has-it"]) == [])
        }
    }

    @Test func badArgumentsAreToolErrorsThatSayWhatIsWrong() async throws {
        try await withHarness { h in
            let cases: [([String: Value], String)] = [
                (["healthy": "yes"], "argument \"healthy\" must be a boolean"),
                (["transport": "pigeon"], "must be one of http, sse, ws, stdio"),
                (["transport": 3], "argument \"transport\" must be a string, not a number"),
                (["tool": ""], "argument \"tool\" must not be empty"),
                (["helthy": true], "unknown argument \"helthy\" (it takes healthy, transport, tool, scope)"),
            ]
            for (args, expected) in cases {
                let r = try await h.call("instances/list", args)
                #expect(r.isError == true, "\(args)")
                #expect(r.text.contains(expected), "\(args): \(r.text)")
                #expect(r.text.hasPrefix("instances/list: "))
                #expect(r.structuredContent == nil)
            }
        }
    }
}

@Suite struct GetAndResolveTests {
    @Test func getReturnsTheEntryAndFailsClearlyForUnknownOrBadIDs() async throws {
        try await withHarness { h in
            try h.add("journey", tools: ["findTrips"])
            let ok = try await h.call("servers/get", ["id": "journey"])
            #expect(ok.isError == false)
            #expect(ok.structured["id"] == "journey")
            #expect(ok.structured["name"] == "Server journey")
            #expect(ok.structured["liveness"] == "none")
            #expect(ok.textAsValue == ok.structuredContent)

            let missing = try await h.call("servers/get", ["id": "nobody"])
            #expect(missing.isError == true)
            #expect(missing.text.hasPrefix("PEERREG_ENOTFOUND: no live server with id \"nobody\""))

            let noID = try await h.call("servers/get", [:])
            #expect(noID.isError == true)
            #expect(noID.text == "servers/get: argument \"id\" is required")

            let noArguments = try await h.call("servers/get")
            #expect(noArguments.isError == true)

            let badID = try await h.call("servers/get", ["id": "../etc/passwd"])
            #expect(badID.isError == true)
            #expect(badID.text.contains("is not a server id"))
        }
    }

    @Test func resolvesToolsResourcesAndPrompts() async throws {
        try await withHarness { h in
            try h.add("journey", tools: ["findTrips"], resources: ["resource://journey/"], prompts: ["plan-trip"])
            try h.add("maps", tools: ["route"], resources: ["resource://journey/maps/"])
            func resolved(_ kind: String, _ name: String) async throws -> String? {
                let r = try await h.call("servers/resolve", ["kind": .string(kind), "name": .string(name)])
                #expect(r.isError == false, "\(kind) \(name): \(r.text)")
                #expect(r.structured["kind"] == .string(kind))
                #expect(r.structured["name"] == .string(name))
                return r.structured["server"]?["id"]?.stringValue
            }
            #expect(try await resolved("tool", "findTrips") == "journey")
            #expect(try await resolved("tool", "maps.route") == "maps")
            #expect(try await resolved("prompt", "plan-trip") == "journey")
            #expect(try await resolved("resource", "resource://journey/trips/1") == "journey")
            #expect(try await resolved("resource", "resource://journey/maps/paris") == "maps")
        }
    }

    @Test func ambiguousUnknownAndMalformedResolutionsAreToolErrors() async throws {
        try await withHarness { h in
            try h.add("one", tools: ["search"])
            try h.add("two", tools: ["search"])
            let tie = try await h.call("servers/resolve", ["kind": "tool", "name": "search"])
            #expect(tie.isError == true)
            #expect(tie.text.hasPrefix("PEERREG_EAMBIGUOUS: "))
            #expect(tie.text.contains("one, two"))

            let none = try await h.call("servers/resolve", ["kind": "prompt", "name": "search"])
            #expect(none.isError == true)
            #expect(none.text.hasPrefix("PEERREG_ENOTFOUND: "))

            let badKind = try await h.call("servers/resolve", ["kind": "widget", "name": "search"])
            #expect(badKind.text == "servers/resolve: argument \"kind\" must be \"tool\", \"resource\" or \"prompt\" (got \"widget\")")
            let noName = try await h.call("servers/resolve", ["kind": "tool"])
            #expect(noName.text == "servers/resolve: argument \"name\" is required")
            let noKind = try await h.call("servers/resolve", ["name": "search"])
            #expect(noKind.text == "servers/resolve: argument \"kind\" is required")
        }
    }

    @Test func aHealthyCandidateBreaksTheTie() async throws {
        try await withHarness { h in
            try h.add("one", tools: ["search"])
            try h.add("two", tools: ["search"], health: .healthy)
            let r = try await h.call("servers/resolve", ["kind": "tool", "name": "search"])
            #expect(r.structured["server"]?["id"] == "two")
        }
    }
}

@Suite struct HealthToolTests {
    @Test func reportsRecordedHealthWithoutProbing() async throws {
        try await withHarness { h in
            try h.add("journey")
            try h.registry.setHealth("journey", .degraded, message: "slow disk")
            let r = try await h.call("servers/health", ["id": "journey"])
            #expect(r.isError == false, "\(r.text)")
            #expect(r.structured["id"] == "journey")
            #expect(r.structured["probed"] == false)
            #expect(r.structured["health"]?["status"] == "DEGRADED")
            #expect(r.structured["health"]?["message"] == "slow disk")
            #expect(r.textAsValue == r.structuredContent)
        }
    }

    @Test func probeTrueProbesAndRecordsTheResult() async throws {
        try await withHarness(ProbePolicy(timeout: .seconds(2), degradedAfter: 1, downAfter: 2)) { h in
            // Port 1 on loopback: nothing listens, the connection is refused at once.
            try h.add("gone", url: "http://127.0.0.1:1/mcp", health: .healthy)
            let first = try await h.call("servers/health", ["id": "gone", "probe": true])
            #expect(first.isError == false, "\(first.text)")
            #expect(first.structured["probed"] == true)
            #expect(first.structured["health"]?["status"] == "DEGRADED")
            #expect(first.structured["health"]?["consecutiveFailures"] == 1)
            #expect(try h.registry.get("gone").health.status == .degraded)
            let second = try await h.call("servers/health", ["id": "gone", "probe": true])
            #expect(second.structured["health"]?["status"] == "DOWN")
        }
    }

    @Test func probeOfAListeningMCPServerMakesItHealthy() async throws {
        try await withHarness { h in
            // The registry's own MCP endpoint is a server that answers ping.
            let listening = PortBox()
            let http = Task {
                try await h.server.serveHTTP(.init(port: 0)) { port in listening.set(port) }
            }
            defer { http.cancel() }
            let port = try #require(await listening.wait())
            try h.add("self", url: "http://127.0.0.1:\(port)/mcp")
            let r = try await h.call("servers/health", ["id": "self", "probe": true])
            #expect(r.structured["health"]?["status"] == "HEALTHY", "\(r.text)")
        }
    }

    @Test func badArgumentsAndUnknownIDs() async throws {
        try await withHarness { h in
            let wrongType = try await h.call("servers/health", ["id": "x", "probe": "please"])
            #expect(wrongType.isError == true)
            #expect(wrongType.text.contains("argument \"probe\" must be a boolean"))
            let unknown = try await h.call("servers/health", ["id": "x", "probe": true])
            #expect(unknown.isError == true)
            #expect(unknown.text.hasPrefix("PEERREG_ENOTFOUND: "))
        }
    }
}

@Suite struct ProtocolErrorTests {
    @Test func unknownToolIsInvalidParamsAndTheServerKeepsServing() async throws {
        try await withHarness { h in
            let error = await mcpError { _ = try await h.call("servers/delete", ["id": "x"]) }
            #expect(error?.code == -32602)
            #expect(error?.errorDescription?.contains("Unknown tool: \"servers/delete\"") == true)
            let after = try await h.call("instances/list")
            #expect(after.isError == false)
        }
    }

    @Test func malformedToolCallsGetInvalidParams() async throws {
        try await withHarness { h in
            let noName = await mcpError { _ = try await h.client.send(RawCallTool.request(["arguments": [:]])).value }
            #expect(noName?.code == -32602)
            let badArguments = await mcpError {
                _ = try await h.client.send(RawCallTool.request(["name": "instances/list", "arguments": [1, 2]])).value
            }
            #expect(badArguments?.code == -32602)
            #expect(badArguments?.errorDescription?.contains("\"arguments\" must be an object") == true)
            let noURI = await mcpError { _ = try await h.client.send(RawReadResource.request(["url": "registry://servers"])).value }
            #expect(noURI?.code == -32602)
            let stillServing = try await h.call("instances/list")
            #expect(stillServing.isError == false)
        }
    }

    @Test func unknownMethodIsMethodNotFound() async throws {
        try await withHarness { h in
            let error = await mcpError { _ = try await h.client.send(NoSuchMethod.request()).value }
            #expect(error?.code == -32601)
            let stillServing = try await h.call("instances/list")
            #expect(stillServing.isError == false)
        }
    }
}

@Suite struct ResourceTests {
    @Test func listsTheListResourceAndOneResourcePerServer() async throws {
        try await withHarness { h in
            try h.add("journey")
            let resources = try await h.client.listResources().resources
            #expect(resources.map(\.uri) == ["registry://servers", "registry://servers/journey"])
            #expect(resources.allSatisfy { $0.mimeType == "application/json" })
            let templates = try await h.client.listResourceTemplates().templates
            #expect(templates.map(\.uriTemplate) == ["registry://servers/{id}"])
        }
    }

    @Test func readsTheLiveListAndOneEntry() async throws {
        try await withHarness { h in
            try h.add("journey", tools: ["findTrips"])
            let list = try #require(try await h.client.readResource(uri: "registry://servers").first)
            #expect(list.mimeType == "application/json")
            let listed = try JSONDecoder().decode(Value.self, from: Data((list.text ?? "").utf8))
            let tool = try await h.call("instances/list")
            #expect(listed == tool.structuredContent)

            let one = try #require(try await h.client.readResource(uri: "registry://servers/journey").first)
            let entry = try JSONDecoder().decode(Value.self, from: Data((one.text ?? "").utf8))
            #expect(entry["id"] == "journey")
        }
    }

    @Test func unknownResourcesAreResourceNotFound() async throws {
        try await withHarness { h in
            let unknownURI = await mcpError { _ = try await h.client.readResource(uri: "registry://elsewhere") }
            #expect(unknownURI?.code == -32002)
            let unknownID = await mcpError { _ = try await h.client.readResource(uri: "registry://servers/nobody") }
            #expect(unknownID?.code == -32002)
            #expect(unknownID?.errorDescription?.contains("no live server with id \"nobody\"") == true)
            let badSubscription = await mcpError { try await h.client.subscribeToResource(uri: "file:///etc/passwd") }
            #expect(badSubscription?.code == -32002)
        }
    }
}

@Suite struct NotificationTests {
    @Test func anotherHandleRegisteringNotifiesSubscribers() async throws {
        try await withHarness { h in
            try await h.client.subscribeToResource(uri: "registry://servers")
            #expect(await h.session.subscriptions == ["registry://servers"])
            // Another handle on the same file, as another process would have.
            let other = try Registry(path: h.path)
            defer { other.close() }
            try other.register(ServerEntry(id: "newcomer", url: "http://127.0.0.1:7/mcp"))
            #expect(await h.notifications.waitFor("updated registry://servers"))
            #expect(await h.notifications.waitFor("list_changed"))
            // The newcomer is in the list the client reads next.
            let listed = try await h.call("instances/list")
            #expect(listed.structured["servers"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == ["newcomer"])

            // Its death (the handle's lease is released) is a change too.
            h.notifications.clear()
            other.close()
            #expect(await h.notifications.waitFor("updated registry://servers"))
            #expect(await h.notifications.waitFor("list_changed"))
        }
    }

    @Test func perServerSubscriptionsHearAboutThatServerOnly() async throws {
        try await withHarness(seed: ["a", "b"]) { h in
            try await h.client.subscribeToResource(uri: "registry://servers/a")
            try h.registry.setHealth("b", .healthy)
            try h.registry.setHealth("a", .degraded)
            #expect(await h.notifications.waitFor("updated registry://servers/a"))
            #expect(!h.notifications.all.contains("updated registry://servers/b"))
            // A health change is not a list change; the list resource was not subscribed to.
            #expect(!h.notifications.all.contains("list_changed"))
            #expect(!h.notifications.all.contains("updated registry://servers"))
        }
    }

    @Test func unsubscribedClientsGetOnlyListChanged() async throws {
        try await withHarness { h in
            try await h.client.subscribeToResource(uri: "registry://servers")
            _ = try await h.client.send(ResourceUnsubscribeRequest.request(["uri": "registry://servers"])).value
            #expect(await h.session.subscriptions.isEmpty)
            try h.add("a")
            #expect(await h.notifications.waitFor("list_changed"))
            #expect(!h.notifications.all.contains("updated registry://servers"))
        }
    }
}

@Suite struct CorruptRegistryTests {
    @Test func aCorruptFileGivesErrorResultsAndTheServerRecovers() async throws {
        try await withHarness { h in
            try h.add("journey")
            try await h.client.subscribeToResource(uri: "registry://servers")
            try h.overwriteFile("{\"version\":1,\"servers\":[{\"id\": oops")
            // Subscribers hear that the list changed (reading it now fails).
            #expect(await h.notifications.waitFor("updated registry://servers"))

            let list = try await h.call("instances/list")
            #expect(list.isError == true)
            #expect(list.text.hasPrefix("PEERREG_ECORRUPT: "), "\(list.text)")
            let get = try await h.call("servers/get", ["id": "journey"])
            #expect(get.text.hasPrefix("PEERREG_ECORRUPT: "))
            let read = await mcpError { _ = try await h.client.readResource(uri: "registry://servers") }
            #expect(read?.code == -32603)
            #expect(read?.errorDescription?.contains("PEERREG_ECORRUPT") == true)
            // resources/list still answers, with the list resource only.
            #expect(try await h.client.listResources().resources.map(\.uri) == ["registry://servers"])

            // Repaired (moved aside), the registry is readable again and clients are told.
            h.notifications.clear()
            #expect(try h.registry.repair() != nil)
            try h.add("fresh")
            #expect(await h.notifications.waitFor("list_changed"))
            #expect(await h.notifications.waitFor("updated registry://servers"))
            let after = try await h.call("instances/list")
            #expect(after.isError == false)
            #expect(after.structured["servers"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == ["fresh"])
        }
    }
}

/// `resources/unsubscribe`, which the SDK client has no method for.
enum ResourceUnsubscribeRequest: MCP.Method {
    static let name = "resources/unsubscribe"
    typealias Parameters = Value
    typealias Result = Empty
}

/// A port reported from another task.
final class PortBox: Sendable {
    private let port = Mutex<Int?>(nil)
    func set(_ p: Int) { port.withLock { $0 = p } }
    func wait(timeout: Duration = .seconds(10)) async -> Int? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let p = port.withLock({ $0 }) { return p }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }
}

import Synchronization
