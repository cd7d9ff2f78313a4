#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import RegistryKit

// The anti-entropy thread's two decisions (issue 15): whether a batch of inotify events may be a
// bypassing writer's change, and whether the file still holds this handle's entries.

/// One inotify_event as the kernel lays it out: the header, then the name padded with NULs.
private func event(_ mask: Int32, _ name: String, cookie: UInt32 = 0) -> [UInt8] {
    var nameBytes = Array(name.utf8) + [0]
    while nameBytes.count % 16 != 0 { nameBytes.append(0) }
    var ev = inotify_event()
    ev.wd = 1
    ev.mask = UInt32(mask)
    ev.cookie = cookie
    ev.len = UInt32(nameBytes.count)
    var out = withUnsafeBytes(of: &ev) { Array($0) }
    out.append(contentsOf: nameBytes)
    return out
}

private func relevant(_ batches: [[UInt8]]) -> [Bool] {
    var renames = LibraryRenames()
    return batches.map { AntiEntropy.namesFile($0, count: $0.count, fileName: "servers.json", libraryRenames: &renames) }
}

@Test func aLibraryRenameIsNotABypassingWriteEvenWhenItsHalvesArriveInTwoReads() {
    let from = event(IN_MOVED_FROM, "servers.json.tmp", cookie: 77)
    let to = event(IN_MOVED_TO, "servers.json", cookie: 77)
    #expect(relevant([event(IN_CLOSE_WRITE, "servers.json.tmp") + from + to]) == [false])
    // The kernel queues the two halves one after the other: a read can end between them.
    // Before the cookies were kept across reads, the second read counted as a foreign write.
    #expect(relevant([event(IN_CLOSE_WRITE, "servers.json.tmp") + from, to]) == [false, false])
    // A cookie is used once: the same MOVED_TO again is someone else's rename.
    #expect(relevant([from, to, to]) == [false, false, true])
}

@Test func whatABypassingWriterDoesIsRelevant() {
    #expect(relevant([event(IN_CLOSE_WRITE, "servers.json")]) == [true])              // written in place
    #expect(relevant([event(IN_DELETE, "servers.json")]) == [true])                   // deleted
    #expect(relevant([event(IN_MOVED_FROM, "servers.json", cookie: 5)]) == [true])    // moved away
    #expect(relevant([event(IN_MOVED_FROM, "other.tmp", cookie: 9) + event(IN_MOVED_TO, "servers.json", cookie: 9)]) == [true])
    #expect(relevant([event(IN_Q_OVERFLOW, "")]) == [true])
    // Other files of the directory are not.
    #expect(relevant([event(IN_CLOSE_WRITE, "servers.json.lock") + event(IN_DELETE, "notes.txt")]) == [false])
}

@Test func linesContainFindsEachEntryLineOnlyWhole() {
    let a = Array(#"{"id":"a","url":"http://127.0.0.1:1/mcp"}"#.utf8)
    let b = Array(#"{"id":"b","url":"http://127.0.0.1:2/mcp"}"#.utf8)
    let file = Array("{\"version\":1,\"generation\":3,\"servers\":[\n  ".utf8) + a + Array(",\n  ".utf8) + b + Array("\n]}\n".utf8)
    #expect(RegistryDocument.linesContain(file, [a, b]))
    #expect(RegistryDocument.linesContain(file, [b]))
    // Same length, one byte different: not there.
    var c = b
    c[8] = UInt8(ascii: "c")
    #expect(!RegistryDocument.linesContain(file, [a, c]))
    // A prefix of a line is not the line.
    #expect(!RegistryDocument.linesContain(file, [Array(a.dropLast())]))
    #expect(!RegistryDocument.linesContain(file, [[]]))
    #expect(!RegistryDocument.linesContain([], [a]))
}
