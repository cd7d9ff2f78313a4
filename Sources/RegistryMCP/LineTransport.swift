import Logging
import MCP
import Synchronization

import class Foundation.Thread
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
/// Reading is a blocking `read` on a thread of its own (no polling); writing is a blocking
/// `write` of each message and its newline, one message at a time.
public actor LineTransport: MCP.Transport {
    /// The default cap on a message line: 4 MiB, the same as `mcp --http`'s request body.
    public static let defaultMaxLineBytes = 4 << 20

    public nonisolated let logger: Logger
    public let maxLineBytes: Int
    private let input: Int32
    private let writer: LineWriter
    private let splitter: LineSplitter
    private var started = false
    private let stream: AsyncThrowingStream<Data, Swift.Error>

    public init(input: Int32 = STDIN_FILENO, output: Int32 = STDOUT_FILENO, maxLineBytes: Int = LineTransport.defaultMaxLineBytes, logger: Logger? = nil) {
        self.input = input
        self.maxLineBytes = max(1, maxLineBytes)
        let logger = logger ?? Logger(label: "peer-registry.mcp.stdio", factory: { _ in SwiftLogNoOpLogHandler() })
        self.logger = logger
        let (stream, continuation) = AsyncThrowingStream<Data, Swift.Error>.makeStream()
        self.stream = stream
        self.writer = LineWriter(fd: output)
        self.splitter = LineSplitter(maxLineBytes: max(1, maxLineBytes), continuation: continuation, writer: writer, logger: logger)
    }

    public func connect() async throws {
        guard !started else { return }
        started = true
        let fd = input
        let splitter = self.splitter
        // Reading a pipe or terminal is a blocking call by nature: one thread of its own makes
        // it, so the cooperative pool never blocks. It ends at the end of the input, which is
        // also when the session ends (`peer-registry mcp` stops when its input ends).
        let thread = Thread {
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { break }
                splitter.consume(chunk[0..<n])
            }
            splitter.end()
        }
        thread.name = "peer-registry.mcp.stdin"
        thread.start()
    }

    public func disconnect() async {
        splitter.finish()
    }

    public func send(_ data: Data) async throws {
        var bytes = [UInt8](data)
        bytes.append(UInt8(ascii: "\n"))
        try writer.writeAll(bytes)
    }

    public func receive() -> AsyncThrowingStream<Data, Swift.Error> { stream }
}

/// Splits input into lines, searching only the bytes just read; used by the reading thread only.
final class LineSplitter: @unchecked Sendable {
    private let maxLineBytes: Int
    private let continuation: AsyncThrowingStream<Data, Swift.Error>.Continuation
    private let writer: LineWriter
    private let logger: Logger
    /// The current partial line (never more than `maxLineBytes`).
    private var pending: [UInt8] = []
    /// Skipping the rest of a line that was too long.
    private var discarding = false

    init(maxLineBytes: Int, continuation: AsyncThrowingStream<Data, Swift.Error>.Continuation, writer: LineWriter, logger: Logger) {
        self.maxLineBytes = maxLineBytes
        self.continuation = continuation
        self.writer = writer
        self.logger = logger
    }

    func consume(_ bytes: ArraySlice<UInt8>) {
        var start = bytes.startIndex
        while start < bytes.endIndex {
            guard let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) else {
                append(bytes[start...])
                break
            }
            append(bytes[start..<newline])
            finishLine()
            start = newline + 1
        }
    }

    /// The input ended: a last line without a newline still counts.
    func end() {
        if !pending.isEmpty || discarding { finishLine() }
        finish()
    }

    func finish() { continuation.finish() }

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
            try? writer.writeAll(Array(error.utf8))
            return
        }
        var line = pending
        pending = []
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        // Blank lines between messages are not messages.
        guard line.contains(where: { $0 != 0x20 && $0 != 0x09 }) else { return }
        continuation.yield(Data(line))
    }
}

/// Writes whole messages to the output descriptor, one at a time.
final class LineWriter: Sendable {
    private let fd: Int32
    private let lock = Mutex(())

    init(fd: Int32) { self.fd = fd }

    func writeAll(_ bytes: [UInt8]) throws {
        try lock.withLock { _ throws in
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                if n < 0, errno == EINTR || errno == EAGAIN { continue }
                guard n > 0 else { throw MCPError.transportError(WriteFailed(message: String(cString: strerror(errno)))) }
                offset += n
            }
        }
    }
}

/// A write to the output descriptor failed (the client closed it, say).
struct WriteFailed: Error, CustomStringConvertible {
    var message: String
    var description: String { "cannot write to the client: \(message)" }
}
