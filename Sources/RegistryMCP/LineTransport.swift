import Dispatch
import Logging
import MCP

import struct Foundation.Data
#if canImport(Glibc)
import Glibc
#endif

/// MCP's stdio transport (newline-delimited JSON-RPC on two descriptors), reading in linear time
/// with a cap on the line length.
///
/// The SDK's `StdioTransport` searches its whole buffer for a newline after every 4 KB read,
/// so one long line costs quadratic time (a 10 MB line took minutes of CPU) and nothing bounds
/// it. This transport looks for the newline only in the bytes just read, and a line longer than
/// `maxLineBytes` is skipped up to its end: the client gets a JSON-RPC parse error (id null,
/// code -32700) naming the limit, and the session goes on.
///
/// Reading is driven by a `DispatchSource` on the input descriptor (no polling, no thread of
/// its own); writing is a blocking `write` of each message and its newline.
public actor LineTransport: MCP.Transport {
    /// The default cap on a message line: 4 MiB, the same as `mcp --http`'s request body.
    public static let defaultMaxLineBytes = 4 << 20

    public nonisolated let logger: Logger
    public let maxLineBytes: Int
    private let input: Int32
    private let output: Int32
    private var source: (any DispatchSourceRead)?
    private var continuation: AsyncThrowingStream<Data, Swift.Error>.Continuation?
    private let stream: AsyncThrowingStream<Data, Swift.Error>

    /// The current partial line (never more than `maxLineBytes`).
    private var pending: [UInt8] = []
    /// Skipping the rest of a line that was too long.
    private var discarding = false

    public init(input: Int32 = STDIN_FILENO, output: Int32 = STDOUT_FILENO, maxLineBytes: Int = LineTransport.defaultMaxLineBytes, logger: Logger? = nil) {
        self.input = input
        self.output = output
        self.maxLineBytes = max(1, maxLineBytes)
        self.logger = logger ?? Logger(label: "peer-registry.mcp.stdio", factory: { _ in SwiftLogNoOpLogHandler() })
        let (stream, continuation) = AsyncThrowingStream<Data, Swift.Error>.makeStream()
        self.stream = stream
        self.continuation = continuation
    }

    public func connect() async throws {
        guard source == nil else { return }
        let source = DispatchSource.makeReadSource(fileDescriptor: input, queue: DispatchQueue(label: "peer-registry.mcp.stdin"))
        let fd = input
        source.setEventHandler { [weak self] in
            // Readable: one read returns what is there without blocking (0 at the end).
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR || errno == EAGAIN { return }
            guard let self else { return }
            let bytes = n > 0 ? Array(chunk[0..<n]) : []
            let ended = n <= 0
            // The actor handles chunks in order: the source's queue is serial and each chunk is
            // handed over before the next event (`suspend` until it is consumed).
            let box = SourceBox(source: source)
            box.source.suspend()
            Task {
                await self.consume(bytes, ended: ended)
                if !ended { box.source.resume() }
            }
        }
        self.source = source
        source.resume()
    }

    public func disconnect() async {
        if let source {
            source.cancel()
            self.source = nil
        }
        continuation?.finish()
        continuation = nil
    }

    public func send(_ data: Data) async throws {
        var bytes = [UInt8](data)
        bytes.append(UInt8(ascii: "\n"))
        try writeAll(bytes)
    }

    public func receive() -> AsyncThrowingStream<Data, Swift.Error> { stream }

    private func writeAll(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(output, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR || errno == EAGAIN { continue }
            guard n > 0 else { throw MCPError.transportError(WriteFailed(message: String(cString: strerror(errno)))) }
            offset += n
        }
    }

    /// Splits `bytes` into lines; only the new bytes are searched.
    func consume(_ bytes: [UInt8], ended: Bool) {
        var start = 0
        while start < bytes.count {
            guard let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) else {
                append(bytes[start...])
                break
            }
            append(bytes[start..<newline])
            finishLine()
            start = newline + 1
        }
        if ended {
            if !pending.isEmpty || discarding { finishLine() }
            continuation?.finish()
            continuation = nil
        }
    }

    private func append(_ part: ArraySlice<UInt8>) {
        guard !discarding else { return }
        if pending.count + part.count > maxLineBytes {
            discarding = true
            pending = []
            return
        }
        pending.append(contentsOf: part)
    }

    private func finishLine() {
        if discarding {
            discarding = false
            logger.warning("skipped a message line over \(maxLineBytes) bytes")
            let error = "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"Parse error: a message line may hold at most \(maxLineBytes) bytes (peer-registry mcp --max-line-bytes); this one was skipped\"}}\n"
            try? writeAll(Array(error.utf8))
            return
        }
        var line = pending
        pending = []
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        // Blank lines between messages are not messages.
        guard line.contains(where: { $0 != 0x20 && $0 != 0x09 }) else { return }
        continuation?.yield(Data(line))
    }
}

/// A write to the output descriptor failed (the client closed it, say).
struct WriteFailed: Error, CustomStringConvertible {
    var message: String
    var description: String { "cannot write to the client: \(message)" }
}

/// A dispatch source handed to the task that resumes it (suspend and resume are thread-safe).
private struct SourceBox: @unchecked Sendable {
    let source: any DispatchSourceRead
}
