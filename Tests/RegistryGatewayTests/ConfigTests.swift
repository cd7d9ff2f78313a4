import Testing
@testable import RegistryGateway

@Suite struct ConfigTests {
    func parse(_ text: String, env: [String: String] = ["HOME": "/home/u", "PATH": "/usr/bin"]) throws(ConfigError) -> SupervisorConfig {
        try SupervisorConfig.parse(Array(text.utf8), file: "c.json", environment: env)
    }

    @Test func claudeDesktopFormat() throws {
        let c = try parse("""
            {"globalShortcut": "x", "mcpServers": {
              "files": {"command": "npx", "args": ["-y", "server-filesystem", "${HOME}/docs"], "env": {"K": "v"}, "cwd": "/tmp"},
              "off": {"command": "x", "enabled": false},
              "cline": {"command": "y", "disabled": true, "autoApprove": []},
              "remote": {"url": "https://example.com/mcp"}
            }}
            """)
        #expect(c.servers.map(\.id) == ["files"])
        let s = try #require(c.servers.first)
        #expect(s.command == "npx")
        #expect(s.args == ["-y", "server-filesystem", "/home/u/docs"])
        #expect(s.cwd == "/tmp")
        // The child's environment is exactly the default set plus env: nothing else leaks in.
        #expect(s.environment == ["HOME": "/home/u", "PATH": "/usr/bin", "K": "v"])
        #expect(c.disabled.sorted() == ["cline", "off"])
        #expect(c.warnings.count == 1)
        #expect(c.warnings.first?.contains("remote server") == true)
    }

    @Test func perServerOptions() throws {
        let c = try parse(#"{"mcpServers": {"a": {"command": "a", "shared": true, "eager": true, "maxProcesses": 3, "idleTimeout": 1.5, "requestTimeout": 2, "port": 4321, "inheritEnv": true}}}"#,
                          env: ["HOME": "/h", "EXTRA": "1"])
        let s = try #require(c.servers.first)
        #expect(s.shared && s.eager)
        #expect(s.maxProcesses == 3 && s.idleTimeout == 1.5 && s.requestTimeout == 2 && s.port == 4321)
        #expect(s.environment["EXTRA"] == "1")
    }

    @Test func expansion() throws {
        let env = ["A": "x", "EMPTY": ""]
        #expect(try VariableExpansion.expand("${A}-${B:-dflt}-$${A}-$5-${EMPTY:-e}", environment: env) == "x-dflt-${A}-$5-e")
        #expect(throws: VariableExpansion.Failure.self) { try VariableExpansion.expand("${MISSING}", environment: env) }
        #expect(throws: VariableExpansion.Failure.self) { try VariableExpansion.expand("${A", environment: env) }
        #expect(throws: VariableExpansion.Failure.self) { try VariableExpansion.expand("${A:?x}", environment: env) }
    }

    @Test func missingVariableNamesServerFieldAndPosition() {
        let text = "{\"mcpServers\": {\n  \"db\": {\"command\": \"db\",\n    \"env\": {\"TOKEN\": \"${DB_TOKEN}\"}}}}"
        #expect {
            try parse(text)
        } throws: { error in
            guard let e = error as? ConfigError else { return false }
            return e.line == 3 && e.column == 22 && e.message.contains("server \"db\"") && e.message.contains("env.TOKEN")
                && e.message.contains("${DB_TOKEN} is not set")
        }
    }

    @Test(arguments: [
        ("{\"mcpServers\": {\"a\": {\"command\": \"a\",}}}", 1, 38, "member name"),
        ("{\"mcpServers\": {\"a\": {\"command\": 5}}}", 1, 34, "expected a string"),
        ("{\"mcpServers\": {\"a\": {\"args\": []}}}", 1, 22, "no \"command\""),
        ("{\"mcpServers\": {\"a b\": {\"command\": \"x\"}}}", 1, 17, "not a valid registry id"),
        ("{\"mcpServers\": {\"a\": {\"command\": \"x\", \"args\": [1]}}}", 1, 48, "args[0]"),
        ("{\"mcpServers\": {\"a\": {\"command\": \"x\", \"maxProcesses\": 0}}}", 1, 55, "maxProcesses"),
        ("{\"servers\": {}}", 1, 1, "mcpServers"),
        ("[1,2", 1, 5, "invalid JSON"),
    ])
    func errorsHavePositions(text: String, line: Int, column: Int, fragment: String) {
        #expect {
            try parse(text)
        } throws: { error in
            guard let e = error as? ConfigError else { return false }
            return e.line == line && e.column == column && e.message.contains(fragment) && e.description.hasPrefix("c.json:\(line):\(column): ")
        }
    }
}

@Suite struct RPCMessageTests {
    @Test func idAndTokenRewriting() throws {
        let m = try RPCMessage(Array(#"{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"name":"x","_meta":{"progressToken":"tok"}}}"#.utf8))
        #expect(m.kind == .request && m.method == "tools/call")
        #expect(m.id == Array(#""abc""#.utf8))
        let range = try #require(m.progressTokenRange)
        let idRange = try #require(m.idRange)
        let out = String(decoding: m.replacing([(idRange, Array("7".utf8)), (range, Array("7".utf8))]), as: UTF8.self)
        #expect(out == #"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","_meta":{"progressToken":7}}}"#)
    }

    @Test func rawNewlinesBecomeSpaces() throws {
        let m = try RPCMessage(Array("{\"jsonrpc\":\"2.0\",\n\"method\":\"x\"}\n".utf8))
        #expect(!m.bytes.contains(0x0A))
        #expect(m.kind == .notification)
    }

    @Test(arguments: ["", "{", "[1]", "{\"jsonrpc\":\"2.0\"}", "{\"id\":{},\"method\":\"x\"}", "{\"method\":\"x\"} trailing", "{\"a\":\"\u{01}\"}"])
    func invalidMessagesAreRefused(text: String) {
        #expect(throws: JSONSyntaxError.self) { try RPCMessage(Array(text.utf8)) }
    }
}

@Suite struct RestartPolicyTests {
    @Test func backoffDoublesThenCrashLoop() {
        var p = RestartPolicy(maxRestarts: 3, window: .seconds(60), firstDelay: .milliseconds(250))
        let t = ContinuousClock.now
        #expect(p.recordFailure(at: t) == .restart(after: .milliseconds(250)))
        #expect(p.currentDelay == .milliseconds(250))
        #expect(p.recordFailure(at: t) == .restart(after: .milliseconds(500)))
        #expect(p.recordFailure(at: t) == .restart(after: .milliseconds(1000)))
        #expect(p.recordFailure(at: t) == .crashLoop)
        #expect(p.refusing(at: t + .seconds(1)))
        #expect(!p.refusing(at: t + .seconds(61)))
    }

    @Test func failuresOutsideTheWindowAreForgotten() {
        var p = RestartPolicy(maxRestarts: 1, window: .seconds(10), firstDelay: .milliseconds(100))
        let t = ContinuousClock.now
        #expect(p.recordFailure(at: t) == .restart(after: .milliseconds(100)))
        #expect(p.recordFailure(at: t + .seconds(11)) == .restart(after: .milliseconds(100)))
    }
}
