import AsyncHTTPClient
import RegistryKit

/// Why an upstream session could not be started or used.
public struct UpstreamFailure: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

/// The result of a completed `initialize` with a backend.
public struct UpstreamHandshake: Sendable {
    /// The server's `initialize` response (its `result` holds capabilities, serverInfo, ...).
    public let response: RPCMessage
    /// Whether the server keeps state per session: it handed out an `Mcp-Session-Id`
    /// (streamable HTTP), or the transport is session-bound (legacy SSE: one stream, one session).
    public let hasSessionID: Bool
}

/// One MCP session of the gateway with a backend, whatever the transport: the gateway's
/// `Backend` and `GatewaySession` see only this. Messages go through `connection` (request-id
/// bookkeeping, timeouts, cancellation, progress), as they do for a supervised process.
///
/// - `HTTPUpstream`: streamable HTTP (MCP 2025-03-26 and later), entries with transport `http`.
/// - `SSEUpstream`: the legacy HTTP+SSE transport (MCP 2024-11-05), entries with transport `sse`.
/// - `LocalUpstream`: a server the gateway supervises itself, reached in process.
public protocol MCPUpstream: AnyObject, Sendable {
    var backendID: String { get }
    var url: String { get }
    var connection: UpstreamConnection { get }
    var requestTimeout: Duration { get }
    var isClosed: Bool { get }
    /// `initialize`, `notifications/initialized`, and whatever the transport needs to receive
    /// the server's own messages.
    func start() async -> Result<UpstreamHandshake, UpstreamFailure>
    /// Ends the session: pending requests get an error, the server is told when it can be.
    func close(reason: String)
}

public enum Upstreams {
    /// The transports the gateway connects to.
    public static let transports: Set<Transport> = [.http, .sse]

    /// An upstream session for an entry's transport (`sse`: the legacy client; otherwise
    /// streamable HTTP), not started yet; in process when `local` is the server behind it.
    /// - Parameter onFailure: called when the server cannot be reached (the gateway hides the backend).
    public static func make(
        transport: Transport?, backendID: String, url: String, headers: [String: String], client: HTTPClient,
        initializeParams: String, requestTimeout: Duration, exclusive: Bool, local: ServerSupervisor? = nil,
        onFailure: @escaping @Sendable (String) -> Void
    ) -> any MCPUpstream {
        if let local {
            return LocalUpstream(server: local, backendID: backendID, url: url, initializeParams: initializeParams,
                                 requestTimeout: requestTimeout, exclusive: exclusive)
        }
        switch transport {
        case .sse:
            return SSEUpstream(backendID: backendID, url: url, headers: headers, client: client, initializeParams: initializeParams,
                               requestTimeout: requestTimeout, exclusive: exclusive, onFailure: onFailure)
        default:
            return HTTPUpstream(backendID: backendID, url: url, headers: headers, client: client, initializeParams: initializeParams,
                                requestTimeout: requestTimeout, exclusive: exclusive, onFailure: onFailure)
        }
    }
}
