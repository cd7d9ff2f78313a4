import RegistryKit
import Testing
@testable import RegistryGateway

@Suite struct GatewayNamesTests {
    @Test func shortNamesStayAsTheyAre() {
        #expect(GatewayNames.exposed(id: "files", name: "read_file") == "files__read_file")
        #expect(GatewayNames.exposed(id: "a-b", name: "x-Y_9") == "a-b__x-Y_9")
    }

    @Test func invalidCharactersAreReplacedAndHashed() {
        let n = GatewayNames.exposed(id: "files", name: "read.file/v2")
        #expect(n.hasPrefix("files__read_file_v2_"))
        #expect(GatewayNames.isValid(n))
        // Another name that cleans to the same text gets another hash.
        #expect(n != GatewayNames.exposed(id: "files", name: "read_file/v2"))
        // One non-ASCII character is one "_".
        #expect(GatewayNames.exposed(id: "s", name: "café").hasPrefix("s__caf__"))
    }

    @Test func longNamesAreCutTo64WithAStableHash() {
        let name = String(repeating: "long_", count: 20)
        let n = GatewayNames.exposed(id: "server", name: name)
        #expect(n.utf8.count == 64)
        #expect(GatewayNames.isValid(n))
        // FNV-1a 64 of "server__" + name, its first 8 hex digits: the same on every run.
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in ("server__" + name).utf8 { h ^= UInt64(b); h = h &* 0x100_0000_01b3 }
        let hex = String(h, radix: 16)
        let padded = String(repeating: "0", count: 16 - hex.count) + hex
        #expect(n.hasSuffix("_" + padded.prefix(8)))
        #expect(n == GatewayNames.exposed(id: "server", name: name))
        #expect(n.hasPrefix(String(("server__" + name).prefix(55))))
    }

    @Test func exactly64IsKept() {
        let name = String(repeating: "x", count: 64 - "id__".count)
        #expect(GatewayNames.exposed(id: "id", name: name) == "id__" + name)
        #expect(GatewayNames.exposed(id: "id", name: name + "y").utf8.count == 64)
    }
}

@Suite struct SSEParserTests {
    func events(_ chunks: [String]) -> [String] {
        var parser = SSEParser()
        var out: [String] = []
        for c in chunks { parser.feed(Array(c.utf8)) { out.append(String(decoding: $0, as: UTF8.self)) } }
        return out
    }

    @Test func eventsSplitAcrossChunksAndLineEndings() {
        #expect(events(["event: message\r\nda", "ta: {\"a\":1}\r\n\r\n", "data: x\ndata: y\n\n"]) == ["{\"a\":1}", "x\ny"])
        #expect(events(["data:nospace\r\r"]) == ["nospace"])
    }

    @Test func emptyEventsAndCommentsAreNotDispatched() {
        #expect(events(["id: 1\ndata:\n\n", ": keep-alive\n\n", "retry: 10\n\n", "dataX: no\n\n"]) == [])
    }

    @Test func eventTypesDefaultToMessage() {
        var parser = SSEParser()
        var out: [String] = []
        parser.feedEvents(Array("event: endpoint\r\ndata: /messages?session_id=ab\r\n\r\ndata: {}\n\n: ping\n\nevent:message\ndata:x\n\n".utf8)) {
            out.append($0 + " " + String(decoding: $1, as: UTF8.self))
        }
        #expect(out == ["endpoint /messages?session_id=ab", "message {}", "message x"])
    }
}

@Suite struct SSEEndpointTests {
    let base = "http://127.0.0.1:4000/sse"

    @Test func relativeAndAbsoluteEndpointsResolveOnTheStreamsOrigin() {
        #expect(SSEUpstream.resolve("/messages/?session_id=1", against: base) == "http://127.0.0.1:4000/messages/?session_id=1")
        #expect(SSEUpstream.resolve(" messages?x=1\n", against: "http://h:1/a/sse?token=t") == "http://h:1/a/messages?x=1")
        #expect(SSEUpstream.resolve("?session_id=2", against: "http://h:1/a/sse?token=t") == "http://h:1/a/sse?session_id=2")
        #expect(SSEUpstream.resolve("http://127.0.0.1:4000/m?s=1", against: base) == "http://127.0.0.1:4000/m?s=1")
        #expect(SSEUpstream.resolve("/m", against: "http://127.0.0.1:4000") == "http://127.0.0.1:4000/m")
    }

    @Test func anotherOriginOrNoURLIsRefused() {
        // The entry's headers (a bearer token) go with every POST: never to another origin.
        #expect(SSEUpstream.resolve("http://evil.example/m", against: base) == nil)
        #expect(SSEUpstream.resolve("http://127.0.0.1:4001/m", against: base) == nil)
        #expect(SSEUpstream.resolve("//evil.example/m", against: base) == nil)
        #expect(SSEUpstream.resolve("", against: base) == nil)
        #expect(SSEUpstream.resolve("/a b", against: base) == nil)
    }
}

@Suite struct CatalogTests {
    func tool(_ name: String) -> JSONObject { JSONObject([("name", .string(name)), ("inputSchema", ["type": "object"])]) }

    @Test func duplicatesAreBothShownAndFiltersApply() {
        var a = BackendLists()
        a.tools = [tool("search"), tool("whoami")]
        var b = BackendLists()
        b.tools = [tool("search")]
        b.resources = [JSONObject([("uri", "docs://b/x"), ("name", "x")])]
        let c = Catalog.build([("b", b), ("a", a)], filter: GatewayFilter(), ownTools: [])
        #expect(Set(c.tools.keys) == ["a__search", "a__whoami", "b__search"])
        #expect(c.toolsByName["search"]?.map(\.backend) == ["a", "b"])
        #expect(c.resources["docs://b/x"] == ["b"])

        let filtered = Catalog.build([("b", b), ("a", a)], filter: GatewayFilter(include: ["a"], exclude: ["*__whoami"]), ownTools: [])
        #expect(Set(filtered.tools.keys) == ["a__search"])
        #expect(filtered.resources.isEmpty)
    }

    @Test func collidingExposedNamesStayDistinct() {
        var x = BackendLists()
        x.tools = [tool("b__c")]
        var y = BackendLists()
        y.tools = [tool("c")]
        let c = Catalog.build([("a", x), ("a__b", y)], filter: GatewayFilter(), ownTools: [])
        #expect(c.tools.count == 2)
        #expect(c.tools.values.allSatisfy { GatewayNames.isValid($0.exposed) })
    }
}
