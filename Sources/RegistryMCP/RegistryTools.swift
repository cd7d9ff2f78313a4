import MCP
import RegistryKit

/// The registry's MCP tools: their definitions and what a call does.
///
/// Errors follow the MCP specification (2025-11-25, "Error Handling"): an unknown tool is a
/// protocol error (JSON-RPC -32602); bad or missing arguments, an unknown id, an ambiguous name
/// and an unreadable registry are tool execution errors — a result with `isError: true` and a
/// message saying what was wrong — so an agent can read them and correct its call.
public struct RegistryTools: Sendable {
    /// The live servers, optionally filtered (seed 004's name).
    public static let list = "instances/list"
    /// One live entry by id.
    public static let get = "servers/get"
    /// The server that handles a tool, resource or prompt.
    public static let resolve = "servers/resolve"
    /// A server's health, optionally probed first.
    public static let health = "servers/health"
    /// Every tool, in the order `tools/list` gives them.
    public static let names = [list, get, resolve, health]

    /// The registry the tools read (and `servers/health` with `probe` writes).
    public let registry: Registry
    /// How `servers/health` probes.
    public let probePolicy: ProbePolicy

    /// Tools on `registry`.
    public init(registry: Registry, probePolicy: ProbePolicy = ProbePolicy()) {
        self.registry = registry
        self.probePolicy = probePolicy
    }

    /// The tools as `tools/list` describes them, with input and output schemas.
    public static let definitions: [Tool] = [
        Tool(
            name: list,
            title: "List registered MCP servers",
            description: """
                The live MCP servers registered on this machine, with their URL, transport, \
                declared tools/resources/prompts and health. Dead registrants never appear. \
                Optional filters (all must hold): healthy (true: only HEALTHY; false: only \
                servers that are not HEALTHY), transport (http, sse, ws or stdio), tool (only \
                servers declaring that tool name), scope ("cluster": also the servers of the other \
                machines, mirrored by the cluster agent, each with its "node").
                """,
            inputSchema: [
                "type": "object",
                "properties": [
                    "healthy": ["type": "boolean", "description": "true: only HEALTHY servers; false: only servers that are not HEALTHY."],
                    "transport": ["type": "string", "enum": .array(Schemas.transports)],
                    "tool": ["type": "string", "minLength": 1, "description": "Only servers declaring this tool name."],
                    "scope": Schemas.scopeArgument,
                ],
                "additionalProperties": false,
            ],
            annotations: .init(readOnlyHint: true, idempotentHint: true, openWorldHint: false),
            outputSchema: Schemas.listing
        ),
        Tool(
            name: get,
            title: "Get one registered server",
            description: "The live registry entry with this id. Fails when no live server has it.",
            inputSchema: [
                "type": "object",
                "properties": ["id": Schemas.idArgument],
                "required": ["id"],
                "additionalProperties": false,
            ],
            annotations: .init(readOnlyHint: true, idempotentHint: true, openWorldHint: false),
            outputSchema: Schemas.entry
        ),
        Tool(
            name: resolve,
            title: "Which server handles a tool, resource or prompt",
            description: """
                The one live server that handles a capability. Tools and prompts: "server.name" is \
                qualified; a bare name goes to the one server declaring it, preferring HEALTHY over \
                DEGRADED over UNKNOWN (DOWN servers never resolve); a tie is an error listing the \
                candidates. Resources: the longest declared prefix of the URI wins. With scope \
                "cluster", the other machines' servers are candidates too (at equal health a local \
                server wins).
                """,
            inputSchema: [
                "type": "object",
                "properties": [
                    "kind": ["type": "string", "enum": ["tool", "resource", "prompt"]],
                    "name": ["type": "string", "minLength": 1, "description": "A tool or prompt name (bare or server-qualified), or a resource URI."],
                    "scope": Schemas.scopeArgument,
                ],
                "required": ["kind", "name"],
                "additionalProperties": false,
            ],
            annotations: .init(readOnlyHint: true, idempotentHint: true, openWorldHint: false),
            outputSchema: Schemas.resolution
        ),
        Tool(
            name: health,
            title: "Health of a registered server",
            description: """
                The health last reported or probed for a server. With probe: true, first probes it \
                by its transport (an MCP ping over HTTP, a TCP connect for ws) and records the \
                result: HEALTHY on success; DEGRADED, then DOWN after repeated failures.
                """,
            inputSchema: [
                "type": "object",
                "properties": [
                    "id": Schemas.idArgument,
                    "probe": ["type": "boolean", "default": false, "description": "Probe the server now and record the result."],
                ],
                "required": ["id"],
                "additionalProperties": false,
            ],
            annotations: .init(readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true),
            outputSchema: Schemas.healthReport
        ),
    ]

    /// Runs a tool. Every failure that is the caller's or the registry's comes back as an
    /// `isError` result; only an unknown tool name throws.
    /// - Throws: `MCPError.invalidParams` for a tool this server does not have.
    public func call(_ name: String, arguments: [String: Value]?) async throws(MCPError) -> CallTool.Result {
        guard Self.names.contains(name) else {
            throw MCPError.invalidParams("Unknown tool: \"\(name.prefix(100))\" (this server has \(Self.names.joined(separator: ", ")))")
        }
        do throws(ToolFailure) {
            let structured: JSONObject
            switch name {
            case Self.list: structured = try listInstances(Arguments(arguments, tool: name, known: ["healthy", "transport", "tool", "scope"]))
            case Self.get: structured = try getServer(Arguments(arguments, tool: name, known: ["id"]))
            case Self.resolve: structured = try resolveName(Arguments(arguments, tool: name, known: ["kind", "name", "scope"]))
            default: structured = try await reportHealth(Arguments(arguments, tool: name, known: ["id", "probe"]))
            }
            return CallTool.Result(
                content: [.text(text: JSONValue.object(structured).jsonText, annotations: nil, _meta: nil)],
                structuredContent: .object(structured.mcpValue),
                isError: false
            )
        } catch {
            return CallTool.Result(content: [.text(text: error.message, annotations: nil, _meta: nil)], isError: true)
        }
    }

    // MARK: - The tools

    private func listInstances(_ args: Arguments) throws(ToolFailure) -> JSONObject {
        var filter = ServerFilter()
        filter.healthy = try args.bool("healthy")
        if let t = try args.string("transport") {
            guard let transport = RegistryKit.Transport(rawValue: t) else {
                throw args.failure("argument \"transport\" must be one of http, sse, ws, stdio (got \"\(t.prefix(40))\")")
            }
            filter.transport = transport
        }
        filter.tool = try args.string("tool")
        filter.scope = try args.scope()
        return try registryCall { () throws(RegistryError) in try registry.list(filter).view }
    }

    private func getServer(_ args: Arguments) throws(ToolFailure) -> JSONObject {
        let id = try args.id()
        return try registryCall { () throws(RegistryError) in try registry.get(id).view }
    }

    private func resolveName(_ args: Arguments) throws(ToolFailure) -> JSONObject {
        guard let kindName = try args.string("kind", required: true) else { throw args.failure("argument \"kind\" is required") }
        let kind: CapabilityKind
        switch kindName {
        case "tool": kind = .tool
        case "resource": kind = .resource
        case "prompt": kind = .prompt
        default: throw args.failure("argument \"kind\" must be \"tool\", \"resource\" or \"prompt\" (got \"\(kindName.prefix(40))\")")
        }
        guard let name = try args.string("name", required: true) else { throw args.failure("argument \"name\" is required") }
        let scope = try args.scope()
        let server = try registryCall { () throws(RegistryError) in try registry.resolve(kind, name, scope: scope) }
        return JSONObject([("kind", .string(kind.name)), ("name", .string(name)), ("server", .object(server.view))])
    }

    private func reportHealth(_ args: Arguments) async throws(ToolFailure) -> JSONObject {
        let id = try args.id()
        let probe = try args.bool("probe") ?? false
        let entry: ServerEntry
        if probe {
            do throws(RegistryError) {
                entry = try await registry.probe(id, policy: probePolicy)
            } catch {
                throw ToolFailure(error)
            }
        } else {
            entry = try registryCall { () throws(RegistryError) in try registry.get(id) }
        }
        return JSONObject([("id", .string(entry.id)), ("probed", .bool(probe)), ("health", .object(entry.healthView))])
    }

    private func registryCall<T>(_ body: () throws(RegistryError) -> T) throws(ToolFailure) -> T {
        do throws(RegistryError) { return try body() } catch { throw ToolFailure(error) }
    }
}

/// Why a tool call failed, as the text of an `isError` result.
struct ToolFailure: Error {
    var message: String
    init(_ message: String) { self.message = message }
    /// Registry errors keep their code name, so a caller can tell "not found" from "ambiguous".
    init(_ error: RegistryError) { self.message = "\(error.code.name): \(error.message)" }
}

/// A tool's arguments, checked: unknown names and wrong types are failures that say so.
struct Arguments {
    let tool: String
    let values: [String: Value]

    init(_ values: [String: Value]?, tool: String, known: [String]) throws(ToolFailure) {
        self.tool = tool
        self.values = values ?? [:]
        if let unknown = self.values.keys.sorted().first(where: { !known.contains($0) }) {
            throw ToolFailure("\(tool): unknown argument \"\(unknown.prefix(64))\" (it takes \(known.joined(separator: ", ")))")
        }
    }

    func failure(_ message: String) -> ToolFailure { ToolFailure("\(tool): \(message)") }

    /// A string argument; nil when absent or null (a failure if `required`). Empty strings fail.
    func string(_ key: String, required: Bool = false) throws(ToolFailure) -> String? {
        switch values[key] {
        case nil, .null?:
            if required { throw failure("argument \"\(key)\" is required") }
            return nil
        case .string(let s)?:
            guard !s.isEmpty else { throw failure("argument \"\(key)\" must not be empty") }
            return s
        case .data?:
            throw failure("argument \"\(key)\" must be a plain string; data: URLs are not names")
        case let other?:
            throw failure("argument \"\(key)\" must be a string, not \(Arguments.typeName(other))")
        }
    }

    func bool(_ key: String) throws(ToolFailure) -> Bool? {
        switch values[key] {
        case nil, .null?: return nil
        case .bool(let b)?: return b
        case let other?: throw failure("argument \"\(key)\" must be a boolean (true or false), not \(Arguments.typeName(other))")
        }
    }

    /// The optional `scope` argument: `local` (the default) or `cluster`.
    func scope() throws(ToolFailure) -> EntryScope {
        guard let raw = try string("scope") else { return .local }
        guard let scope = EntryScope(rawValue: raw) else {
            throw failure("argument \"scope\" must be \"local\" or \"cluster\" (got \"\(raw.prefix(40))\")")
        }
        return scope
    }

    /// The required `id` argument, checked against the id syntax.
    func id() throws(ToolFailure) -> String {
        guard let id = try string("id", required: true) else { throw failure("argument \"id\" is required") }
        guard ServerEntry.isValidID(id) else {
            throw failure("argument \"id\": \"\(id.prefix(80))\" is not a server id (1-64 of A-Z a-z 0-9 _ -, starting with a letter or digit)")
        }
        return id
    }

    static func typeName(_ v: Value) -> String {
        switch v {
        case .null: "null"
        case .bool: "a boolean"
        case .int, .double: "a number"
        case .string, .data: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}
