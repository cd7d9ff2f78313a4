import Testing
@testable import RegistryKit

@Test func smokeRegisterListUnregister() throws {
    let dir = "/tmp/prk-smoke-\(UInt32.random(in: 0...UInt32.max))"
    let reg = try Registry(path: dir + "/servers.json")
    let stored = try reg.register(ServerEntry(id: "a", url: "http://127.0.0.1:8080/mcp", capabilities: Capabilities(tools: ["t1"])))
    #expect(stored.port == 8080)
    #expect(stored.transport == .http)
    #expect(try reg.list().servers.map(\.id) == ["a"])
    #expect(try reg.resolveTool("t1").id == "a")
    try reg.unregister("a")
    #expect(try reg.list().servers.isEmpty)
    reg.close()
}
