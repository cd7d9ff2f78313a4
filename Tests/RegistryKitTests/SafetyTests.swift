import Foundation
import Testing
@testable import RegistryKit

@Suite struct SafetyTests {
    @Test func createsPrivateDirectoryAndFiles() throws {
        let dir = TempRegistryDir()
        let reg = try Registry(path: dir.path + "/nested/deeper/servers.json")
        defer { reg.close() }
        try reg.register(entry("a"))
        var st = stat()
        stat(dir.path + "/nested/deeper", &st)
        #expect(st.st_mode & 0o777 == 0o700)
        stat(dir.path + "/nested", &st)
        #expect(st.st_mode & 0o777 == 0o700)
        for name in ["servers.json", "servers.json.lock", "leases/a.lease"] {
            stat(dir.path + "/nested/deeper/" + name, &st)
            #expect(st.st_mode & 0o777 == 0o600, "\(name) mode \(String(st.st_mode & 0o777, radix: 8))")
        }
        stat(dir.path + "/nested/deeper/leases", &st)
        #expect(st.st_mode & 0o777 == 0o700)
    }

    @Test func defaultPathIsTheEnvironmentVariableElseHome() throws {
        let dir = TempRegistryDir()
        let viaEnv = try Worker(["default-path"], environment: ["PEER_REGISTRY_PATH": dir.path + "/custom.json"])
        viaEnv.finish()
        #expect(viaEnv.output.first == dir.path + "/custom.json", "worker said: \(viaEnv.errors)")
        #expect(FileManager.default.fileExists(atPath: dir.path + "/custom.json.lock"))
        let viaHome = try Worker(["default-path"], environment: ["PEER_REGISTRY_PATH": "", "HOME": dir.path + "/home"])
        viaHome.finish()
        #expect(viaHome.output.first == dir.path + "/home/.peer-plan/servers.json", "worker said: \(viaHome.errors)")
        var st = stat()
        #expect(stat(dir.path + "/home/.peer-plan", &st) == 0 && st.st_mode & 0o777 == 0o700)
    }

    @Test func refusesGroupOrOtherWritableDirectory() throws {
        let dir = TempRegistryDir()
        try dir.open().close()
        chmod(dir.path, 0o770)
        let error = expectError(.permission) { _ = try dir.open() }
        #expect(error?.message.contains("chmod 700 \(dir.path)") == true)
        chmod(dir.path, 0o707)
        expectError(.permission) { _ = try dir.open() }
    }

    @Test(.enabled(if: geteuid() == 0, "needs root to make a directory owned by another user"))
    func refusesForeignOwnedDirectoryAndFile() throws {
        let dir = TempRegistryDir()
        try dir.open().close()
        chown(dir.path, 65534, 65534)
        let error = expectError(.permission) { _ = try dir.open() }
        #expect(error?.message.contains("owned by uid 65534") == true)
        chown(dir.path, 0, 0)
        try dir.write(#"{"servers":[]}"#)
        chown(dir.file, 65534, 65534)
        expectError(.permission) { _ = try dir.open() }
    }

    @Test func refusesSymlinksAndHardLinks() throws {
        let dir = TempRegistryDir()
        try dir.open().close()
        let target = dir.path + "/elsewhere.json"
        try #"{"servers":[]}"#.write(toFile: target, atomically: false, encoding: .utf8)
        chmod(target, 0o600)

        symlink(target, dir.file)
        let e1 = expectError(.permission) { _ = try dir.open() }
        #expect(e1?.message.contains("symbolic link") == true)
        unlink(dir.file)

        link(target, dir.file)
        let e2 = expectError(.permission) { _ = try dir.open() }
        #expect(e2?.message.contains("2 hard links") == true)
        unlink(dir.file)

        unlink(dir.path + "/servers.json.lock")
        symlink(target, dir.path + "/servers.json.lock")
        expectError(.permission) { _ = try dir.open() }
        unlink(dir.path + "/servers.json.lock")
        #expect(try String(contentsOfFile: target, encoding: .utf8) == #"{"servers":[]}"#, "nothing written through a symlink")
    }

    @Test func symlinkPlantedAtTempOrLeasePathIsNotFollowed() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        let victim = dir.path + "/victim.txt"
        try "untouched".write(toFile: victim, atomically: false, encoding: .utf8)
        symlink(victim, dir.path + "/servers.json.tmp")
        try reg.register(entry("a"))  // the stale temp path is removed, not followed
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "untouched")
        mkdir(dir.path + "/leases", 0o700)
        symlink(victim, dir.path + "/leases/b.lease")
        let error = expectError(.permission) { try reg.register(entry("b")) }
        #expect(error?.message.contains("symbolic link") == true)
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "untouched")
        #expect(try reg.list().servers.map(\.id) == ["a"], "a refused registration changes nothing")
    }

    @Test func corruptFileIsReportedNeverOverwrittenAndRepairable() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        // Static: a lease entry would be restored by its holder once the file parses again.
        try reg.register(entry("a", liveness: .none))
        let garbage = "{\"servers\": [ {\"id\": \"x\",\n  oops ]"
        try dir.write(garbage)
        let e1 = expectError(.corrupt) { _ = try reg.list() }
        #expect(e1?.message.contains(dir.file) == true)
        #expect(e1?.message.contains("line 2, column 3") == true, "\(String(describing: e1))")
        expectError(.corrupt) { try reg.register(entry("b", port: 1)) }
        expectError(.corrupt) { _ = try reg.prune() }
        #expect(try dir.contents() == garbage, "a corrupt file is never overwritten")

        let aside = try #require(try reg.repair())
        #expect(aside.hasPrefix(dir.file + ".corrupt-"))
        #expect(try String(contentsOfFile: aside, encoding: .utf8) == garbage, "nothing is lost: the corrupt file is kept")
        #expect(try reg.list().servers.isEmpty)
        try reg.register(entry("b", port: 1))
        #expect(try reg.list().servers.map(\.id) == ["b"])
        #expect(try reg.repair() == nil, "a good file is not moved")
    }

    @Test func structurallyInvalidFilesAreCorrupt() throws {
        for text in [#"[]"#, #"{"servers":{}}"#, #"{"servers":[1]}"#, #"{"version":"1","servers":[]}"#,
                     #"{"servers":[{"id":"a","url":"http://x:1/"},{"id":"a","url":"http://x:2/"}]}"#,
                     #"{"servers":[{"id":"../../etc","url":"http://x:1/"}]}"#, #"{"servers":[{"url":"stdio:x"}]}"#, ""] {
            let dir = TempRegistryDir()
            try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try dir.write(text)
            let reg = try dir.open()
            expectError(.corrupt) { _ = try reg.list() }
            reg.close()
        }
    }

    @Test func limitsAreEnforcedOnWriteAndRead() throws {
        var options = Registry.Options()
        options.limits.maxEntries = 3
        options.limits.maxFileBytes = 4096
        let dir = TempRegistryDir()
        let reg = try dir.open(options)
        defer { reg.close() }
        for i in 0..<3 { try reg.register(entry("e\(i)", port: 100 + i)) }
        expectError(.limit) { try reg.register(entry("e3", port: 103)) }
        #expect(try reg.list().servers.count == 3)

        let long = String(repeating: "x", count: 5000)
        expectError(.limit) { try reg.register(ServerEntry(id: "n", name: long, url: "http://x:1/", liveness: .none)) }
        expectError(.limit) { try reg.setHealth("e0", .healthy, message: long) }
        let many = (0..<1025).map { "t\($0)" }
        expectError(.limit) { try reg.register(entry("m", tools: many, liveness: .none)) }
        expectError(.limit) { try reg.register(entry("m", tools: [String(repeating: "t", count: 600)], liveness: .none)) }
        expectError(.limit) { try reg.register(json: #"{"id":"m","url":"http://x:1/","metadata":{"s":"\#(long)"}}"#) }

        // Oversized on read: a file larger than the limit is refused without being parsed.
        let small = TempRegistryDir()
        var tiny = Registry.Options()
        tiny.limits.maxFileBytes = 64
        try FileManager.default.createDirectory(atPath: small.path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try small.write(#"{"servers":[{"id":"a","url":"http://127.0.0.1:1/","liveness":"none","name":"padding padding"}]}"#)
        let r2 = try small.open(tiny)
        expectError(.limit) { _ = try r2.list() }
        r2.close()
    }

    @Test func closedHandleRefusesEverything() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        try reg.register(entry("a"))
        reg.close()
        reg.close()
        expectError(.closed) { _ = try reg.list() }
        expectError(.closed) { _ = try reg.get("a") }
        expectError(.closed) { try reg.register(entry("b")) }
        expectError(.closed) { _ = try RegistryWatch(reg) }
    }

    @Test func lockTimeoutNamesTheHolder() throws {
        let dir = TempRegistryDir()
        var options = Registry.Options()
        options.lockTimeout = .milliseconds(200)
        let reg = try dir.open(options)
        defer { reg.close() }
        // Take the lock from outside the library, as a wedged writer would, and say who we are.
        let fd = open(dir.path + "/servers.json.lock", O_RDWR)
        #expect(flock(fd, LOCK_EX) == 0)
        let pid = Array("\(getpid())\n".utf8)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        let error = expectError(.timeout) { try reg.register(entry("x")) }
        #expect(error?.message.contains("held by pid \(getpid())") == true, "\(String(describing: error))")
        close(fd)
        try reg.register(entry("x"))
    }
}
