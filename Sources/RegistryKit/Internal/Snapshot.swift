import Synchronization

/// One parsed version of the file, shared by all readers of a handle until the file changes.
/// The resolution index is built on first use, once per file generation.
///
/// A snapshot knows the bytes it was read from (or written as) and when they were last
/// confirmed to be the file's contents: a file whose stamp has not changed is only trusted
/// without reading it again once that confirmation came after the window in which a rewrite
/// could have kept the same stamp (`FileStamp.sameStampWindowNanos`) — so coarse timestamps
/// and reused inode numbers cannot hide a change.
final class Snapshot: Sendable {
    let document: RegistryDocument
    let stamp: FileStamp?
    /// The file's bytes this snapshot is (empty when there is no file).
    let bytes: [UInt8]
    /// Wall-clock nanoseconds when `bytes` were last known to be the file's contents.
    private let confirmedAt: Atomic<Int64>
    private let lazyIndex = ForkSafeMutex<ResolutionIndex?>(nil)
    private let lazyPositions = ForkSafeMutex<[String: Int]?>(nil)
    /// The unfiltered listing's JSON, and which entries were alive when it was made.
    private let lazyListing = ForkSafeMutex<(alive: [Bool], json: [UInt8])?>(nil)

    /// The handle that wrote this version, when it is one of its own writes (nil for a read):
    /// while the file is unchanged, that handle's entries in it are exactly as it holds them.
    let writer: ObjectIdentifier?

    init(document: RegistryDocument, stamp: FileStamp?, bytes: [UInt8] = [], confirmedAt: Int64 = 0, writer: ObjectIdentifier? = nil) {
        self.document = document
        self.stamp = stamp
        self.bytes = bytes
        self.confirmedAt = Atomic(confirmedAt)
        self.writer = writer
    }

    /// Whether an unchanged stamp is not enough to trust this snapshot: it was last confirmed
    /// so soon after the file's mtime that a rewrite could have kept the same stamp.
    var needsContentCheck: Bool {
        guard let stamp else { return false }
        return confirmedAt.load(ordering: .relaxed) &- stamp.mtimeNanos < stamp.sameStampWindowNanos
    }

    /// The same file version with `document` (the same entries, encoded) in place of this one's,
    /// keeping what was built from them.
    func replacingDocument(_ document: RegistryDocument) -> Snapshot {
        let encoded = Snapshot(document: document, stamp: stamp, bytes: bytes, confirmedAt: confirmedAt.load(ordering: .relaxed), writer: writer)
        encoded.inherit(from: self, sameEntries: true)
        return encoded
    }

    /// The file was read at `time` (wall-clock ns) and found to hold `bytes`.
    func confirm(at time: Int64) {
        confirmedAt.store(time, ordering: .relaxed)
    }

    /// Entry positions by id, built on first use (writers never need it).
    var positionByID: [String: Int] {
        lazyPositions.withLock { positions in
            if let positions { return positions }
            var byID: [String: Int] = [:]
            byID.reserveCapacity(document.servers.count)
            document.servers.withUnsafeBufferPointer { buf in
                for i in buf.indices { byID[buf[i].id] = i }
            }
            positions = byID
            return byID
        }
    }

    /// Takes over what `older` already built that still holds here. `sameEntries`: this
    /// snapshot's entries are `older`'s (the file was rewritten with the same bytes, or they
    /// were encoded): all of it. Otherwise, when the entries are as many: the positions by id
    /// if the ids are the same in the same order, and the resolution index if every entry
    /// declares what the one in its place did (the file changed an entry in place, as a
    /// heartbeat or a health report does). The first `get` after another process's heartbeat
    /// then hashes no id, and the first `resolve` builds no index (4.4 M instructions at 1,000
    /// entries).
    func inherit(from older: Snapshot, sameEntries: Bool) {
        let positions = older.lazyPositions.withLock { $0 }
        let index = older.lazyIndex.withLock { $0 }
        if sameEntries {
            if let positions { lazyPositions.withLock { $0 = positions } }
            if let index { lazyIndex.withLock { $0 = index } }
            if let listing = older.lazyListing.withLock({ $0 }) { lazyListing.withLock { $0 = listing } }
            return
        }
        guard positions != nil || index != nil, document.servers.count == older.document.servers.count else { return }
        var sameIDs = positions != nil, sameCapabilities = index != nil
        document.servers.withUnsafeBufferPointer { a in
            older.document.servers.withUnsafeBufferPointer { b in
                for i in a.indices where sameIDs || sameCapabilities {
                    if sameIDs, a[i].id != b[i].id { sameIDs = false }
                    if sameCapabilities, !a[i].sameCapabilities(as: b[i]) { sameCapabilities = false }
                }
            }
        }
        if sameIDs, let positions { lazyPositions.withLock { $0 = positions } }
        if sameCapabilities, let index { lazyIndex.withLock { $0 = index } }
    }

    /// `{"generation":N,"servers":[...]}` of the entries `alive` marks (one flag per entry of the
    /// document), encoded once per version and live set.
    func listingJSON(alive: [Bool]) -> [UInt8] {
        if let cached = lazyListing.withLock({ $0 }), cached.alive == alive { return cached.json }
        let live = zip(document.servers, alive).compactMap { $1 ? $0 : nil }
        var out: [UInt8] = []
        out.reserveCapacity(64 + bytes.count)
        out.append(contentsOf: "{\"generation\":\(document.generation),\"servers\":".utf8)
        ServerEntry.appendJSONArray(live, into: &out)
        out.append(UInt8(ascii: "}"))
        lazyListing.withLock { $0 = (alive, out) }
        return out
    }

    static let empty = Snapshot(document: RegistryDocument(), stamp: nil)

    func entry(_ id: String) -> ServerEntry? {
        positionByID[id].map { document.servers[$0] }
    }

    var index: ResolutionIndex {
        lazyIndex.withLock { index in
            if let index { return index }
            let built = ResolutionIndex(document.servers)
            index = built
            return built
        }
    }
}

