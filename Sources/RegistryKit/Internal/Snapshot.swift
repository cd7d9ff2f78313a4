import Synchronization

/// One parsed version of the file, shared by all readers of a handle until the file changes.
/// The resolution index is built on first use, once per file generation.
final class Snapshot: Sendable {
    let document: RegistryDocument
    let stamp: FileStamp?
    private let lazyIndex = Mutex<ResolutionIndex?>(nil)
    private let lazyPositions = Mutex<[String: Int]?>(nil)

    init(document: RegistryDocument, stamp: FileStamp?) {
        self.document = document
        self.stamp = stamp
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

/// Hash tables from capability names to the entries declaring them.
struct ResolutionIndex: Sendable {
    var tools: [String: [Int]] = [:]
    var prompts: [String: [Int]] = [:]
    var resources: [String: [Int]] = [:]
    /// The distinct lengths (in UTF-8 bytes) of declared resources, longest first: a URI is
    /// resolved by looking up its prefixes of these lengths only.
    var resourceLengths: [Int] = []

    init(_ servers: [ServerEntry]) {
        var lengths = Set<Int>()
        for (i, e) in servers.enumerated() {
            for t in Set(e.capabilities.tools) { tools[t, default: []].append(i) }
            for p in Set(e.capabilities.prompts) { prompts[p, default: []].append(i) }
            for r in Set(e.capabilities.resources) {
                resources[r, default: []].append(i)
                lengths.insert(r.utf8.count)
            }
        }
        resourceLengths = lengths.sorted(by: >)
    }
}
