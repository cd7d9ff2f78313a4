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

    /// The same file version with `document` (the same entries, encoded) in place of this one's.
    func replacingDocument(_ document: RegistryDocument) -> Snapshot {
        Snapshot(document: document, stamp: stamp, bytes: bytes, confirmedAt: confirmedAt.load(ordering: .relaxed), writer: writer)
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
            for (i, e) in document.servers.enumerated() { byID[e.id] = i }
            positions = byID
            return byID
        }
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

