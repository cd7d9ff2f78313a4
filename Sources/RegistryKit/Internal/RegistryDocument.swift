#if canImport(Glibc)
import Glibc
#endif

/// The whole registry file, decoded: format v1 (docs/FORMAT.md).
struct RegistryDocument: Sendable, Equatable {
    var version: Int64 = 1
    var generation: Int64 = 0
    var servers: [ServerEntry] = []
    /// Top-level fields this version does not know, kept as they were.
    var extra = JSONObject()

    /// The largest generation a file may hold: 2^53 - 1, the largest integer every reader
    /// (JavaScript's numbers included) reads exactly. A file with more is corrupt; a write that
    /// would pass it is refused.
    static let maxGeneration: Int64 = (1 << 53) - 1

    /// Decodes and validates the file's bytes. Any problem is `.corrupt` naming the path and,
    /// for parse errors, the line and column; oversized content is `.limit`.
    static func decode(_ bytes: [UInt8], path: String, limits: RegistryLimits,
                       previous: RegistryDocument? = nil) throws(RegistryError) -> RegistryDocument {
        guard bytes.count <= limits.maxFileBytes else {
            throw RegistryError(.limit, "\(path) is \(bytes.count) bytes, over the limit of \(limits.maxFileBytes)")
        }
        // Entries whose bytes are unchanged since the version read before are reused, not
        // parsed: writers copy unchanged entries byte for byte (see `encodeCaching`).
        let old = previous?.servers ?? []
        let known: [[UInt8]?] = old.map { $0.isLegacy ? nil : ($0.readBytes ?? $0.encoded)?.bytes }
        let parsed: (top: JSONValue, servers: [JSONParser.ServersElement]?)
        do throws(JSONParseError) {
            parsed = try bytes.withUnsafeBufferPointer { buf throws(JSONParseError) in
                try JSONParser.parseRegistry(buf, maxDepth: limits.maxDepth, previous: known)
            }
        } catch {
            throw RegistryError(.corrupt, "\(path) is not valid JSON: \(error.description); run `peer-registry repair` to move it aside")
        }
        func corrupt(_ why: String) -> RegistryError {
            RegistryError(.corrupt, "\(path): \(why); run `peer-registry repair` to move it aside")
        }
        guard case .object(let top) = parsed.top else { throw corrupt("the top level is not an object") }
        var doc = RegistryDocument()
        if let v = top["version"] {
            guard let n = v.int64Value, n >= 1 else { throw corrupt("\"version\" is not a positive integer") }
            doc.version = n
        }
        if let v = top["generation"] {
            guard let n = v.int64Value, n >= 0, n <= maxGeneration else {
                throw corrupt("\"generation\" is not an integer from 0 to \(maxGeneration)")
            }
            doc.generation = n
        }
        if let v = top["servers"], v != .null { throw corrupt("\"servers\" is not an array") }
        let items = parsed.servers ?? []
        guard items.count <= limits.maxEntries else {
            throw RegistryError(.limit, "\(path) has \(items.count) entries, over the limit of \(limits.maxEntries)")
        }
        doc.servers.reserveCapacity(items.count)
        // Ids are checked for duplicates unless they are the previous version's, in the same
        // order (a heartbeat or a health report changes an entry in place): that version's
        // were checked, and hashing 1,000 ids was a fifth of such a read.
        var sameIDs = items.count == old.count
        var ids = Set<String>()
        for (i, item) in items.enumerated() {
            var entry: ServerEntry
            switch item {
            case .reused(let k):
                entry = old[k]
            case .parsed(let value, let range):
                guard case .object(let object) = value else { throw corrupt("servers[\(i)] is not an object") }
                do throws(RegistryError) {
                    entry = try ServerEntry(json: object, source: .file, limits: limits)
                    entry.readBytes = EncodedBytes(Array(bytes[range]))
                } catch {
                    if error.code == .limit { throw RegistryError(.limit, "\(path): servers[\(i)]: \(error.message)") }
                    throw corrupt("servers[\(i)]: \(error.message)")
                }
            }
            if sameIDs {
                sameIDs = old.withUnsafeBufferPointer { $0[i].id == entry.id && $0[i].isLegacy == entry.isLegacy }
                if !sameIDs {
                    // Check the entries so far, then go on one by one.
                    ids.reserveCapacity(items.count)
                    for e in doc.servers where !e.isLegacy { ids.insert(e.id) }
                }
            }
            if !sameIDs, !entry.isLegacy, !ids.insert(entry.id).inserted {
                throw corrupt("servers[\(i)]: id \"\(entry.id)\" appears twice")
            }
            doc.servers.append(entry)
        }
        doc.assignLegacyIDs()
        for m in top.members where !["version", "generation", "servers"].contains(m.key) { doc.extra[m.key] = m.value }
        return doc
    }

    /// What `repair` keeps of a file that `decode` refuses: every entry that still validates by
    /// the file's rules (duplicates after the first dropped), and the generation if readable.
    /// A file that parses as JSON keeps its valid entries and unknown top-level fields; one that
    /// does not is read line by line (the library writes one entry per line) for entry objects.
    static func salvage(_ bytes: [UInt8], limits: RegistryLimits) -> RegistryDocument {
        var doc = RegistryDocument()
        var ids = Set<String>()
        // A value at `depth` in the file fits when its deepest container is within the limit.
        func fits(_ value: JSONValue, atDepth depth: Int) -> Bool {
            func containers(_ v: JSONValue) -> Int {
                switch v {
                case .array(let items): return 1 + (items.map(containers).max() ?? 0)
                case .object(let o): return 1 + (o.members.map { containers($0.value) }.max() ?? 0)
                default: return 0
                }
            }
            return depth + containers(value) - 1 <= limits.maxDepth
        }
        func keep(_ value: JSONValue) {
            guard doc.servers.count < limits.maxEntries, case .object(let object) = value, fits(value, atDepth: 3),
                  let entry = try? ServerEntry(json: object, source: .file, limits: limits)
            else { return }
            if !entry.isLegacy { guard ids.insert(entry.id).inserted else { return } }
            doc.servers.append(entry)
        }
        func generation(_ v: JSONValue?) -> Int64? {
            guard let n = v?.int64Value, n >= 0, n <= maxGeneration else { return nil }
            return n
        }
        let whole = try? bytes.withUnsafeBufferPointer { buf throws(JSONParseError) in
            try JSONParser.parse(buf, maxDepth: 64)
        }
        if case .object(let top)? = whole {
            doc.generation = generation(top["generation"]) ?? 0
            if case .array(let items)? = top["servers"] { items.forEach(keep) }
            for m in top.members where !["version", "generation", "servers"].contains(m.key) && fits(m.value, atDepth: 2) {
                doc.extra[m.key] = m.value
            }
        } else {
            for line in bytes.split(separator: UInt8(ascii: "\n")) {
                var text = line.drop { $0 == 0x20 || $0 == 0x09 }
                while let last = text.last, last == 0x20 || last == 0x09 || last == 0x0D || last == UInt8(ascii: ",") { text = text.dropLast() }
                if text.starts(with: "\"generation\":".utf8) {
                    let digits = text.dropFirst(13).drop { $0 == 0x20 }
                    doc.generation = Int64(String(decoding: digits, as: UTF8.self)).flatMap { $0 <= maxGeneration ? $0 : nil } ?? doc.generation
                    continue
                }
                guard text.first == UInt8(ascii: "{"), text.last == UInt8(ascii: "}") else { continue }
                let value = try? Array(text).withUnsafeBufferPointer { buf throws(JSONParseError) in
                    try JSONParser.parse(buf, maxDepth: max(0, limits.maxDepth - 2))
                }
                if let value { keep(value) }
            }
        }
        doc.assignLegacyIDs()
        return doc
    }

    /// Whether every one of `entries` (encoded entry bytes) is a line of `bytes` as `encodeCaching`
    /// writes them (indented, a comma after all but the last). One pass over the file.
    static func linesContain(_ bytes: [UInt8], _ entries: [[UInt8]]) -> Bool {
        guard !entries.contains(where: \.isEmpty) else { return false }
        // Candidates by line length, then compared with memcmp: no hashing of every line (the
        // generic Array hash cost about 1 ms per 50 KB file, on every anti-entropy check).
        var wanted: [Int: [Int]] = [:]
        for (i, e) in entries.enumerated() { wanted[e.count, default: []].append(i) }
        var found = Set<Int>()
        return bytes.withUnsafeBufferPointer { file -> Bool in
            guard let base = file.baseAddress else { return false }
            var start = 0
            while start < file.count {
                let end = memchr(base + start, 0x0A, file.count - start).map { UnsafePointer<UInt8>($0.assumingMemoryBound(to: UInt8.self)) - base } ?? file.count
                var lo = start, hi = end
                while lo < hi, file[lo] == 0x20 { lo += 1 }
                if hi > lo, file[hi - 1] == UInt8(ascii: ",") { hi -= 1 }
                if hi > lo, file[lo] == UInt8(ascii: "{"), let candidates = wanted[hi - lo] {
                    for i in candidates where !found.contains(i) {
                        let same = entries[i].withUnsafeBufferPointer { memcmp($0.baseAddress!, base + lo, hi - lo) == 0 }
                        if same { found.insert(i) }
                    }
                    if found.count == entries.count { return true }
                }
                start = end + 1
            }
            return found.count == entries.count
        }
    }

    /// The file's bytes: known fields first, one entry per line (readable, and cheap to write).
    /// An entry still holding the bytes it was last encoded to (no field changed since) is
    /// copied, not encoded again; the others are encoded and keep their bytes for next time.
    mutating func encodeCaching() -> [UInt8] {
        var fresh: [Int] = []
        return encodeCaching(freshlyEncoded: &fresh)
    }

    /// `encodeCaching`, telling which entries had to be encoded (changed or new ones).
    mutating func encodeCaching(freshlyEncoded fresh: inout [Int]) -> [UInt8] {
        // Entries are read through the buffer (borrowed): subscripting the array for a field
        // copied the whole entry (about ten retains and releases) per entry and write.
        let missing = servers.withUnsafeBufferPointer { buf in buf.indices.filter { buf[$0].encoded == nil } }
        for i in missing {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(512)
            JSONWriter.write(.object(servers[i].fileObject), into: &bytes)
            servers[i].encoded = EncodedBytes(bytes)
            fresh.append(i)
        }
        var out: [UInt8] = []
        out.reserveCapacity(256 + servers.count * 512)
        encodeHeader(into: &out)
        servers.withUnsafeBufferPointer { buf in
            for i in buf.indices {
                out.append(contentsOf: (i == 0 ? "\n    " : ",\n    ").utf8)
                if let cached = buf[i].encoded { out.append(contentsOf: cached.bytes) }
            }
        }
        out.append(contentsOf: (servers.isEmpty ? "]\n}\n" : "\n  ]\n}\n").utf8)
        return out
    }

    /// Gives every legacy entry (no id in the file) its derived id: `port-<port>`, or
    /// `port-<port>-2`, `-3`, ... when that is taken — by a real id or an earlier legacy entry.
    /// Derived ids are never written and are worked out again after every change, so a real id
    /// never collides with one, whatever the order of the entries.
    mutating func assignLegacyIDs() {
        guard servers.contains(where: \.isLegacy) else { return }
        var taken = Set(servers.lazy.filter { !$0.isLegacy }.map(\.id))
        for i in servers.indices where servers[i].isLegacy {
            let port = servers[i].port ?? servers[i].url.flatMap(ServerEntry.port(fromURL:)) ?? 0
            var id = "port-\(port)"
            var n = 2
            while taken.contains(id) {
                id = "port-\(port)-\(n)"
                n += 1
            }
            taken.insert(id)
            if servers[i].id != id { servers[i].id = id }
        }
    }

    /// Reads entry `i`'s encoded bytes back as `decode` would read them in the file — at depth 3
    /// (top-level object, `servers` array, entry) and by the file's validation rules — so that
    /// a write can refuse what its own reader would refuse.
    /// - Throws: `.limit` (e.g. nesting too deep in the file) or `.invalid`, naming the entry.
    func checkReadable(entryAt i: Int, limits: RegistryLimits) throws(RegistryError) {
        guard servers.indices.contains(i), let bytes = servers[i].encoded?.bytes else { return }
        let id = servers[i].id
        let parsed: JSONValue
        do throws(JSONParseError) {
            parsed = try bytes.withUnsafeBufferPointer { buf throws(JSONParseError) in
                try JSONParser.parse(buf, maxDepth: max(0, limits.maxDepth - 2))
            }
        } catch {
            throw RegistryError(error.isLimit ? .limit : .invalid, "entry \"\(id.prefix(80))\" would make the registry unreadable: \(error.description) (at most \(limits.maxDepth) levels of nesting in the file, \(max(0, limits.maxDepth - 3)) inside an entry's values)")
        }
        guard case .object(let object) = parsed else { throw RegistryError(.invalid, "entry \"\(id.prefix(80))\" does not encode to an object") }
        do throws(RegistryError) {
            _ = try ServerEntry(json: object, source: .file, limits: limits)
        } catch {
            throw RegistryError(error.code, "entry \"\(id.prefix(80))\" would make the registry unreadable: \(error.message)")
        }
    }

    /// Whether some entry has no encoded JSON yet (as after reading another writer's file).
    var hasUnencodedEntries: Bool { servers.contains { $0.encoded == nil } }

    /// Encodes the entries that have no encoded JSON yet, and keeps it with them.
    mutating func encodeMissing() {
        for i in servers.indices where servers[i].encoded == nil {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(512)
            JSONWriter.write(.object(servers[i].fileObject), into: &bytes)
            servers[i].encoded = EncodedBytes(bytes)
        }
    }

    /// The file's bytes (see `encodeCaching`).
    func encode() -> [UInt8] {
        var copy = self
        return copy.encodeCaching()
    }

    private func encodeHeader(into out: inout [UInt8]) {
        out.append(contentsOf: "{\n  \"version\": \(version),\n  \"generation\": \(generation),\n".utf8)
        for m in extra.members {
            out.append(contentsOf: "  ".utf8)
            JSONWriter.writeString(m.key, into: &out)
            out.append(contentsOf: ": ".utf8)
            JSONWriter.write(m.value, into: &out)
            out.append(contentsOf: ",\n".utf8)
        }
        out.append(contentsOf: "  \"servers\": [".utf8)
    }
}

