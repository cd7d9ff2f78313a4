import RegistryKit

/// What `peer-registry supervise CONFIG` runs: the `mcpServers` of a Claude Desktop
/// configuration file, with `enabled` and the per-server options of docs/SUPERVISOR.md.
///
/// ```json
/// {"mcpServers": {"files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "${HOME}"],
///                           "env": {"TOKEN": "${FILES_TOKEN:-none}"}, "shared": true}}}
/// ```
public struct SupervisorConfig: Sendable, Equatable {
    /// The servers to run (enabled ones only), in file order.
    public var servers: [ServerConfig]
    /// Names of entries present but disabled (`"enabled": false` or `"disabled": true`).
    public var disabled: [String]
    /// Things worth telling the operator that do not stop the supervisor (unknown options,
    /// remote entries skipped), each with its position.
    public var warnings: [String]

    public init(servers: [ServerConfig] = [], disabled: [String] = [], warnings: [String] = []) {
        self.servers = servers
        self.disabled = disabled
        self.warnings = warnings
    }
}

/// One supervised stdio server, fully resolved: `${VAR}` expanded, defaults filled.
public struct ServerConfig: Sendable, Equatable {
    /// The registry id (the entry's name in `mcpServers`, or its `id` option).
    public var id: String
    /// A display name for the registry entry (`name` option; default: the id).
    public var name: String
    /// The command as written (a path, or a name looked up in PATH when spawned).
    public var command: String
    public var args: [String]
    /// The child's environment exactly: a small default set (or the supervisor's whole
    /// environment with `inheritEnv`) with `env` laid over it.
    public var environment: [String: String]
    /// Working directory (nil: the supervisor's).
    public var cwd: String?

    /// One process multiplexed between sessions (by request-id rewriting) instead of one each.
    public var shared: Bool = false
    /// Start a process (and keep one running) before any session asks.
    public var eager: Bool = false
    /// Processes at most for this server (per-session mode).
    public var maxProcesses: Int = 16
    /// Sessions at most for this server.
    public var maxSessions: Int = 256
    /// A session with no request for this long is closed (seconds).
    public var idleTimeout: Double = 600
    /// A request unanswered for this long gets a JSON-RPC error (seconds).
    public var requestTimeout: Double = 30
    /// A process that has not answered `initialize` this long after it was spawned is a failed
    /// start (seconds): `npx` and `uvx` may download first.
    public var startTimeout: Double = 60
    /// Between SIGTERM and SIGKILL when a process is stopped (seconds).
    public var stopTimeout: Double = 5
    /// How long a shared process outlives its last session (seconds).
    public var lingerTimeout: Double = 30
    /// Between SSE keep-alive comments on open streams (seconds).
    public var keepAlive: Double = 30
    /// Loopback port of the bridge (0: any free one).
    public var port: Int = 0
    /// More than this many failures within `restartWindow` is a crash loop.
    public var maxRestarts: Int = 5
    /// The window crash-loop detection counts failures in (seconds).
    public var restartWindow: Double = 60
    /// The first restart delay (seconds); it doubles with each failure in the window, up to 30 s.
    public var restartDelay: Double = 0.25

    public init(id: String, command: String, args: [String] = [], environment: [String: String] = [:], cwd: String? = nil) {
        self.id = id
        self.name = id
        self.command = command
        self.args = args
        self.environment = environment
        self.cwd = cwd
    }
}

/// A configuration that cannot be used: where and why. Nothing is started (or, on reload,
/// changed) because of a file with an error.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    /// 1-based line and column (in bytes) of the offending value; 0 when not about a place.
    public var line: Int
    public var column: Int
    public var message: String

    public var description: String {
        line > 0 ? "\(file):\(line):\(column): \(message)" : "\(file): \(message)"
    }
}

extension SupervisorConfig {
    /// Variables a child gets without `inheritEnv` (as the MCP SDKs' stdio clients do), when
    /// the supervisor has them.
    public static let defaultInheritedVariables = ["HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LC_ALL", "TMPDIR"]

    /// Parses a configuration file's bytes.
    /// - Parameters:
    ///   - file: the name used in error messages.
    ///   - environment: what `${VAR}` expands from (the supervisor's environment).
    /// - Throws: `ConfigError` naming line, column, server and field.
    public static func parse(_ bytes: [UInt8], file: String, environment: [String: String]) throws(ConfigError) -> SupervisorConfig {
        let lines = LineIndex(bytes)
        func fail(_ offset: Int, _ message: String) -> ConfigError {
            let (line, column) = lines.position(offset)
            return ConfigError(file: file, line: line, column: column, message: message)
        }
        let root: PositionedJSON
        do {
            root = try PositionedJSON.parse(bytes)
        } catch {
            throw fail(error.offset, "invalid JSON: \(error.message)")
        }
        guard case .object(let top, _) = root else { throw fail(root.offset, "expected an object with \"mcpServers\"") }
        guard let serversMember = top.first(where: { $0.key == "mcpServers" }) else {
            throw fail(root.offset, "no \"mcpServers\" object (the Claude Desktop format: {\"mcpServers\": {\"name\": {\"command\": ...}}})")
        }
        guard case .object(let entries, _) = serversMember.value else {
            throw fail(serversMember.value.offset, "\"mcpServers\" must be an object, not \(serversMember.value.typeName)")
        }
        var config = SupervisorConfig()
        var ids: [String: Int] = [:]
        var ports: [Int: String] = [:]
        for entry in entries {
            let where_ = "server \"\(entry.key)\""
            guard case .object(let fields, let entryOffset) = entry.value else {
                throw fail(entry.value.offset, "\(where_): expected an object, not \(entry.value.typeName)")
            }
            func field(_ name: String) -> PositionedJSON? { fields.first(where: { $0.key == name })?.value }
            func string(_ name: String) throws(ConfigError) -> String? {
                guard let v = field(name) else { return nil }
                guard case .string(let s, _) = v else { throw fail(v.offset, "\(where_) field \"\(name)\": expected a string, not \(v.typeName)") }
                return s
            }
            func bool(_ name: String) throws(ConfigError) -> Bool? {
                guard let v = field(name) else { return nil }
                guard case .bool(let b, _) = v else { throw fail(v.offset, "\(where_) field \"\(name)\": expected true or false, not \(v.typeName)") }
                return b
            }
            func number(_ name: String, _ range: ClosedRange<Double>) throws(ConfigError) -> Double? {
                guard let v = field(name) else { return nil }
                guard case .number(let text, _) = v, let d = Double(text), range.contains(d) else {
                    throw fail(v.offset, "\(where_) field \"\(name)\": expected a number from \(format(range.lowerBound)) to \(format(range.upperBound))")
                }
                return d
            }
            func integer(_ name: String, _ range: ClosedRange<Int>) throws(ConfigError) -> Int? {
                guard let d = try number(name, Double(range.lowerBound)...Double(range.upperBound)) else { return nil }
                guard d == d.rounded(), let v = field(name) else {
                    throw fail(field(name)?.offset ?? entryOffset, "\(where_) field \"\(name)\": expected a whole number")
                }
                _ = v
                return Int(d)
            }
            func expand(_ text: String, _ fieldName: String, _ offset: Int) throws(ConfigError) -> String {
                do {
                    return try VariableExpansion.expand(text, environment: environment)
                } catch {
                    throw fail(offset, "\(where_) field \"\(fieldName)\": \(error.message)")
                }
            }

            let enabled = try bool("enabled") ?? true
            let disabled = try bool("disabled") ?? false
            let command = try string("command")
            if command == nil {
                if field("url") != nil || field("serverUrl") != nil {
                    let (l, c) = lines.position(entryOffset)
                    config.warnings.append("\(file):\(l):\(c): \(where_) is a remote server (\"url\", no \"command\"): not supervised")
                    continue
                }
                if !enabled || disabled { config.disabled.append(entry.key); continue }
                throw fail(entryOffset, "\(where_): no \"command\" (the program to run, e.g. \"npx\" or \"/usr/bin/python3\")")
            }
            if let type = try string("type"), type != "stdio" {
                let (l, c) = lines.position(entryOffset)
                config.warnings.append("\(file):\(l):\(c): \(where_) has \"type\": \"\(type)\": only stdio servers are supervised; skipped")
                continue
            }
            let id = try string("id") ?? entry.key
            guard ServerEntry.isValidID(id) else {
                throw fail(field("id")?.offset ?? entry.keyOffset, "\(where_): \"\(id)\" is not a valid registry id (1-64 of A-Z a-z 0-9 _ -, starting with a letter or digit); add an \"id\" option")
            }
            if let previous = ids[id] {
                let (l, _) = lines.position(previous)
                throw fail(entry.keyOffset, "\(where_): id \"\(id)\" is already used by the server on line \(l)")
            }
            ids[id] = entry.keyOffset

            guard let commandValue = field("command"), let rawCommand = command else { continue }
            let expandedCommand = try expand(rawCommand, "command", commandValue.offset)
            if expandedCommand.isEmpty { throw fail(commandValue.offset, "\(where_) field \"command\": empty") }
            var args: [String] = []
            if let a = field("args") {
                guard case .array(let items, _) = a else { throw fail(a.offset, "\(where_) field \"args\": expected an array of strings, not \(a.typeName)") }
                for (k, item) in items.enumerated() {
                    guard case .string(let s, let o) = item else { throw fail(item.offset, "\(where_) field \"args[\(k)]\": expected a string, not \(item.typeName)") }
                    args.append(try expand(s, "args[\(k)]", o))
                }
            }
            let inherit = try bool("inheritEnv") ?? false
            var env: [String: String] = [:]
            if inherit {
                env = environment
            } else {
                for name in defaultInheritedVariables { if let v = environment[name] { env[name] = v } }
            }
            if let e = field("env") {
                guard case .object(let vars, _) = e else { throw fail(e.offset, "\(where_) field \"env\": expected an object of strings, not \(e.typeName)") }
                for v in vars {
                    guard case .string(let s, let o) = v.value else {
                        throw fail(v.value.offset, "\(where_) field \"env.\(v.key)\": expected a string, not \(v.value.typeName)")
                    }
                    if v.key.isEmpty || v.key.contains("=") || v.key.utf8.contains(0) {
                        throw fail(v.keyOffset, "\(where_) field \"env\": \"\(v.key)\" is not a valid variable name")
                    }
                    env[v.key] = try expand(s, "env.\(v.key)", o)
                }
            }
            for (k, v) in env where v.utf8.contains(0) {
                throw fail(field("env")?.offset ?? entryOffset, "\(where_) field \"env.\(k)\": contains a NUL byte")
            }
            if args.contains(where: { $0.utf8.contains(0) }) || expandedCommand.utf8.contains(0) {
                throw fail(field("args")?.offset ?? commandValue.offset, "\(where_): an argument contains a NUL byte")
            }
            var server = ServerConfig(id: id, command: expandedCommand, args: args, environment: env)
            if let c = field("cwd"), let s = try string("cwd") { server.cwd = try expand(s, "cwd", c.offset) }
            if let n = try string("name") { server.name = n }
            server.shared = try bool("shared") ?? false
            server.eager = try bool("eager") ?? false
            server.maxProcesses = try integer("maxProcesses", 1...1024) ?? server.maxProcesses
            server.maxSessions = try integer("maxSessions", 1...100_000) ?? server.maxSessions
            server.idleTimeout = try number("idleTimeout", 0.05...86_400 * 7) ?? server.idleTimeout
            server.requestTimeout = try number("requestTimeout", 0.05...86_400) ?? server.requestTimeout
            server.startTimeout = try number("startTimeout", 0.05...86_400) ?? server.startTimeout
            server.stopTimeout = try number("stopTimeout", 0...600) ?? server.stopTimeout
            server.lingerTimeout = try number("lingerTimeout", 0...86_400) ?? server.lingerTimeout
            server.keepAlive = try number("keepAlive", 0.05...3600) ?? server.keepAlive
            server.port = try integer("port", 0...65535) ?? 0
            server.maxRestarts = try integer("maxRestarts", 0...1000) ?? server.maxRestarts
            server.restartWindow = try number("restartWindow", 0.1...86_400) ?? server.restartWindow
            server.restartDelay = try number("restartDelay", 0...60) ?? server.restartDelay
            if server.port != 0 {
                if let other = ports[server.port] {
                    throw fail(field("port")?.offset ?? entryOffset, "\(where_) field \"port\": \(server.port) is also the port of server \"\(other)\"")
                }
                ports[server.port] = id
            }
            for f in fields where !knownFields.contains(f.key) && !ignoredFields.contains(f.key) {
                let (l, c) = lines.position(f.keyOffset)
                config.warnings.append("\(file):\(l):\(c): \(where_): unknown option \"\(f.key)\" ignored (known: \(knownFields.sorted().joined(separator: ", ")))")
            }
            if !enabled || disabled {
                config.disabled.append(id)
            } else {
                config.servers.append(server)
            }
        }
        return config
    }

    static let knownFields: Set<String> = [
        "command", "args", "env", "cwd", "enabled", "disabled", "id", "name", "type", "shared", "eager", "maxProcesses",
        "maxSessions", "idleTimeout", "requestTimeout", "startTimeout", "stopTimeout", "lingerTimeout", "keepAlive", "port",
        "maxRestarts", "restartWindow", "restartDelay", "inheritEnv",
    ]
    /// Options other clients' configurations carry (Cline, Cursor, Windsurf) that mean nothing here.
    static let ignoredFields: Set<String> = ["autoApprove", "alwaysAllow", "timeout", "transportType", "description", "url", "headers"]

    private static func format(_ d: Double) -> String {
        d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
    }
}

/// `${VAR}` and `${VAR:-default}` in configuration strings; `$$` is a literal `$`, and a `$`
/// not followed by `{` or `$` stays as it is.
public enum VariableExpansion {
    public struct Failure: Error, Sendable { public var message: String }

    public static func expand(_ text: String, environment: [String: String]) throws(Failure) -> String {
        guard text.utf8.contains(UInt8(ascii: "$")) else { return text }
        let b = Array(text.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < b.count {
            guard b[i] == UInt8(ascii: "$"), i + 1 < b.count else { out.append(b[i]); i += 1; continue }
            if b[i + 1] == UInt8(ascii: "$") { out.append(UInt8(ascii: "$")); i += 2; continue }
            guard b[i + 1] == UInt8(ascii: "{") else { out.append(b[i]); i += 1; continue }
            guard let close = b[(i + 2)...].firstIndex(of: UInt8(ascii: "}")) else {
                throw Failure(message: "\"${\" without a closing \"}\" in \"\(text)\"")
            }
            let inner = Array(b[(i + 2)..<close])
            var name = inner
            var fallback: [UInt8]?
            if let colon = inner.firstIndex(of: UInt8(ascii: ":")) {
                guard colon + 1 < inner.count, inner[colon + 1] == UInt8(ascii: "-") else {
                    throw Failure(message: "\"${\(String(decoding: inner, as: UTF8.self))}\": only ${VAR} and ${VAR:-default} are understood")
                }
                name = Array(inner[..<colon])
                fallback = Array(inner[(colon + 2)...])
            }
            let nameString = String(decoding: name, as: UTF8.self)
            guard isVariableName(name) else {
                throw Failure(message: "\"${\(String(decoding: inner, as: UTF8.self))}\": \"\(nameString)\" is not a variable name")
            }
            if let value = environment[nameString], !(value.isEmpty && fallback != nil) {
                out.append(contentsOf: value.utf8)
            } else if let fallback {
                out.append(contentsOf: fallback)
            } else {
                throw Failure(message: "${\(nameString)} is not set (set it, or write ${\(nameString):-default})")
            }
            i = close + 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func isVariableName(_ b: [UInt8]) -> Bool {
        guard let first = b.first, first == UInt8(ascii: "_") || (first | 0x20 >= 0x61 && first | 0x20 <= 0x7A) else { return false }
        return b.allSatisfy { $0 == UInt8(ascii: "_") || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) }
    }
}

/// Byte offsets to 1-based line and column.
struct LineIndex {
    private var starts: [Int] = [0]

    init(_ b: [UInt8]) {
        for (i, c) in b.enumerated() where c == 0x0A { starts.append(i + 1) }
    }

    func position(_ offset: Int) -> (line: Int, column: Int) {
        var lo = 0, hi = starts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if starts[mid] <= offset { lo = mid } else { hi = mid - 1 }
        }
        return (lo + 1, offset - starts[lo] + 1)
    }
}
