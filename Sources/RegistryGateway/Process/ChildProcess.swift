#if canImport(Glibc)
import Glibc
#endif
import CSupervisorShims
import NIOCore
import NIOPosix
import Synchronization

/// Why a process could not be started.
public struct SpawnError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// One running stdio server process: spawned without a shell (argv and the exact environment),
/// in its own process group under a keeper that kills the group if the supervisor dies (see
/// `supervisor_shims.h`), stdin/stdout carried by a SwiftNIO pipe channel as newline-delimited
/// JSON-RPC messages, stderr into a `StderrLog`.
public final class ChildProcess: Sendable {
    /// The keeper's pid, which is the process group id.
    public let pid: Int32
    private let channel: any Channel
    private let stderrChannel: (any Channel)?
    private let exitTask: Task<ExitStatus, Never>
    private let stopping = Atomic<Bool>(false)

    /// The largest message accepted from a server, in bytes; a longer line ends the process.
    public static let maxMessageBytes = 64 << 20

    private init(pid: Int32, channel: any Channel, stderrChannel: (any Channel)?, exitTask: Task<ExitStatus, Never>) {
        self.pid = pid
        self.channel = channel
        self.stderrChannel = stderrChannel
        self.exitTask = exitTask
    }

    /// Spawns `command` (looked up in the child's PATH unless it contains a slash).
    /// - Parameters:
    ///   - onMessage: each line the server writes to stdout (without the newline), on an event loop.
    ///   - onClose: once, when stdout ends (the process exited or closed it).
    /// - Throws: `SpawnError` when the program cannot be found or started (nothing runs then).
    public static func spawn(
        command: String, args: [String], environment: [String: String], cwd: String?,
        group: any EventLoopGroup, stderr: StderrLog?,
        onMessage: @escaping @Sendable ([UInt8]) -> Void, onClose: @escaping @Sendable () -> Void
    ) async throws(SpawnError) -> ChildProcess {
        let started = ExitWatcher.start()
        guard started == 0 else { throw SpawnError(message: "cannot start the spawner threads: \(errnoText(started))") }
        let path = try resolve(command, environment: environment, cwd: cwd)
        let mark = ExitWatcher.mark()
        var child = sup_child()
        let argv = [command] + args
        let envp = environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let result = withCStrings(argv) { cArgv in
            withCStrings(envp) { cEnvp in
                if let cwd {
                    return cwd.withCString { sup_spawn(path, cArgv, cEnvp, $0, &child) }
                }
                return sup_spawn(path, cArgv, cEnvp, nil, &child)
            }
        }
        guard result == 0 else {
            let what = result == ENOENT && cwd != nil ? "\(errnoText(result)) (\(path), or the directory \(cwd ?? ""))" : "\(errnoText(result))"
            throw SpawnError(message: "cannot run \(path): \(what)")
        }
        ExitWatcher.track(child.pid, since: mark)
        let pid = child.pid
        let exitTask = Task { await ExitWatcher.wait(pid) }
        do {
            let channel = try await NIOPipeBootstrap(group: group)
                .channelOption(.allowRemoteHalfClosure, value: false)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(LineFramer(onMessage: onMessage, onClose: onClose))
                    }
                }
                .takingOwnershipOfDescriptors(input: child.stdout_fd, output: child.stdin_fd)
                .get()
            var stderrChannel: (any Channel)?
            if let stderr {
                stderrChannel = try await NIOPipeBootstrap(group: group)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(ChunkSink(log: stderr))
                        }
                    }
                    .takingOwnershipOfDescriptor(input: child.stderr_fd)
                    .get()
            } else {
                close(child.stderr_fd)
            }
            return ChildProcess(pid: pid, channel: channel, stderrChannel: stderrChannel, exitTask: exitTask)
        } catch {
            _ = sup_killpg(pid, SIGKILL)
            _ = await exitTask.value
            throw SpawnError(message: "cannot attach to the pipes of \(path): \(error)")
        }
    }

    /// Writes one message (a newline is added). Lost silently if the process has gone: its
    /// requests are failed by whoever watches `onClose`.
    public func send(_ message: [UInt8]) {
        var buffer = channel.allocator.buffer(capacity: message.count + 1)
        buffer.writeBytes(message)
        buffer.writeInteger(UInt8(ascii: "\n"))
        channel.writeAndFlush(buffer, promise: nil)
    }

    /// The process's end (waits for it).
    public var exitStatus: ExitStatus {
        get async { await exitTask.value }
    }

    /// Whether `stop` was called (an exit after it is not a crash).
    public var isStopping: Bool { stopping.load(ordering: .relaxed) }

    /// Stops the process group: SIGTERM, then SIGKILL after `grace`; returns once it is reaped.
    @discardableResult
    public func stop(grace: Duration) async -> ExitStatus {
        stopping.store(true, ordering: .relaxed)
        // Closing stdin first lets a well-behaved server finish on EOF.
        channel.close(mode: .output, promise: nil)
        signalGroup(SIGTERM)
        // Waiting on the exit cannot be cancelled, so the SIGKILL comes from a timer of its own.
        let killer = Task { [self] in
            do { try await Task.sleep(for: grace) } catch { return }
            self.signalGroup(SIGKILL)
        }
        defer { killer.cancel() }
        let status = await exitTask.value
        channel.close(promise: nil)
        stderrChannel?.close(promise: nil)
        return status
    }

    /// Kills the group at once (SIGKILL) without waiting.
    public func kill() {
        stopping.store(true, ordering: .relaxed)
        signalGroup(SIGKILL)
    }

    private func signalGroup(_ signal: Int32) {
        guard !ExitWatcher.hasExited(pid) else { return }
        _ = sup_killpg(pid, signal)
    }

    /// Looks `command` up the way execvp would, in the child's PATH.
    static func resolve(_ command: String, environment: [String: String], cwd: String?) throws(SpawnError) -> String {
        if command.contains("/") {
            if command.hasPrefix("/") || cwd == nil {
                guard access(command, X_OK) == 0 else { throw SpawnError(message: "cannot run \(command): \(errnoText(errno))") }
            }
            return command
        }
        let searchPath = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in searchPath.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (dir.isEmpty ? "." : String(dir)) + "/" + command
            var st = stat()
            if stat(candidate, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, access(candidate, X_OK) == 0 { return candidate }
        }
        throw SpawnError(message: "command \"\(command)\" not found in PATH (\(searchPath))")
    }

    static func errnoText(_ e: Int32) -> String {
        String(cString: strerror(e))
    }
}

private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>?) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for p in pointers { free(p) } }
    return pointers.withUnsafeBufferPointer { buffer in
        body(buffer.baseAddress)  // never nil: the buffer holds at least the terminating nil
    }
}

/// Splits a server's stdout into lines (one JSON-RPC message each).
final class LineFramer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    let onMessage: @Sendable ([UInt8]) -> Void
    let onClose: @Sendable () -> Void
    private var pending: [UInt8] = []
    private var closed = false

    init(onMessage: @escaping @Sendable ([UInt8]) -> Void, onClose: @escaping @Sendable () -> Void) {
        self.onMessage = onMessage
        self.onClose = onClose
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        buffer.withUnsafeReadableBytes { raw in
            var start = 0
            for i in 0..<raw.count where raw[i] == 0x0A {
                var line: [UInt8]
                if pending.isEmpty {
                    line = Array(raw[start..<i])
                } else {
                    line = pending
                    line.append(contentsOf: raw[start..<i])
                    pending.removeAll(keepingCapacity: true)
                }
                if line.last == 0x0D { line.removeLast() }
                if !line.isEmpty { onMessage(line) }
                start = i + 1
            }
            if start < raw.count { pending.append(contentsOf: raw[start...]) }
        }
        if pending.count > ChildProcess.maxMessageBytes {
            pending = []
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func finish() {
        guard !closed else { return }
        closed = true
        onClose()
    }
}

/// Copies a server's stderr into its log.
final class ChunkSink: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    let log: StderrLog
    init(log: StderrLog) { self.log = log }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        log.append(Array(buffer.readableBytesView))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
