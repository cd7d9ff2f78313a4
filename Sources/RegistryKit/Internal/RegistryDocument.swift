/// The whole registry file, decoded: format v1 (docs/FORMAT.md).
struct RegistryDocument: Sendable, Equatable {
    var version: Int64 = 1
    var generation: Int64 = 0
    var servers: [ServerEntry] = []
    /// Top-level fields this version does not know, kept as they were.
    var extra = JSONObject()

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
            guard let n = v.int64Value, n >= 0 else { throw corrupt("\"generation\" is not a non-negative integer") }
            doc.generation = n
        }
        if let v = top["servers"], v != .null { throw corrupt("\"servers\" is not an array") }
        let items = parsed.servers ?? []
        guard items.count <= limits.maxEntries else {
            throw RegistryError(.limit, "\(path) has \(items.count) entries, over the limit of \(limits.maxEntries)")
        }
        doc.servers.reserveCapacity(items.count)
        var ids = Set<String>()
        ids.reserveCapacity(items.count)
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
            if !entry.isLegacy, !ids.insert(entry.id).inserted {
                throw corrupt("servers[\(i)]: id \"\(entry.id)\" appears twice")
            }
            doc.servers.append(entry)
        }
        doc.assignLegacyIDs()
        for m in top.members where !["version", "generation", "servers"].contains(m.key) { doc.extra[m.key] = m.value }
        return doc
    }

    /// The file's bytes: known fields first, one entry per line (readable, and cheap to write).
    /// An entry still holding the bytes it was last encoded to (no field changed since) is
    /// copied, not encoded again; the others are encoded and keep their bytes for next time.
    mutating func encodeCaching() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256 + servers.count * 512)
        encodeHeader(into: &out)
        for i in servers.indices {
            out.append(contentsOf: (i == 0 ? "\n    " : ",\n    ").utf8)
            if let cached = servers[i].encoded {
                out.append(contentsOf: cached.bytes)
            } else {
                var bytes: [UInt8] = []
                bytes.reserveCapacity(512)
                JSONWriter.write(.object(servers[i].fileObject), into: &bytes)
                out.append(contentsOf: bytes)
                servers[i].encoded = EncodedBytes(bytes)
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

