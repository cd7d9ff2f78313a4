import Foundation
import Synchronization
import Testing
@testable import RegistryKit

// Core hardening (issue 11): each test here failed before the fix it names.

/// Threads and descriptors of this process, from /proc.
private func taskCount() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? -1 }
private func fdTargets() -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return names.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0) }
}

private func setMtime(_ path: String, seconds: Int, nanos: Int) {
    var times = [timespec(tv_sec: seconds, tv_nsec: nanos), timespec(tv_sec: seconds, tv_nsec: nanos)]
    _ = utimensat(AT_FDCWD, path, &times, 0)
}

private func mtime(_ path: String) -> (Int, Int) {
    var st = stat()
    stat(path, &st)
    return (Int(st.st_mtim.tv_sec), Int(st.st_mtim.tv_nsec))
}

/// Rewrites `path` in place (same inode), as an older tool's plain writeFile does.
private func rewriteInPlace(_ path: String, _ text: String) {
    let fd = open(path, O_WRONLY | O_TRUNC)
    let bytes = Array(text.utf8)
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
}

@Suite struct CoarseTimestampTests {
    /// A same-size rewrite that keeps the inode and the mtime (as on a filesystem with 1-second
    /// mtimes) was invisible: readers kept answering the old entry (failed before: stamp trusted).
    @Test func sameStampRewriteIsSeenByReaders() throws {
        let dir = TempRegistryDir()
        let writer = try dir.open()
        defer { writer.close() }
        try writer.register(entry("a", liveness: .none, health: .healthy))
        try writer.setHealth("a", .healthy, message: "first")
        let reader = try dir.open()
        defer { reader.close() }
        #expect(try reader.get("a").health.message == "first")
        let before = mtime(dir.file)
        let text = try dir.contents()
        rewriteInPlace(dir.file, text.replacingOccurrences(of: "\"first\"", with: "\"later\""))
        setMtime(dir.file, seconds: before.0, nanos: before.1)
        #expect(try reader.get("a").health.message == "later")
        // And a writer's cached document under the lock sees it too: its next write keeps "later"'s
        // neighbour change instead of writing back the old version.
        rewriteInPlace(dir.file, try dir.contents().replacingOccurrences(of: "\"later\"", with: "\"third\""))
        setMtime(dir.file, seconds: before.0, nanos: before.1)
        try writer.register(entry("b", liveness: .none))
        #expect(try reader.get("a").health.message == "third")
    }

    /// A writer skips putting back its held entries when the file is unchanged since its own
    /// write; a same-size rewrite that keeps the stamp and drops a held entry is a change all the
    /// same, and the holder's next write restores the entry.
    @Test func aWriteAfterASameStampRewriteRestoresTheHeldEntry() throws {
        let dir = TempRegistryDir()
        let owner = try dir.open()
        defer { owner.close() }
        try owner.register(entry("mine", tools: ["t"]))
        try owner.register(entry("other", liveness: .none))
        let before = mtime(dir.file)
        // "mine" renamed "mind" (same size): the held entry is gone, the stamp is the same.
        rewriteInPlace(dir.file, try dir.contents().replacingOccurrences(of: "\"id\":\"mine\"", with: "\"id\":\"mind\""))
        setMtime(dir.file, seconds: before.0, nanos: before.1)
        try owner.register(entry("b", liveness: .none))
        let text = try dir.contents()
        #expect(text.contains("\"id\":\"mine\""))
        #expect(try owner.get("mine").capabilities.tools == ["t"])
    }

    /// A snapshot confirmed long after the file's mtime is trusted on its stamp alone (one stat).
    @Test func oldFilesAreTrustedOnTheirStamp() throws {
        let dir = TempRegistryDir()
        let writer = try dir.open()
        defer { writer.close() }
        try writer.register(entry("a", liveness: .none))
        setMtime(dir.file, seconds: Int(Date().timeIntervalSince1970) - 60, nanos: 123)
        let reader = try dir.open()
        defer { reader.close() }
        _ = try reader.get("a")
        let snap = reader.state.withLock { $0.snapshot }
        #expect(!snap.needsContentCheck)
        _ = try reader.get("a")
        #expect(reader.state.withLock { $0.snapshot } === snap)
    }
}

@Suite struct HostileInputTests {
    /// Metadata nested so deep that it passes the entry's own limit but not the file's: refused at
    /// register, file unchanged (failed before: accepted, and every other process got ECORRUPT).
    @Test func registerNeverWritesWhatTheReaderRefuses() throws {
        let dir = TempRegistryDir()
        let writer = try dir.open()
        defer { writer.close() }
        try writer.register(entry("base", liveness: .none))
        for depth in 1...20 {
            let open = String(repeating: "[", count: depth), close = String(repeating: "]", count: depth)
            let before = try dir.contents()
            if case .failure(let error) = attempt({ () throws(RegistryError) in
                _ = try writer.register(json: "{\"id\":\"deep\(depth)\",\"url\":\"http://127.0.0.1:2/\",\"liveness\":\"none\",\"metadata\":\(open)\(close)}")
            }) {
                #expect(error.code == .limit, "depth \(depth): \(error)")
                #expect(try dir.contents() == before, "depth \(depth): a refused register changed the file")
                continue
            }
            let fresh = try dir.open()
            defer { fresh.close() }
            #expect(throws: Never.self, "depth \(depth) was accepted but the file is unreadable") { try fresh.list() }
        }
        let fresh = try dir.open()
        defer { fresh.close() }
        #expect(try fresh.list().servers.contains { $0.id == "deep13" })
        #expect(try !fresh.list().servers.contains { $0.id == "deep14" })
    }

    /// `generation` at Int64.max trapped the next write (SIGILL). Now the reader bounds it
    /// (2^53-1), the write refuses to pass the bound, and repair restarts below it.
    @Test func generationCannotOverflow() throws {
        let dir = TempRegistryDir()
        let r = try dir.open()
        defer { r.close() }
        try dir.write("{\"version\":1,\"generation\":9223372036854775807,\"servers\":[{\"id\":\"x\",\"url\":\"http://127.0.0.1:9/\",\"liveness\":\"none\"}]}\n")
        expectError(.corrupt) { _ = try r.list() }
        expectError(.corrupt) { try r.register(entry("y", liveness: .none)) }
        let aside = try #require(try r.repair())
        #expect(FileManager.default.fileExists(atPath: aside))
        #expect(try r.get("x").id == "x")
        try dir.write("{\"version\":1,\"generation\":\(RegistryDocument.maxGeneration),\"servers\":[]}\n")
        expectError(.limit) { try r.register(entry("y", liveness: .none)) }
        #expect(try r.generation() == RegistryDocument.maxGeneration)
    }

    /// A failed probe at the validator's cap of consecutive failures wrote a count the reader
    /// then refused; it saturates now.
    @Test func consecutiveFailuresSaturate() throws {
        let dir = TempRegistryDir()
        let r = try dir.open()
        defer { r.close() }
        try dir.write("{\"version\":1,\"generation\":1,\"servers\":[{\"id\":\"dead\",\"url\":\"http://127.0.0.1:1/\",\"liveness\":\"none\",\"health\":{\"status\":\"DOWN\",\"consecutiveFailures\":1000000}}]}\n")
        let after = try r.probeSync("dead", policy: ProbePolicy(timeout: .milliseconds(300)))
        #expect(after.health.consecutiveFailures == Health.maxConsecutiveFailures)
        let fresh = try dir.open()
        defer { fresh.close() }
        #expect(try fresh.get("dead").health.status == .down)
    }

    /// repair threw every entry away; it keeps every entry that still validates, and the
    /// generation goes on from the old one.
    @Test func repairSalvagesValidEntries() throws {
        let dir = TempRegistryDir()
        let r = try dir.open()
        defer { r.close() }
        let deep = String(repeating: "[", count: 15) + String(repeating: "]", count: 15)
        try dir.write("""
        {
          "version": 1,
          "generation": 41,
          "servers": [
            {"id":"good1","url":"http://127.0.0.1:9001/","liveness":"none"},
            {"id":"bad","url":"http://127.0.0.1:9002/","liveness":"none","metadata":\(deep)},
            {"id":"good2","url":"http://127.0.0.1:9003/","liveness":"none"}
          ]
        }

        """)
        expectError(.corrupt) { _ = try r.list() }
        #expect(try r.repair() != nil)
        #expect(try r.list().servers.map(\.id) == ["good1", "good2"])
        #expect(try r.generation() == 42)
        // A torn file (cut mid-entry) keeps the complete lines.
        try dir.write("{\n  \"version\": 1,\n  \"generation\": 7,\n  \"servers\": [\n    {\"id\":\"c1\",\"url\":\"http://127.0.0.1:9004/\",\"liveness\":\"none\"},\n    {\"id\":\"c2\",\"url\":\"http://127.0.0")
        #expect(try r.repair() != nil)
        #expect(try r.list().servers.map(\.id) == ["c1"])
        #expect(try r.generation() == 43, "the generation never goes back below what this handle saw")
    }

    /// `http://127.0.0.1:99999/` and `127.0.0.1:80` were accepted as URLs.
    @Test func urlsAreParsedStrictlyOnRegister() throws {
        let dir = TempRegistryDir()
        let r = try dir.open()
        defer { r.close() }
        for bad in ["http://127.0.0.1:99999/", "127.0.0.1:80", "http://:80/", "http:/x", "http://h:0/", "http://h:12ab/"] {
            expectError(.invalid) { try r.register(ServerEntry(id: "u", url: bad, liveness: .none)) }
        }
        for good in ["http://127.0.0.1:8080/mcp", "https://example.com", "ws://[::1]:9/x", "stdio:server", "http://u@h:1/"] {
            try r.register(ServerEntry(id: "u", url: good, liveness: .none))
        }
        // A file written by an older tool with such a URL still reads.
        try dir.write("{\"servers\":[{\"port\":80,\"url\":\"127.0.0.1:80\",\"pid\":1}]}\n")
        #expect(throws: Never.self) { try r.list() }
    }

    /// `headers` round-trip, are validated, and `withoutSecrets` drops them.
    @Test func headersAreKeptAndValidated() throws {
        let dir = TempRegistryDir()
        let r = try dir.open()
        defer { r.close() }
        let stored = try r.register(json: "{\"id\":\"h\",\"url\":\"http://127.0.0.1:9/\",\"headers\":{\"Authorization\":\"Bearer abc\"}}")
        #expect(stored.headers == ["Authorization": "Bearer abc"])
        let fresh = try dir.open()
        defer { fresh.close() }
        #expect(try fresh.get("h").headers?["Authorization"] == "Bearer abc")
        #expect(try fresh.get("h").withoutSecrets.headers == nil)
        #expect(!(try fresh.get("h").withoutSecrets.jsonText.contains("Bearer")))
        expectError(.invalid) { try r.register(json: "{\"id\":\"h2\",\"url\":\"http://127.0.0.1:9/\",\"headers\":{\"Bad Name\":\"x\"}}") }
        expectError(.invalid) { try r.register(json: "{\"id\":\"h2\",\"url\":\"http://127.0.0.1:9/\",\"headers\":{\"X\":\"a\\r\\nInjected: 1\"}}") }
        expectError(.invalid) { try r.register(json: "{\"id\":\"h2\",\"url\":\"http://127.0.0.1:9/\",\"headers\":{\"X\":1}}") }
    }
}

@Suite struct ConcurrentCloseTests {
    /// Closing a handle while 8 threads register through it: every call is OK or ECLOSED (failed
    /// before: EIO "flock ... Bad file descriptor", the lock dropped mid-write).
    @Test func closeWaitsForCallsInFlight() throws {
        for round in 0..<5 {
            let dir = TempRegistryDir()
            let r = try dir.open()
            let bad = Mutex<[String]>([])
            let started = Atomic<Int>(0)
            let group = DispatchGroup()
            for t in 0..<8 {
                DispatchQueue.global().async(group: group) {
                    for i in 0..<200 {
                        started.add(1, ordering: .relaxed)
                        if case .failure(let error) = attempt({ () throws(RegistryError) in _ = try r.register(entry("t\(t)-\(i)")) }) {
                            if error.code != .closed { bad.withLock { $0.append("\(error)") } }
                            return
                        }
                    }
                }
            }
            while started.load(ordering: .relaxed) < 8 * (round + 2) { usleep(100) }
            r.close()
            group.wait()
            #expect(bad.withLock { $0 } == [], "round \(round)")
            // Everything the handle registered left with it.
            let check = try dir.open()
            #expect(try check.list().servers.isEmpty)
            check.close()
        }
    }

    /// A watch closed from another thread wakes a `next` blocked forever (failed before: close
    /// blocked behind it).
    @Test func watchCloseWakesBlockedNext() throws {
        let dir = TempRegistryDir()
        let r = try dir.open()
        defer { r.close() }
        let watch = try RegistryWatch(r)
        let result = Mutex<RegistryError.Code?>(nil)
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            if case .failure(let e) = attempt({ () throws(RegistryError) in try watch.next(timeoutMilliseconds: -1) }) {
                result.withLock { $0 = e.code }
            }
            done.signal()
        }
        usleep(100_000)
        watch.close()
        #expect(done.wait(timeout: .now() + 5) == .success)
        #expect(result.withLock { $0 } == .closed)
        #expect(watch.fileDescriptor == -1)
    }
}

@Suite struct LockWaiterTests {
    /// 200 writes timing out against another process's lock took the writer from 2 threads to
    /// 202 and 609 descriptors; now one helper waits, however many time out.
    @Test func timedOutWaitersDoNotPileUp() throws {
        let dir = TempRegistryDir()
        var options = Registry.Options()
        options.lockTimeout = .milliseconds(20)
        let r = try dir.open(options)
        defer { r.close() }
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        holder.arguments = [dir.path + "/servers.json.lock", "sleep", "30"]
        try holder.run()
        defer { holder.terminate(); holder.waitUntilExit() }
        // Wait until it holds the lock.
        var waited = 0
        while waited < 500 {
            if case .failure(let e) = attempt({ () throws(RegistryError) in _ = try r.register(entry("probe", liveness: .none)) }), e.code == .timeout { break }
            usleep(10_000)
            waited += 1
        }
        // Process-wide thread counts move with the tests running in parallel: the bug added one
        // thread per timed-out write (200), so a margin of 20 still tells.
        let threadsBefore = taskCount()
        let lockPath = dir.path + "/servers.json.lock"
        for i in 0..<200 {
            expectError(.timeout) { try r.register(entry("w\(i)", liveness: .none)) }
        }
        #expect(taskCount() <= threadsBefore + 20, "threads \(threadsBefore) -> \(taskCount())")
        let lockDescriptors = fdTargets().filter { $0 == lockPath }.count
        #expect(lockDescriptors <= 2, "\(lockDescriptors) descriptors of the lock file (the handle's and one helper's at most)")
    }

    /// Without a thread to wait in, a contended write polls until its deadline — it never blocks
    /// without one (failed before: an untimed flock inline).
    @Test func noThreadMeansTimedPolling() throws {
        let dir = TempRegistryDir()
        var options = Registry.Options()
        options.lockTimeout = .milliseconds(100)
        let r = try dir.open(options)
        defer { r.close() }
        try r.register(entry("first", liveness: .none))
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        holder.arguments = [dir.path + "/servers.json.lock", "sleep", "30"]
        try holder.run()
        defer { holder.terminate(); holder.waitUntilExit() }
        usleep(300_000)
        Sys.injectFault(.thread, errno: EAGAIN, pathSuffix: dir.path + "/servers.json.lock", count: -1)
        defer { Sys.clearFaults(dir.path) }
        let start = Date()
        expectError(.timeout) { try r.register(entry("second", liveness: .none)) }
        #expect(Date().timeIntervalSince(start) < 5)
    }
}

@Suite struct LifetimeTests {
    /// A released HealthMonitor stops (failed before: its thread held it, deinit never ran).
    /// Its probes go to a listening socket of this test's own, so "it stopped" is observed as
    /// "no more connections arrive", whatever other tests' threads do meanwhile.
    @Test func releasedHealthMonitorStops() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(listener >= 0)
        defer { close(listener) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bind(listener, sa, length) == 0 && listen(listener, 128) == 0 && getsockname(listener, sa, &length) == 0
            }
        }
        #expect(bound)
        _ = fcntl(listener, F_SETFL, O_NONBLOCK)
        /// Connections the monitor made since the last call.
        func accepted() -> Int {
            var n = 0
            while case let fd = accept(listener, nil, nil), fd >= 0 { close(fd); n += 1 }
            return n
        }
        let dir = TempRegistryDir()
        let r = try dir.open()
        defer { r.close() }
        try r.register(entry("probed", port: Int(UInt16(bigEndian: addr.sin_port))))
        weak var weakMonitor: HealthMonitor?
        do {
            let monitor = r.startHealthMonitor(interval: .milliseconds(20), policy: ProbePolicy(timeout: .milliseconds(50)))
            weakMonitor = monitor
            #expect(monitor.isRunning)
            usleep(300_000)
        }
        #expect(accepted() > 0, "the monitor probed while held")
        #expect(weakMonitor == nil)
        usleep(200_000)  // a probe in progress at release may still land
        _ = accepted()
        usleep(400_000)
        #expect(accepted() == 0, "a released monitor went on probing")
    }

    /// Trackers (one inotify instance per leases directory) lived forever: opening many
    /// registries exhausted the per-user limit of 128. They go with their last handle now.
    @Test func leaseTrackersAreReleased() throws {
        // Other tests run in parallel and hold their own trackers, so count only the inotify
        // instances watching this test's `leases/` directories (kept alive, so their inodes are
        // unique), read from /proc/self/fdinfo ("inotify wd:1 ino:<hex> ...").
        func watchedInodes() -> [UInt64] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fdinfo")) ?? []
            return names.flatMap { name -> [UInt64] in
                guard let info = try? String(contentsOfFile: "/proc/self/fdinfo/" + name, encoding: .utf8) else { return [] }
                return info.split(separator: "\n").filter { $0.hasPrefix("inotify ") }.compactMap { line in
                    line.split(separator: " ").first { $0.hasPrefix("ino:") }.flatMap { UInt64($0.dropFirst(4), radix: 16) }
                }
            }
        }
        var dirs: [TempRegistryDir] = []
        var mine = Set<UInt64>()
        for _ in 0..<150 {
            let dir = TempRegistryDir()
            dirs.append(dir)
            let r = try dir.open()
            try r.register(entry("x"))
            _ = try r.list()
            var st = stat()
            #expect(stat(dir.path + "/leases", &st) == 0)
            mine.insert(UInt64(st.st_ino))
            let watched = watchedInodes().contains(UInt64(st.st_ino))
            #expect(watched, "an open handle's tracker watches its leases/")
            r.close()
        }
        let leaked = watchedInodes().filter { mine.contains($0) }.count
        #expect(leaked == 0, "\(leaked) of 150 closed registries still have an inotify watch")
    }

    /// fdopendir failing leaked the dup'ed descriptor (and it was not close-on-exec).
    @Test func pruneLeaksNothingWhenTheDirectoryCannotBeRead() throws {
        let dir = TempRegistryDir()
        let r = try dir.open()
        defer { r.close() }
        try r.register(entry("x"))
        // Descriptors of this test's registry only (other tests run in parallel).
        func mine() -> Int { fdTargets().filter { $0.hasPrefix(dir.path) }.count }
        let before = mine()
        Sys.injectFault(.opendir, errno: ENOMEM, pathSuffix: dir.path + "/leases", count: 5)
        defer { Sys.clearFaults(dir.path) }
        for _ in 0..<5 { expectError(.io) { try r.prune() } }
        #expect(mine() == before, "descriptors of the registry: \(before) -> \(mine())")
    }

    /// Creating the registry's directory fsyncs its parent, so the first registration cannot
    /// vanish with its directory on a power cut (failed before: no fsync of the parent).
    @Test func creatingTheDirectoryIsDurable() throws {
        let base = TempRegistryDir()
        try FileManager.default.createDirectory(atPath: base.path, withIntermediateDirectories: true)
        chmod(base.path, 0o700)
        let nested = base.path + "/a/b"
        Sys.injectFault(.fsync, errno: EIO, pathSuffix: base.path + "/a", count: 1)
        defer { Sys.clearFaults(base.path) }
        let error = expectError(.io) { _ = try Registry(path: nested + "/servers.json") }
        #expect(error?.syscall == "fsync")
        #expect(Sys.clearFaults(base.path) == [1])
    }
}

@Suite struct OwnershipTests {
    /// Another handle's explicit unregister of a held lease entry is refused, naming the pid:
    /// the owner would restore it.
    @Test func unregisterOfAHeldLeaseIsRefused() throws {
        let dir = TempRegistryDir()
        let owner = try dir.open()
        defer { owner.close() }
        try owner.register(entry("mine"))
        let other = try dir.open()
        defer { other.close() }
        let e = expectError(.permission) { try other.unregister("mine") }
        #expect(e?.message.contains("pid \(getpid())") == true, "\(String(describing: e))")
        #expect(try other.get("mine").id == "mine")
        try owner.unregister("mine")
        expectError(.notFound) { _ = try other.get("mine") }
    }

    /// An entry removed by a tool that bypasses the library is put back by its owner.
    @Test func ownerRestoresItsEntry() throws {
        let dir = TempRegistryDir()
        let owner = try dir.open()
        defer { owner.close() }
        try owner.register(entry("mine", tools: ["t"]))
        try owner.register(entry("other", liveness: .none))
        let reader = try dir.open()
        defer { reader.close() }
        // A legacy read-modify-write that lost our entry (and changed its URL in another round).
        rewriteInPlace(dir.file, "{\"servers\":[{\"id\":\"other\",\"url\":\"http://127.0.0.1:8080/mcp\",\"liveness\":\"none\"}]}\n")
        var restored = false
        for _ in 0..<300 {
            if (try? reader.get("mine"))?.capabilities.tools == ["t"] { restored = true; break }
            usleep(10_000)
        }
        #expect(restored)
        let text = try dir.contents().replacingOccurrences(of: "http://127.0.0.1:8080/mcp\",\"port\"", with: "http://127.0.0.1:9999/mcp\",\"port\"")
        rewriteInPlace(dir.file, text)
        var back = false
        for _ in 0..<300 {
            if (try? reader.get("mine"))?.url == "http://127.0.0.1:8080/mcp" { back = true; break }
            usleep(10_000)
        }
        #expect(back)
        // Health reported by others through the library is theirs to change: not reverted.
        try reader.setHealth("mine", .degraded, message: "seen slow")
        usleep(300_000)
        #expect(try reader.get("mine").health.status == .degraded)
    }

    /// What a handle records of its held entries (what it restores) follows them when other
    /// processes' writes move them in the file: each is found by id, never by a stale position.
    @Test func heldEntriesAreRestoredAsTheyWereAfterOthersMovedThem() throws {
        let dir = TempRegistryDir()
        let other = try dir.open()
        defer { other.close() }
        try other.register(entry("front1", liveness: .none))
        try other.register(entry("front2", liveness: .none))
        let owner = try dir.open()
        defer { owner.close() }
        try owner.register(entry("a", tools: ["ta"]))
        try owner.register(entry("b", tools: ["tb"]))
        try other.unregister("front1")          // a and b move up one place
        try owner.heartbeat("b")
        try other.register(entry("back", liveness: .none))   // they stay where they are
        try owner.heartbeat("a")
        try other.unregister("front2")          // and move again
        try owner.heartbeat("b")
        // A legacy writer drops both: the owner puts back each as it last wrote it.
        rewriteInPlace(dir.file, "{\"servers\":[{\"id\":\"back\",\"url\":\"http://127.0.0.1:8080/mcp\",\"liveness\":\"none\"}]}\n")
        let reader = try dir.open()
        defer { reader.close() }
        var servers: [ServerEntry] = []
        for _ in 0..<300 {
            servers = (try? reader.list().servers) ?? []
            if servers.count == 3 { break }
            usleep(10_000)
        }
        #expect(servers.map(\.id).sorted() == ["a", "b", "back"])
        #expect(servers.first { $0.id == "a" }?.capabilities.tools == ["ta"])
        #expect(servers.first { $0.id == "b" }?.capabilities.tools == ["tb"])
    }

    /// `onlyIfAbsent` refuses any live entry with the id, under the lock.
    @Test func registerOnlyIfAbsent() throws {
        let dir = TempRegistryDir()
        let r = try dir.open()
        defer { r.close() }
        try r.register(entry("s", liveness: .none), onlyIfAbsent: true)
        expectError(.exists) { try r.register(entry("s", liveness: .none), onlyIfAbsent: true) }
        try r.register(entry("s", port: 9, liveness: .none))
        #expect(try r.get("s").port == 9)
    }
}

@Suite struct TornReadTests {
    /// A file being rewritten in place (truncate, then write) is retried, not reported corrupt;
    /// one that stays unparseable is still ECORRUPT.
    @Test func tornReadsAreRetried() throws {
        let dir = TempRegistryDir()
        let r = try dir.open()
        defer { r.close() }
        try r.register(entry("a", liveness: .none))
        let good = Array(try dir.contents().utf8)
        // A legacy writer rewriting the file in place in two halves, over and over, while this
        // handle keeps reading it: every read must see a whole version.
        let file = dir.file
        let stop = Atomic<Bool>(false)
        let rewrites = Atomic<Int>(0)
        let writer = Thread {
            while !stop.load(ordering: .relaxed) {
                let fd = open(file, O_WRONLY | O_TRUNC)
                let half = good.count / 2
                _ = good.withUnsafeBytes { write(fd, $0.baseAddress, half) }
                usleep(300)
                _ = good.withUnsafeBytes { write(fd, $0.baseAddress! + half, good.count - half) }
                close(fd)
                rewrites.add(1, ordering: .relaxed)
                usleep(500)
            }
        }
        writer.start()
        var failures: [String] = []
        var reads = 0
        let deadline = Date().addingTimeInterval(10)
        while rewrites.load(ordering: .relaxed) < 200 && Date() < deadline {
            if case .failure(let e) = attempt({ () throws(RegistryError) in try r.get("a") }) { failures.append("\(e)") }
            reads += 1
        }
        stop.store(true, ordering: .relaxed)
        while !writer.isFinished { usleep(1000) }
        #expect(failures.isEmpty, "\(failures.count) of \(reads) reads failed: \(failures.prefix(2))")
        #expect(rewrites.load(ordering: .relaxed) >= 100)
        rewriteInPlace(dir.file, "{ not json")
        setMtime(dir.file, seconds: Int(Date().timeIntervalSince1970) - 60, nanos: 0)
        expectError(.corrupt) { _ = try r.list() }
        #expect(try dir.contents() == "{ not json", "a corrupt file is never overwritten")
        expectError(.corrupt) { try r.register(entry("b", liveness: .none)) }
        #expect(try dir.contents() == "{ not json")
    }
}

// Serialized: both tests read the process-wide count of refused closes, and the second one adds
// to it on purpose (run side by side, the first saw that close as its own).
@Suite(.serialized) struct DescriptorTests {
    /// A watch whose first read fails (a corrupt file) closes each of its descriptors once: its
    /// deinit, which runs after the failed init, used to close them again — by then the numbers
    /// could belong to a socket of the host program (NIO trapped on EBADF in the MCP tests).
    @Test func aWatchThatFailsToOpenClosesEachDescriptorOnce() throws {
        let dir = TempRegistryDir()
        let r = try dir.open()
        defer { r.close() }
        try dir.write("{ not json")
        let before = Sys.refusedCloses
        for _ in 0..<3 {
            expectError(.corrupt) { _ = try RegistryWatch(r) }
        }
        #expect(Sys.refusedCloses == before, "descriptors closed twice: \(Sys.refusedCloses - before)")
    }

    /// A descriptor the library no longer tracks is not closed again: whatever now has its number
    /// survives. (Numbers from 900 up, which nothing else in the test process uses.)
    @Test func aSecondCloseLeavesTheNumberAlone() throws {
        let devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        #expect(devnull >= 0)
        defer { close(devnull) }
        let fd = Sys.trackedCreate { fcntl(devnull, F_DUPFD_CLOEXEC, 900) }
        #expect(fd >= 900)
        Sys.closeTracked(fd)
        #expect(fcntl(fd, F_GETFD) < 0, "the first close closes")
        // Someone else is given the same number …
        let other = fcntl(devnull, F_DUPFD_CLOEXEC, fd)
        defer { close(other) }
        #expect(other == fd)
        let before = Sys.refusedCloses
        Sys.closeTracked(fd)
        #expect(fcntl(other, F_GETFD) >= 0, "the other owner's descriptor was closed")
        #expect(Sys.refusedCloses == before + 1)
    }
}
