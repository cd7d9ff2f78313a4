#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A server's standard error: the last lines in memory (for `health.message` and the status
/// page), and everything in a log file of bounded size (`<id>.log`, rotated once to
/// `<id>.log.1`). A server that floods stderr costs bounded memory and disk.
public final class StderrLog: Sendable {
    /// Lines kept in memory at most.
    public let maxLines: Int
    /// The longest line kept in memory, in bytes (longer ones are cut).
    public let maxLineBytes: Int
    /// The log file's size at which it is rotated.
    public let maxFileBytes: Int
    /// The log file (nil: no file).
    public let path: String?

    private struct State {
        var lines: [String] = []
        var head = 0
        var partial: [UInt8] = []
        var fd: Int32 = -1
        var written = 0
        var totalBytes = 0
    }
    private let state: Mutex<State>

    public init(path: String?, maxLines: Int = 200, maxLineBytes: Int = 1024, maxFileBytes: Int = 8 << 20) {
        self.path = path
        self.maxLines = max(1, maxLines)
        self.maxLineBytes = max(16, maxLineBytes)
        self.maxFileBytes = max(4096, maxFileBytes)
        var s = State()
        if let path {
            s.fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
            var st = stat()
            if s.fd >= 0, fstat(s.fd, &st) == 0 { s.written = Int(st.st_size) }
        }
        state = Mutex(s)
    }

    deinit {
        state.withLock { s in if s.fd >= 0 { close(s.fd); s.fd = -1 } }
    }

    /// A line of the supervisor's own about this server (start, exit), in the file and the ring.
    public func note(_ text: String) {
        append(Array(("[supervisor] " + text + "\n").utf8))
    }

    /// Bytes read from a process's stderr.
    public func append(_ bytes: [UInt8]) {
        state.withLock { s in
            s.totalBytes += bytes.count
            writeFile(&s, bytes)
            var start = 0
            for (i, b) in bytes.enumerated() where b == 0x0A {
                pushLine(&s, bytes[start..<i])
                start = i + 1
            }
            if start < bytes.count {
                s.partial.append(contentsOf: bytes[start...].prefix(maxLineBytes - min(maxLineBytes, s.partial.count)))
            }
        }
    }

    private func pushLine(_ s: inout State, _ tail: ArraySlice<UInt8>) {
        var line = s.partial
        s.partial.removeAll(keepingCapacity: true)
        line.append(contentsOf: tail.prefix(maxLineBytes - min(maxLineBytes, line.count)))
        if line.last == 0x0D { line.removeLast() }
        let text = String(decoding: line, as: UTF8.self)
        if s.lines.count < maxLines {
            s.lines.append(text)
        } else {
            s.lines[s.head] = text
            s.head = (s.head + 1) % maxLines
        }
    }

    private func writeFile(_ s: inout State, _ bytes: [UInt8]) {
        guard s.fd >= 0, let path else { return }
        if s.written + bytes.count > maxFileBytes {
            close(s.fd)
            rename(path, path + ".1")
            s.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o600)
            s.written = 0
            guard s.fd >= 0 else { return }
        }
        bytes.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = write(s.fd, raw.baseAddress.map { $0 + off }, raw.count - off)
                if n <= 0 { if n < 0, errno == EINTR { continue }; break }
                off += n
            }
        }
        s.written += bytes.count
    }

    /// The last `n` lines (oldest first), including an unfinished last line.
    public func lastLines(_ n: Int) -> [String] {
        state.withLock { s in
            var ordered = Array(s.lines[s.head...]) + Array(s.lines[..<s.head])
            if !s.partial.isEmpty { ordered.append(String(decoding: s.partial, as: UTF8.self)) }
            return Array(ordered.suffix(max(0, n)))
        }
    }

    /// Bytes seen on stderr in all.
    public var totalBytes: Int { state.withLock { $0.totalBytes } }
}
