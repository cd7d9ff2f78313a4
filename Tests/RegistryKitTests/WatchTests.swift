import Foundation
import Testing
@testable import RegistryKit

@Suite struct WatchTests {
    @Test func eventsArriveInOrderCoalescedAndWithoutDuplicates() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open(), writer = try dir.open()
        defer { reg.close(); writer.close() }
        let watch = try RegistryWatch(reg)
        defer { watch.close() }
        #expect(try watch.next(timeoutMilliseconds: 0) == nil, "the state at open is the baseline, not an event")

        try writer.register(entry("a", port: 1))
        let e1 = try #require(try watch.next(timeoutMilliseconds: 2000))
        #expect(e1.added.map(\.id) == ["a"] && e1.removed.isEmpty && e1.changed.isEmpty)
        #expect(e1.generation == 1)
        #expect(try watch.next(timeoutMilliseconds: 0) == nil, "no duplicate")

        // Several writes between two reads: one diff against the last state seen.
        try writer.register(entry("b", port: 2))
        try writer.setHealth("a", .healthy)
        try writer.unregister("b")
        try writer.register(entry("c", port: 3))
        let e2 = try #require(try watch.next(timeoutMilliseconds: 2000))
        #expect(e2.added.map(\.id) == ["c"])
        #expect(e2.changed.map(\.id) == ["a"])
        #expect(e2.changed.first?.health.status == .healthy)
        #expect(e2.removed.isEmpty, "b came and went between reads")
        #expect(e2.generation == 5)
    }

    @Test func killedLeaseOwnerIsReportedRemovedWithoutAnotherWriter() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        let owner = try Worker(["hold", dir.file, #"{"id":"victim","url":"http://127.0.0.1:7/"}"#])
        #expect(owner.waitFor { $0 == "ACK victim" })
        let watch = try RegistryWatch(reg)
        defer { watch.close() }
        let generation = try reg.generation()
        owner.kill9()
        let event = try #require(try watch.next(timeoutMilliseconds: 3000))
        #expect(event.removed.map(\.id) == ["victim"])
        #expect(event.removed.first?.pid == owner.process.processIdentifier, "the last entry seen")
        #expect(try reg.generation() == generation, "nobody wrote: the death itself was seen")
    }

    @Test func ttlExpiryIsAnEvent() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        var e = entry("brief", liveness: .ttl)
        e.ttlSeconds = 1
        try reg.register(e)
        let watch = try RegistryWatch(reg)
        defer { watch.close() }
        let event = try #require(try watch.next(timeoutMilliseconds: 3000))
        #expect(event.removed.map(\.id) == ["brief"])
    }

    @Test func fileDescriptorIsReadableWhenAnEventIsPending() throws {
        let dir = TempRegistryDir()
        let reg = try dir.open()
        defer { reg.close() }
        let watch = try RegistryWatch(reg)
        defer { watch.close() }
        var p = pollfd(fd: watch.fileDescriptor, events: Int16(POLLIN), revents: 0)
        #expect(poll(&p, 1, 0) == 0)
        try reg.register(entry("x"))
        #expect(poll(&p, 1, 2000) == 1)
        #expect(try watch.next(timeoutMilliseconds: 0)?.added.map(\.id) == ["x"])
        p.revents = 0
        #expect(poll(&p, 1, 50) == 0, "drained: quiet again")
        watch.close()
        #expect(watch.fileDescriptor == -1)
        expectError(.closed) { _ = try watch.next(timeoutMilliseconds: 0) }
    }

    @Test func asyncSequenceOfChanges() async throws {
        let dir = TempRegistryDir()
        let reg = try dir.open(), writer = try dir.open()
        defer { reg.close(); writer.close() }
        let stream = try reg.changes()
        let collector = Task {
            var ids: [String] = []
            for try await event in stream {
                ids += event.added.map { "+\($0.id)" } + event.removed.map { "-\($0.id)" }
                if ids.count >= 3 { break }
            }
            return ids
        }
        try writer.register(entry("one", port: 1))
        try await Task.sleep(for: .milliseconds(50))
        try writer.register(entry("two", port: 2))
        try await Task.sleep(for: .milliseconds(50))
        try writer.unregister("one")
        let ids = try await collector.value
        #expect(ids == ["+one", "+two", "-one"])
    }
}
