import Foundation
import Synchronization
import Testing
@testable import RegistryKit

/// A fresh directory for one test's registry, removed at the end of the test's scope.
final class TempRegistryDir {
    let path: String
    var file: String { path + "/servers.json" }

    init() {
        path = NSTemporaryDirectory() + "prk-\(UUID().uuidString.prefix(8))"
    }

    deinit {
        chmod(path, 0o700)
        try? FileManager.default.removeItem(atPath: path)
    }

    func open(_ options: Registry.Options = Registry.Options()) throws -> Registry {
        try Registry(path: file, options: options)
    }

    func contents() throws -> String { try String(contentsOfFile: file, encoding: .utf8) }

    func write(_ text: String) throws {
        try text.write(toFile: file, atomically: false, encoding: .utf8)
        chmod(file, 0o600)
    }

    func mode(_ name: String) -> mode_t {
        var st = stat()
        stat(path + "/" + name, &st)
        return st.st_mode & 0o777
    }
}

func entry(_ id: String, port: Int = 8080, tools: [String] = [], resources: [String] = [], prompts: [String] = [],
           liveness: Liveness = .lease, health: HealthStatus = .unknown) -> ServerEntry {
    ServerEntry(id: id, url: "http://127.0.0.1:\(port)/mcp", liveness: liveness,
                capabilities: Capabilities(tools: tools, resources: resources, prompts: prompts),
                health: Health(status: health))
}

/// Asserts that `body` throws a RegistryError with `code`, and returns it.
@discardableResult
func expectError(_ code: RegistryError.Code, sourceLocation: SourceLocation = #_sourceLocation,
                 _ body: () throws -> Void) -> RegistryError? {
    do {
        try body()
        Issue.record("expected \(code.name), got success", sourceLocation: sourceLocation)
        return nil
    } catch let error as RegistryError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// A helper process (the registry-crowd-worker executable) whose stdout lines are collected.
///
/// Each output pipe is drained by its own thread until end of file, so `finish()` returns only
/// once every line the worker printed has been collected (a `readabilityHandler` may still be
/// running when it is removed, which lost the last lines under load).
final class Worker: @unchecked Sendable {
    let process = Process()
    private let stdinPipe = Pipe()
    private let stdoutPipe = Pipe()
    private let stderrPipe = Pipe()
    private let lines = Mutex<[String]>([])
    private let stderrText = Mutex<String>("")
    private let drained = DispatchGroup()

    static var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("registry-crowd-worker")
    }

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        process.executableURL = Worker.executable
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        process.standardInput = stdinPipe
        process.standardOutput = stdoutPipe
        process.standardError = stderrPipe
        try process.run()
        // The parent's copies of the write ends must go, or the readers never see end of file.
        try? stdoutPipe.fileHandleForWriting.close()
        try? stderrPipe.fileHandleForWriting.close()
        let out = stdoutPipe.fileHandleForReading.fileDescriptor
        let err = stderrPipe.fileHandleForReading.fileDescriptor
        drain(out) { [self] line in self.lines.withLock { $0.append(line) } }
        drain(err) { [self] line in self.stderrText.withLock { $0 += line + "\n" } }
    }

    /// Reads `fd` on a dedicated thread until end of file, handing over each complete line.
    private func drain(_ fd: Int32, _ deliver: @escaping @Sendable (String) -> Void) {
        drained.enter()
        let group = drained
        Thread.detachNewThread {
            var pending = [UInt8]()
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                pending.append(contentsOf: buffer[0..<n])
                while let newline = pending.firstIndex(of: 10) {
                    deliver(String(decoding: pending[..<newline], as: UTF8.self))
                    pending.removeSubrange(...newline)
                }
            }
            if !pending.isEmpty { deliver(String(decoding: pending, as: UTF8.self)) }
            group.leave()
        }
    }

    var output: [String] { lines.withLock { $0 } }

    /// What the worker printed on stderr (complete once it has exited and `finish()` returned).
    var errors: String {
        guard !process.isRunning else { return "(still running)" }
        return stderrText.withLock { $0 }
    }

    /// Waits until a line satisfying `match` was printed (or the process exited).
    func waitFor(timeout: TimeInterval = 60, _ match: (String) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if output.contains(where: match) { return true }
            if !process.isRunning {
                _ = drained.wait(timeout: .now() + 5)
                return output.contains(where: match)
            }
            usleep(2000)
        }
        return false
    }

    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Closes stdin (the worker then closes its registry and exits), waits, and collects
    /// everything it printed.
    func finish() {
        try? stdinPipe.fileHandleForWriting.close()
        process.waitUntilExit()
        // The worker has exited; its pipes reach end of file unless a child of it still holds
        // them (none does), so this wait is bounded only as a guard.
        _ = drained.wait(timeout: .now() + 30)
    }
}

/// Validates registry files against docs/servers.schema.json with Python's jsonschema.
func validateAgainstSchema(_ files: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", root.appendingPathComponent("tests/schema/validate.py").path,
                   root.appendingPathComponent("docs/servers.schema.json").path] + files
    let err = Pipe()
    p.standardError = err
    try p.run()
    p.waitUntilExit()
    let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    #expect(p.terminationStatus == 0, "schema validation failed: \(message)", sourceLocation: sourceLocation)
}
