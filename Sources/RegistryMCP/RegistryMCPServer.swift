import MCP
import RegistryKit

/// The registry as an MCP server (docs/MCP.md): tools `instances/list`, `servers/get`,
/// `servers/resolve`, `servers/health`; resources `registry://servers` and
/// `registry://servers/<id>` with subscriptions; notifications when the registry changes.
///
/// One `RegistryMCPServer` serves any number of sessions (one on stdio, one per client over
/// HTTP); they share one watch on the registry. Nothing a client sends stops the server: bad
/// requests get MCP errors or `isError` results (see `RegistryTools`, `RegistryResources`).
public final class RegistryMCPServer: Sendable {
    /// The name this server reports in `initialize`.
    public static let name = "peer-registry"
    /// The version this server reports in `initialize` (the package's).
    public static let version = PeerRegistryVersion.text

    static let instructions = """
        This server is the registry of the MCP servers running on this machine (peer-registry). \
        instances/list shows the live servers (filters: healthy, transport, tool); \
        servers/resolve finds the one server that handles a tool, resource or prompt; \
        servers/get returns one entry; servers/health returns its health (probe: true checks it \
        now). The resource registry://servers holds the live list: subscribe to it to be told \
        when servers come and go.
        """

    /// The registry served (never closed by the server).
    public let registry: Registry
    /// The tools every session offers.
    public let tools: RegistryTools
    /// The resources every session offers.
    public let resources: RegistryResources
    let feed: ChangeFeed

    /// - Parameters:
    ///   - registry: the registry to serve; the server never closes it.
    ///   - probePolicy: how `servers/health` with `probe: true` probes.
    public init(registry: Registry, probePolicy: ProbePolicy = ProbePolicy()) {
        self.registry = registry
        self.tools = RegistryTools(registry: registry, probePolicy: probePolicy)
        self.resources = RegistryResources(registry: registry)
        self.feed = ChangeFeed(registry: registry)
    }

    /// A new session: an SDK `Server` with every handler registered, not yet started.
    public func makeSession() async -> RegistryMCPSession {
        let state = SessionState()
        let server = Server(
            name: Self.name,
            version: Self.version,
            title: "Peer registry",
            instructions: Self.instructions,
            capabilities: .init(resources: .init(subscribe: true, listChanged: true), tools: .init(listChanged: false))
        )
        let tools = self.tools
        let resources = self.resources

        await server.withMethodHandler(ListTools.self) { _ in
            ListTools.Result(tools: RegistryTools.definitions)
        }
        await server.withMethodHandler(CheckedCallTool.self) { params in
            let (name, arguments) = try CheckedCallTool.parse(params)
            return try await tools.call(name, arguments: arguments)
        }
        await server.withMethodHandler(ListResources.self) { _ in
            ListResources.Result(resources: resources.list())
        }
        await server.withMethodHandler(ListResourceTemplates.self) { _ in
            ListResourceTemplates.Result(templates: RegistryResources.templates)
        }
        await server.withMethodHandler(CheckedReadResource.self) { params in
            let uri = try uriParameter(params, method: ReadResource.name)
            return ReadResource.Result(contents: try resources.read(uri))
        }
        await server.withMethodHandler(CheckedSubscribe.self) { params in
            let uri = try uriParameter(params, method: ResourceSubscribe.name)
            guard RegistryResources.isKnownForm(uri) else {
                throw MCPError.serverError(code: RegistryResources.resourceNotFound, message: "Resource not found: \"\(uri.prefix(200))\" (subscribe to \(RegistryResources.serversURI) or \(RegistryResources.serverTemplate))")
            }
            await state.subscribe(uri)
            return Empty()
        }
        await server.withMethodHandler(CheckedUnsubscribe.self) { params in
            let uri = try uriParameter(params, method: ResourceUnsubscribe.name)
            await state.unsubscribe(uri)
            return Empty()
        }
        await server.onNotification(InitializedNotification.self) { _ in
            await state.markInitialized()
        }
        return RegistryMCPSession(server: server, state: state, feed: feed)
    }

    /// Serves one session on standard input and output until the input ends (and every request
    /// read has been answered). A message line longer than `maxLineBytes` gets a parse error
    /// and is skipped (`LineTransport`).
    public func serveStdio(maxLineBytes: Int = LineTransport.defaultMaxLineBytes) async throws {
        let session = await makeSession()
        try await session.start(transport: DrainingTransport(LineTransport(maxLineBytes: maxLineBytes)))
        await session.waitUntilCompleted()
        await session.stop()
    }

    /// Stops watching the registry (sessions get no more notifications).
    public func shutdown() async {
        await feed.stop()
    }
}

// The SDK decodes a request's parameters before calling a handler and answers a decoding
// failure with a bare "internal error". These variants take the parameters as any JSON value,
// so a malformed request gets -32602 (invalid params) with a message that says what is wrong.

enum CheckedCallTool: MCP.Method {
    static let name = CallTool.name
    typealias Parameters = Value
    typealias Result = CallTool.Result

    static func parse(_ params: Value) throws(MCPError) -> (String, [String: Value]?) {
        guard case .object(let o) = params, case .string(let name)? = o["name"] else {
            throw MCPError.invalidParams("tools/call needs params {\"name\": <tool name>, \"arguments\": {...}}")
        }
        switch o["arguments"] {
        case nil, .null?: return (name, nil)
        case .object(let args)?: return (name, args)
        default: throw MCPError.invalidParams("tools/call: \"arguments\" must be an object")
        }
    }
}

enum CheckedReadResource: MCP.Method {
    static let name = ReadResource.name
    typealias Parameters = Value
    typealias Result = ReadResource.Result
}

enum CheckedSubscribe: MCP.Method {
    static let name = ResourceSubscribe.name
    typealias Parameters = Value
    typealias Result = Empty
}

enum CheckedUnsubscribe: MCP.Method {
    static let name = ResourceUnsubscribe.name
    typealias Parameters = Value
    typealias Result = Empty
}

private func uriParameter(_ params: Value, method: String) throws(MCPError) -> String {
    guard case .object(let o) = params, case .string(let uri)? = o["uri"], !uri.isEmpty else {
        throw MCPError.invalidParams("\(method) needs params {\"uri\": <resource URI>}")
    }
    return uri
}
