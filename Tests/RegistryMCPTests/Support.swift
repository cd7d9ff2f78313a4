import Foundation
import MCP
import RegistryKit
import RegistryMCP
import Synchronization

/// A registry in a fresh private directory, an MCP server on it, and an SDK client connected to
/// it through the SDK's in-memory transport pair.
struct Harness {
    let directory: String
    let path: String
    let registry: Registry
    let server: RegistryMCPServer
    let session: RegistryMCPSession
    let client: Client
    let initializeResult: Initialize.Result
    let notifications: NotificationLog

    /// - Parameter seed: ids of static entries registered before the server starts watching (so
    ///   they cause no notification).
    static func start(probePolicy: ProbePolicy = ProbePolicy(), seed: [String] = []) async throws -> Harness {
        var template = Array("/tmp/prk-mcp-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw HarnessError("mkdtemp failed") }
        let directory = String(cString: made)
        let path = directory + "/servers.json"
        let registry = try Registry(path: path)
        for id in seed { try registry.register(ServerEntry(id: id, url: "http://127.0.0.1:1/mcp", liveness: .none)) }
        let server = RegistryMCPServer(registry: registry, probePolicy: probePolicy)
        let session = await server.makeSession()
        let (clientTransport, serverTransport) = await InMemoryTransport.createConnectedPair()
        try await session.start(transport: serverTransport)
        let client = Client(name: "registry-mcp-tests", version: "1.0")
        let log = NotificationLog()
        await client.onNotification(ResourceUpdatedNotification.self) { message in
            log.append("updated " + message.params.uri)
        }
        await client.onNotification(ResourceListChangedNotification.self) { _ in
            log.append("list_changed")
        }
        let result = try await client.connect(transport: clientTransport)
        return Harness(directory: directory, path: path, registry: registry, server: server, session: session,
                       client: client, initializeResult: result, notifications: log)
    }

    func stop() async {
        await client.disconnect()
        await session.stop()
        await server.shutdown()
        registry.close()
        _ = try? FileManager.default.removeItem(atPath: directory)
    }

    /// Static entries (liveness `none`) stay registered whoever opened the handle.
    @discardableResult
    func add(_ id: String, url: String = "http://127.0.0.1:1/mcp", tools: [String] = [], resources: [String] = [],
             prompts: [String] = [], health: HealthStatus = .unknown) throws -> ServerEntry {
        try registry.register(ServerEntry(
            id: id, name: "Server \(id)", url: url, liveness: .none,
            capabilities: Capabilities(tools: tools, resources: resources, prompts: prompts),
            health: Health(status: health)))
    }

    /// The full `tools/call` result (the SDK's `callTool` drops `structuredContent`).
    func call(_ name: String, _ arguments: [String: Value]? = nil) async throws -> CallTool.Result {
        try await client.send(CallTool.request(.init(name: name, arguments: arguments))).value
    }

    /// Writes `text` over the registry file, as a broken writer would (mode 0600, like the library).
    func overwriteFile(_ text: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw HarnessError("open \(path): errno \(errno)") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else { throw HarnessError("write failed") }
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Notifications as they arrive.
final class NotificationLog: Sendable {
    private let items = Mutex<[String]>([])

    func append(_ s: String) { items.withLock { $0.append(s) } }
    var all: [String] { items.withLock { $0 } }
    func clear() { items.withLock { $0.removeAll() } }

    /// Waits (up to `timeout`) until `item` has arrived.
    func waitFor(_ item: String, timeout: Duration = .seconds(5)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if all.contains(item) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return all.contains(item)
    }
}

extension CallTool.Result {
    /// The text of the first content item.
    var text: String {
        for c in content { if case .text(let t, _, _) = c { return t } }
        return ""
    }

    /// The text content parsed as JSON into the SDK's `Value`, to compare with `structuredContent`.
    var textAsValue: Value? {
        try? JSONDecoder().decode(Value.self, from: Data(text.utf8))
    }

    var structured: [String: Value] { structuredContent?.objectValue ?? [:] }
}

extension Value {
    subscript(_ key: String) -> Value? { objectValue?[key] }
}

/// The error a request failed with, as the SDK client decodes it.
func mcpError(_ body: () async throws -> Void) async -> MCPError? {
    do {
        try await body()
        return nil
    } catch let error as MCPError {
        return error
    } catch {
        return .internalError("not an MCPError: \(error)")
    }
}

/// `tools/call` with raw parameters, to send what a well-behaved client would not.
enum RawCallTool: MCP.Method {
    static let name = "tools/call"
    typealias Parameters = Value
    typealias Result = CallTool.Result
}

/// `resources/read` with raw parameters.
enum RawReadResource: MCP.Method {
    static let name = "resources/read"
    typealias Parameters = Value
    typealias Result = ReadResource.Result
}

/// A method this server does not have.
enum NoSuchMethod: MCP.Method {
    static let name = "registry/format-disk"
    typealias Parameters = Empty
    typealias Result = Empty
}

/// Runs `body` with a fresh harness and stops it afterwards, whether `body` threw or not.
func withHarness(_ probePolicy: ProbePolicy = ProbePolicy(), seed: [String] = [], _ body: (Harness) async throws -> Void) async throws {
    let h = try await Harness.start(probePolicy: probePolicy, seed: seed)
    do {
        try await body(h)
    } catch {
        await h.stop()
        throw error
    }
    await h.stop()
}
