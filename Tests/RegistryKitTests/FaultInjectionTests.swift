import Foundation
import Testing
@testable import RegistryKit

/// Every step of a write and of a read, made to fail with ENOSPC, EIO, EINTR and EMFILE through
/// the system layer (`Sys.injectFault`). For each: a clear error naming the call (as the error's
/// `syscall` and `errnoCode` fields too), the old file intact and parseable, no temp file left,
/// no lease leaked, and the handle usable once the fault clears. EINTR is retried: the call
/// succeeds. The matrix's size is printed (`faults: N injected, N passed`).
/// The outcome of a throwing call as a value.
func attempt<T>(_ body: () throws(RegistryError) -> T) -> Result<T, RegistryError> {
    do throws(RegistryError) { return .success(try body()) } catch { return .failure(error) }
}

@Suite struct FaultInjectionTests {
    struct Step: Sendable, CustomStringConvertible {
        var call: Sys.Call
        /// The file the fault applies to, relative to the registry directory ("" = the directory).
        var file: String
        var description: String { "\(call.rawValue)(\(file.isEmpty ? "<dir>" : file))" }
    }

    static let writeSteps: [Step] = [
        Step(call: .open, file: "servers.json.tmp"),
        Step(call: .write, file: "servers.json.tmp"),
        Step(call: .fsync, file: "servers.json.tmp"),
        Step(call: .rename, file: "servers.json.tmp"),
        Step(call: .fsync, file: ""),
        Step(call: .flock, file: "servers.json.lock"),
    ]
    static let readSteps: [Step] = [
        Step(call: .open, file: "servers.json"),
        Step(call: .fstat, file: "servers.json"),
        Step(call: .read, file: "servers.json"),
        Step(call: .stat, file: "servers.json"),
    ]
    static let errnos: [(String, Int32)] = [("ENOSPC", ENOSPC), ("EIO", EIO), ("EINTR", EINTR), ("EMFILE", EMFILE)]

    @Test func everyWriteStepFailsCleanly() throws {
        var injected = 0, passed = 0
        for step in Self.writeSteps {
            for (name, code) in Self.errnos {
                injected += 1
                let dir = TempRegistryDir()
                let r = try dir.open()
                defer { r.close() }
                try r.register(entry("before"))  // a lease: leases/ exists before the fault
                let old = try dir.contents()
                let suffix = step.file.isEmpty ? dir.path : dir.path + "/" + step.file
                Sys.injectFault(step.call, errno: code, pathSuffix: suffix, count: 1)
                let outcome = attempt { () throws(RegistryError) in _ = try r.register(entry("during")) }
                let fired = Sys.clearFaults(dir.path)
                let label = "\(step) \(name)"
                #expect(fired == [1], "\(label): the fault was never reached")
                var ok = true
                switch (code, outcome) {
                case (EINTR, .success):
                    break  // retried
                case (EINTR, .failure(let e)):
                    Issue.record("\(label): EINTR was not retried: \(e)"); ok = false
                case (_, .success):
                    if !(step.call == .fsync && step.file.isEmpty) {
                        Issue.record("\(label): the write succeeded despite the fault"); ok = false
                    }
                case (_, .failure(let e)):
                    ok = ok && e.code == .io && e.syscall == step.call.rawValue && e.errnoCode == code
                    #expect(e.code == .io && e.syscall == step.call.rawValue && e.errnoCode == code, "\(label): \(e)")
                    #expect(e.message.contains(step.call.rawValue + "("), "\(label): \(e.message)")
                    // Before the rename nothing changed; an fsync of the directory fails after it.
                    if !(step.call == .fsync && step.file.isEmpty) {
                        let now = try dir.contents()
                        ok = ok && now == old
                        #expect(now == old, "\(label): the old file changed")
                        // No lease leaked: another handle can take the id at once.
                        let other = try dir.open()
                        #expect(throws: Never.self, "\(label): the lease of the failed register leaked") {
                            try other.register(entry("during"))
                        }
                        other.close()
                    }
                }
                let tempLeft = FileManager.default.fileExists(atPath: dir.path + "/servers.json.tmp")
                #expect(!tempLeft, "\(label): a temp file was left behind")
                #expect(throws: Never.self, "\(label): the file does not parse") { _ = try dir.open().list() }
                // Usable after the fault clears.
                #expect(throws: Never.self, "\(label): the handle is not usable after the fault") {
                    try r.register(entry("after", liveness: .none))
                }
                if ok && !tempLeft { passed += 1 }
            }
        }
        print("faults (write steps): \(injected) injected, \(passed) passed")
        #expect(passed == injected)
    }

    @Test func everyReadStepFailsCleanly() throws {
        var injected = 0, passed = 0
        for step in Self.readSteps {
            for (name, code) in Self.errnos {
                injected += 1
                let dir = TempRegistryDir()
                let writer = try dir.open()
                defer { writer.close() }
                try writer.register(entry("x", liveness: .none))
                let reader = try dir.open()
                defer { reader.close() }
                // Make the reader's next list read the file (a new version from the writer).
                try writer.setHealth("x", .healthy)
                let suffix = dir.path + "/" + step.file
                Sys.injectFault(step.call, errno: code, pathSuffix: suffix, count: 1)
                let outcome = attempt { () throws(RegistryError) in try reader.list() }
                let fired = Sys.clearFaults(dir.path)
                let label = "\(step) \(name)"
                #expect(fired == [1], "\(label): the fault was never reached")
                var ok = false
                switch (code, outcome) {
                case (EINTR, .success(let l)):
                    ok = l.servers.first?.health.status == .healthy
                case (_, .failure(let e)):
                    ok = e.code == .io && e.syscall == step.call.rawValue && e.errnoCode == code
                    #expect(ok, "\(label): \(e)")
                default:
                    Issue.record("\(label): unexpected \(outcome)")
                }
                let after = try reader.list()
                #expect(after.servers.first?.health.status == .healthy, "\(label): not usable after the fault")
                if ok && after.servers.count == 1 { passed += 1 }
            }
        }
        print("faults (read steps): \(injected) injected, \(passed) passed")
        #expect(passed == injected)
    }
}
