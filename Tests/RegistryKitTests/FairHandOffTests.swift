import Foundation
import Synchronization
import Testing
@testable import RegistryKit

// The writers' fair hand-off (docs/FORMAT.md, "Writing"; issue 15). The waiting writer here is
// a real other process (python3 taking the same shared OFD byte lock a waiting library writer
// takes), so the marks are seen across processes and vanish when their holder is killed.

/// A process that marks itself waiting on `lockPath` (byte 2^30, shared OFD lock) until killed.
private final class WaitingMark {
    let process = Process()
    private let out = Pipe()

    init(lockPath: String) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", """
            import fcntl, os, struct, sys, time
            fd = os.open(sys.argv[1], os.O_RDWR)
            lock = struct.pack("@hhqqi", fcntl.F_RDLCK, os.SEEK_SET, 1 << 30, 1, 0).ljust(32, b"\\0")
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, lock)
            print("marked", flush=True)
            time.sleep(120)
            """, lockPath]
        process.standardOutput = out
        try process.run()
        let line = out.fileHandleForReading.availableData
        guard String(decoding: line, as: UTF8.self).hasPrefix("marked") else {
            throw RegistryError(.io, "the waiting-mark process did not start")
        }
    }

    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

@Test func aWriterThatHeldTheLockLastLetsAWaitingProcessInFirst() throws {
    let dir = TempRegistryDir()
    let r = try dir.open()
    defer { r.close() }
    try r.register(entry("hot", liveness: .none))  // this process's pid is now in the lock file
    let lockPath = dir.path + "/servers.json.lock"
    let probe = open(lockPath, O_RDWR | O_CLOEXEC)
    defer { close(probe) }
    #expect(!Sys.othersWaiting(probe, offset: FileLock.waitingByte, path: lockPath))

    let waiter = try WaitingMark(lockPath: lockPath)
    #expect(Sys.othersWaiting(probe, offset: FileLock.waitingByte, path: lockPath))
    // A wide window, so that what ends the wait below is the lock changing hands, not time.
    FileLock.handOffMicros.store(60_000_000, ordering: .relaxed)
    defer { FileLock.handOffMicros.store(5000, ordering: .relaxed) }

    let done = Atomic<Bool>(false)
    let handedOver = Atomic<Bool>(false)
    let wentAheadAfterHandOver = Atomic<Bool>(false)
    let writer = Thread {
        _ = try? r.heartbeat("hot")
        // The write may only have gone ahead once another pid was in the lock file.
        wentAheadAfterHandOver.store(handedOver.load(ordering: .acquiring), ordering: .releasing)
        done.store(true, ordering: .releasing)
    }
    writer.start()
    Thread.sleep(forTimeInterval: 1.0)
    let doneNow1 = done.load(ordering: .acquiring)
    #expect(!doneNow1, "the write did not wait for the waiting process")
    // Another process takes the lock: it writes its pid, as every holder does.
    handedOver.store(true, ordering: .releasing)
    let fd = open(lockPath, O_WRONLY | O_CLOEXEC)
    _ = "1\n".withCString { write(fd, $0, 2) }
    ftruncate(fd, 2)
    close(fd)
    let deadline = Date().addingTimeInterval(20)
    while !done.load(ordering: .acquiring), Date() < deadline { usleep(2000) }
    let doneNow2 = done.load(ordering: .acquiring)
    #expect(doneNow2, "the write never went ahead after the hand-off")
    let wentAheadAfterHandOverNow3 = wentAheadAfterHandOver.load(ordering: .acquiring)
    #expect(wentAheadAfterHandOverNow3)

    // The kernel drops a killed process's mark: nobody waits, nothing yields.
    waiter.kill9()
    #expect(!Sys.othersWaiting(probe, offset: FileLock.waitingByte, path: lockPath))
    try r.heartbeat("hot")  // our pid again
    let quick = Atomic<Bool>(false)
    let second = Thread {
        _ = try? r.heartbeat("hot")
        quick.store(true, ordering: .releasing)
    }
    second.start()
    let limit = Date().addingTimeInterval(20)
    while !quick.load(ordering: .acquiring), Date() < limit { usleep(2000) }
    let quickNow4 = quick.load(ordering: .acquiring)
    #expect(quickNow4, "a write yielded with nobody waiting")
}

@Test func theWaitingMarkIsOptional() throws {
    // Where OFD locks fail (no fcntl locks on the filesystem), writes go on as before.
    let dir = TempRegistryDir()
    let r = try dir.open()
    defer { r.close() }
    Sys.injectFault(.fcntl, errno: ENOLCK, pathSuffix: dir.path + "/servers.json.lock", count: 100)
    try r.register(entry("a", liveness: .none))
    try r.heartbeat("a")
    let fired = Sys.clearFaults(dir.path)
    #expect(fired.reduce(0, +) >= 2, "the probe was never made")
    #expect(try r.get("a").id == "a")
}
