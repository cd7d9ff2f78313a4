#if canImport(Glibc)
import Glibc
#endif

/// The limits every server of this project applies to its clients (docs/CLI.md, "Limits"): how
/// many connections it holds, how long a client may take to send a request or sit idle, how long
/// a client that does not read may stall a write, how many bytes may wait for one client, and
/// how long a shutdown may take.
///
/// The defaults are the documented ones; `serve`, `mcp --http`, the supervisor's bridges and the
/// gateway all start from `ServerLimits()`.
public struct ServerLimits: Sendable, Equatable {
    /// Connections held at once. A new connection beyond this replaces the oldest connection that
    /// has no request in progress; when every connection is busy, it gets 503 and is closed.
    /// Never more than the process's descriptor limit allows (`effectiveMaxConnections`).
    public var maxConnections: Int
    /// From accepting a connection (or starting to read a request) to having the whole request
    /// head and body: a client that sends half a request is disconnected after this.
    public var requestTimeout: Duration
    /// How long a kept-alive connection may wait for its next request.
    public var idleTimeout: Duration
    /// How long a response may stay blocked on a client that does not read (the socket's buffer
    /// full) before the connection is closed.
    public var writeStallTimeout: Duration
    /// Bytes that may wait for one client (queued events or a response not yet accepted by its
    /// socket) besides the message being written; past it the client is disconnected.
    public var clientBufferBytes: Int
    /// After SIGTERM/SIGINT: in-flight requests get this long to finish, then every connection
    /// is closed and the process exits.
    public var shutdownDeadline: Duration
    /// The largest request body accepted (413 beyond).
    public var maxBodyBytes: Int

    public init(
        maxConnections: Int = 512,
        requestTimeout: Duration = .seconds(10),
        idleTimeout: Duration = .seconds(60),
        writeStallTimeout: Duration = .seconds(30),
        clientBufferBytes: Int = 4 << 20,
        shutdownDeadline: Duration = .seconds(3),
        maxBodyBytes: Int = 4 << 20
    ) {
        self.maxConnections = maxConnections
        self.requestTimeout = requestTimeout
        self.idleTimeout = idleTimeout
        self.writeStallTimeout = writeStallTimeout
        self.clientBufferBytes = clientBufferBytes
        self.shutdownDeadline = shutdownDeadline
        self.maxBodyBytes = maxBodyBytes
    }

    /// Descriptors kept free for the registry, its watch, logging and the listening socket.
    public static let reservedDescriptors = 32

    /// `maxConnections`, lowered so that the connections fit under `RLIMIT_NOFILE` with
    /// `reservedDescriptors` to spare (at least 1).
    public var effectiveMaxConnections: Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return max(1, maxConnections) }
        let available = Int(clamping: limit.rlim_cur) - Self.reservedDescriptors
        return max(1, min(maxConnections, available))
    }
}
