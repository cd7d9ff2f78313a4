#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The gateway over stdio: one session, one JSON-RPC message per line on standard input, answers
/// and notifications as lines on standard output (nothing else is written there). Requests run
/// concurrently (a `notifications/cancelled` can reach one in flight). Ends when input ends.
public enum GatewayStdio {
    public static let defaultMaxLineBytes = 16 << 20

    public static func serve(_ gateway: Gateway, input: Int32 = 0, output: Int32 = 1, maxLineBytes: Int = defaultMaxLineBytes) async {
        let writer = LineWriter(fd: output)
        let session = gateway.makeSession(id: "stdio") { writer.write($0) }
        let lines = LineReader.lines(fd: input, maxLineBytes: maxLineBytes)
        await withTaskGroup(of: Void.self) { group in
            for await line in lines {
                switch line {
                case .tooLong(let n):
                    writer.write(RPCMessage.error(id: nil, code: RPCErrorCode.parseError, message: "Parse error: a line of more than \(maxLineBytes) bytes (\(n) read) was skipped"))
                case .line(let bytes):
                    var i = 0
                    JSONBytes.skipSpace(bytes, &i)
                    if i == bytes.count { continue }
                    let message: RPCMessage
                    do { message = try RPCMessage(bytes) } catch {
                        writer.write(RPCMessage.error(id: nil, code: RPCErrorCode.parseError, message: "Parse error: \(error)"))
                        continue
                    }
                    if message.kind == .request {
                        group.addTask {
                            if let answer = await session.handle(message) { writer.write(answer) }
                        }
                    } else {
                        _ = await session.handle(message)
                    }
                }
            }
            await group.waitForAll()
        }
        session.close()
    }
}

/// Whole lines written to a descriptor, one writer at a time.
final class LineWriter: Sendable {
    let fd: Int32
    private let lock = Mutex<Bool>(false)  // true once the descriptor failed
    init(fd: Int32) { self.fd = fd }

    func write(_ message: [UInt8]) {
        var bytes = message
        bytes.append(0x0A)
        lock.withLock { failed in
            guard !failed else { return }
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress.map { $0 + offset }, $0.count - offset) }
                if n < 0 {
                    if errno == EINTR { continue }
                    failed = true
                    return
                }
                offset += n
            }
        }
    }
}

/// Lines read from a descriptor by a thread of its own (the cooperative pool never blocks).
enum LineReader {
    enum Line: Sendable {
        case line([UInt8])
        case tooLong(Int)
    }

    static func lines(fd: Int32, maxLineBytes: Int) -> AsyncStream<Line> {
        let (stream, continuation) = AsyncStream<Line>.makeStream(bufferingPolicy: .unbounded)
        let job = ReaderJob(fd: fd, maxLineBytes: maxLineBytes, continuation: continuation)
        let box = Unmanaged.passRetained(job).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            guard let raw else { return nil }
            Unmanaged<ReaderJob>.fromOpaque(raw).takeRetainedValue().run()
            return nil
        }, box)
        if rc == 0 {
            pthread_detach(thread)
        } else {
            Unmanaged<ReaderJob>.fromOpaque(box).release()
            continuation.finish()
        }
        return stream
    }

    final class ReaderJob: @unchecked Sendable {
        let fd: Int32
        let maxLineBytes: Int
        let continuation: AsyncStream<Line>.Continuation
        init(fd: Int32, maxLineBytes: Int, continuation: AsyncStream<Line>.Continuation) {
            self.fd = fd
            self.maxLineBytes = maxLineBytes
            self.continuation = continuation
        }

        func run() {
            var buffer = [UInt8](repeating: 0, count: 65536)
            var line: [UInt8] = []
            var dropped = 0
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0, errno == EINTR { continue }
                if n <= 0 { break }
                var start = 0
                for i in 0..<n where buffer[i] == 0x0A {
                    emit(&line, &dropped, buffer[start..<i])
                    start = i + 1
                }
                append(&line, &dropped, buffer[start..<n])
            }
            if !line.isEmpty || dropped > 0 { emit(&line, &dropped, []) }
            continuation.finish()
        }

        private func append(_ line: inout [UInt8], _ dropped: inout Int, _ part: ArraySlice<UInt8>) {
            if dropped > 0 || line.count + part.count > maxLineBytes {
                dropped += line.count + part.count
                line = []
            } else {
                line.append(contentsOf: part)
            }
        }

        private func emit(_ line: inout [UInt8], _ dropped: inout Int, _ part: ArraySlice<UInt8>) {
            append(&line, &dropped, part)
            if dropped > 0 { continuation.yield(.tooLong(dropped)) } else { continuation.yield(.line(line)) }
            line = []
            dropped = 0
        }
    }
}
