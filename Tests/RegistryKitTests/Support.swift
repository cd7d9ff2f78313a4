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
final class Worker: @unchecked Sendable {
    let process = Process()
    private let stdinPipe = Pipe()
    private let stdoutPipe = Pipe()
    private let stderrPipe = Pipe()
    private let lines = Mutex<[String]>([])
    private let partial = Mutex<String>("")

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
        stdoutPipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            let text = String(decoding: data, as: UTF8.self)
            let complete: [String] = self.partial.withLock { partial in
                partial += text
                var parts = partial.components(separatedBy: "\n")
                partial = parts.removeLast()
                return parts
            }
            self.lines.withLock { $0.append(contentsOf: complete) }
        }
        try process.run()
    }

    var output: [String] { lines.withLock { $0 } }

    /// What the worker printed on stderr (read once it has exited).
    var errors: String {
        guard !process.isRunning else { return "(still running)" }
        return String(decoding: stderrPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    /// Waits until a line satisfying `match` was printed (or the process exited).
    func waitFor(timeout: TimeInterval = 60, _ match: (String) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if output.contains(where: match) { return true }
            if !process.isRunning { return output.contains(where: match) }
            usleep(2000)
        }
        return false
    }

    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Closes stdin (the worker then closes its registry and exits), waits, and collects
    /// everything it printed (the asynchronous reader may not have seen the last of it).
    func finish() {
        try? stdinPipe.fileHandleForWriting.close()
        process.waitUntilExit()
        stdoutPipe.fileHandleForReading.readabilityHandler = nil
        let rest = String(decoding: stdoutPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let tail: [String] = partial.withLock { partial in
            let all = partial + rest
            partial = ""
            return all.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        }
        lines.withLock { $0.append(contentsOf: tail) }
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
