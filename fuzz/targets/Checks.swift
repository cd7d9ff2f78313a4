// Invariants shared by the fuzz targets. Compiled into module RegistryKit together with its
// sources (fuzz/build.sh), so internal types (JSONParser, RegistryDocument, ...) are reachable.
//
// A violated invariant calls `fuzzFail`, which prints what broke and aborts: libFuzzer saves
// the input as a crash artifact, the replay harness reports the file.
#if canImport(Glibc)
import Glibc
#endif

/// Writes to stderr (fd 2) without touching C's `stderr` global (not concurrency-safe in Swift 6).
func errPrint(_ s: String) {
    var bytes = Array(s.utf8)
    bytes.append(0x0A)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

func fuzzFail(_ what: String, _ input: [UInt8]) -> Never {
    let shown = String(decoding: input.prefix(300), as: UTF8.self)
    errPrint("FUZZ INVARIANT BROKEN: \(what)\n  input (\(input.count) bytes, first 300 shown): \(shown)")
    abort()
}

enum FuzzChecks {
    static let limits = RegistryLimits.default

    /// The strict JSON parser on raw bytes.
    /// - success implies the whole input is valid UTF-8, is at most `maxDepth` deep, and
    ///   writing the value and parsing it again gives the same value (exact round trip);
    /// - failure carries a reason and a position inside the input.
    static func json(_ bytes: [UInt8]) {
        let parsed: JSONValue
        do throws(JSONParseError) {
            parsed = try bytes.withUnsafeBufferPointer { buf throws(JSONParseError) in
                try JSONParser.parse(buf, maxDepth: limits.maxDepth)
            }
        } catch {
            if error.reason.isEmpty { fuzzFail("parse error without a reason", bytes) }
            if error.offset < 0 || error.offset > bytes.count { fuzzFail("parse error offset \(error.offset) outside the input", bytes) }
            if error.line < 1 || error.column < 1 { fuzzFail("parse error at line \(error.line) column \(error.column)", bytes) }
            return
        }
        if String(validating: bytes, as: UTF8.self) == nil { fuzzFail("accepted invalid UTF-8", bytes) }
        if depth(parsed) > limits.maxDepth { fuzzFail("accepted nesting \(depth(parsed)) > \(limits.maxDepth)", bytes) }
        var written: [UInt8] = []
        JSONWriter.write(parsed, into: &written)
        do throws(JSONParseError) {
            let again = try written.withUnsafeBufferPointer { buf throws(JSONParseError) in
                try JSONParser.parse(buf, maxDepth: limits.maxDepth)
            }
            if again != parsed { fuzzFail("JSON round trip changed the value", bytes) }
        } catch {
            fuzzFail("written JSON does not parse again: \(error)", bytes)
        }
    }

    static func depth(_ v: JSONValue) -> Int {
        switch v {
        case .array(let items): return 1 + (items.map(depth).max() ?? 0)
        case .object(let o): return 1 + (o.members.map { depth($0.value) }.max() ?? 0)
        default: return 0
        }
    }

    /// The file decoder: never traps; fails only with ECORRUPT or ELIMIT naming the path; a
    /// decoded document survives encode → decode unchanged, and encoding is a fixpoint.
    static func document(_ bytes: [UInt8]) {
        json(bytes)
        incremental(bytes)
        let doc: RegistryDocument
        do throws(RegistryError) {
            doc = try RegistryDocument.decode(bytes, path: "/fuzz/servers.json", limits: limits)
        } catch {
            guard error.code == .corrupt || error.code == .limit else { fuzzFail("decode failed with \(error.code.name): \(error.message)", bytes) }
            guard error.message.contains("/fuzz/servers.json") else { fuzzFail("decode error does not name the file: \(error.message)", bytes) }
            return
        }
        checkDocument(doc, bytes)
        let encoded = doc.encode()
        let again: RegistryDocument
        do throws(RegistryError) {
            again = try RegistryDocument.decode(encoded, path: "/fuzz/servers.json", limits: limits)
        } catch {
            fuzzFail("re-encoded document does not decode: \(error)", bytes)
        }
        if again != doc { fuzzFail("encode → decode changed the document: " + difference(doc, again), bytes) }
        if again.encode() != encoded { fuzzFail("encoding is not a fixpoint", bytes) }
        // What the C ABI hands out for each entry parses as JSON and names the same id.
        for e in doc.servers {
            guard case .object(let o)? = try? JSONValue.parse(e.jsonText, limits: limits) else { fuzzFail("entry JSON does not parse", bytes) }
            if !e.isLegacy, o["id"] != .string(e.id) { fuzzFail("entry JSON lost its id", bytes) }
        }
    }

    /// Re-reading with the previous version's entries (decode(_:previous:) reuses an entry whose
    /// bytes equal those it was read or written with) gives exactly what a fresh decode gives:
    /// same success or failure code, equal documents, identical encodings. The input is one
    /// file, or two separated by a line "--" (the version read before, then the current one).
    static func incremental(_ bytes: [UInt8]) {
        var previousBytes = bytes
        var currents: [[UInt8]] = []
        let separator: [UInt8] = Array("\n--\n".utf8)
        if let cut = firstRange(of: separator, in: bytes) {
            previousBytes = Array(bytes[..<cut.lowerBound])
            currents.append(Array(bytes[cut.upperBound...]))
        }
        guard let previous = try? RegistryDocument.decode(previousBytes, path: "/fuzz/servers.json", limits: limits) else { return }
        // Also: the same bytes again, and the library's own encoding of them (what a writer
        // that read them writes), reusing either what was read or what was written.
        var written = previous
        let encoded = written.encodeCaching()
        currents += [previousBytes, encoded]
        for current in currents {
            let fresh = Result { () throws(RegistryError) in try RegistryDocument.decode(current, path: "/fuzz/servers.json", limits: limits) }
            for base in [previous, written] {
                let reused = Result { () throws(RegistryError) in try RegistryDocument.decode(current, path: "/fuzz/servers.json", limits: limits, previous: base) }
                switch (fresh, reused) {
                case (.success(let a), .success(let b)):
                    if let why = contentDifference(a, b) { fuzzFail("decode with the previous version differs from a fresh decode: " + why, bytes) }
                    // Swift equality must not depend on the cached bytes either (regression: it did,
                    // fuzz/corpus/parser/regress-entry-equality-depends-on-cached-bytes).
                    if a != b { fuzzFail("equal documents compare unequal (== depends on cached bytes?): " + difference(a, b), bytes) }
                    if a.servers.map(\.hashValue) != b.servers.map(\.hashValue) { fuzzFail("equal entries hash differently", bytes) }
                case (.failure(let a), .failure(let b)):
                    if a.code != b.code { fuzzFail("decode fails with \(a.code.name) fresh but \(b.code.name) with the previous version", bytes) }
                case (.success, .failure(let e)):
                    fuzzFail("decode succeeds fresh but fails with the previous version: \(e)", bytes)
                case (.failure(let e), .success):
                    fuzzFail("decode fails fresh (\(e)) but succeeds with the previous version", bytes)
                }
            }
        }
    }

    /// Where two documents' contents differ (nil: they do not), comparing what they hold — the
    /// file encoding and the API JSON of every entry — not Swift equality.
    static func contentDifference(_ a: RegistryDocument, _ b: RegistryDocument) -> String? {
        if a.version != b.version || a.generation != b.generation || a.extra != b.extra || a.servers.count != b.servers.count {
            return difference(a, b)
        }
        for (x, y) in zip(a.servers, b.servers) {
            if x.id != y.id || x.isLegacy != y.isLegacy || x.jsonText != y.jsonText
                || JSONValue.object(x.fileObject).jsonText != JSONValue.object(y.fileObject).jsonText {
                return "entry \(x.id): \(x.jsonText.prefix(300)) vs \(y.jsonText.prefix(300))"
            }
        }
        if a.encode() != b.encode() { return "the documents encode differently" }
        return nil
    }

    static func firstRange(of needle: [UInt8], in haystack: [UInt8]) -> Range<Int>? {
        guard needle.count <= haystack.count else { return nil }
        var i = 0
        while i + needle.count <= haystack.count {
            if haystack[i] == needle[0], Array(haystack[i..<(i + needle.count)]) == needle { return i..<(i + needle.count) }
            i += 1
        }
        return nil
    }

    /// Where two documents differ, for the failure message.
    static func difference(_ a: RegistryDocument, _ b: RegistryDocument) -> String {
        if a.version != b.version || a.generation != b.generation { return "version/generation \(a.version)/\(a.generation) vs \(b.version)/\(b.generation)" }
        if a.extra != b.extra { return "top-level unknown fields \(JSONValue.object(a.extra).jsonText.prefix(200)) vs \(JSONValue.object(b.extra).jsonText.prefix(200))" }
        if a.servers.count != b.servers.count { return "\(a.servers.count) vs \(b.servers.count) entries" }
        for (x, y) in zip(a.servers, b.servers) where x != y {
            return "entry \(x.id) (legacy: \(x.isLegacy), liveness \(x.liveness) vs \(y.liveness)): \(x.jsonText.prefix(300)) vs \(y.jsonText.prefix(300))"
        }
        return "(no visible difference)"
    }

    static func checkDocument(_ doc: RegistryDocument, _ bytes: [UInt8]) {
        if doc.version < 1 || doc.generation < 0 { fuzzFail("version \(doc.version) / generation \(doc.generation) out of range", bytes) }
        if doc.servers.count > limits.maxEntries { fuzzFail("\(doc.servers.count) entries accepted", bytes) }
        var ids = Set<String>()
        for e in doc.servers {
            checkEntry(e, bytes)
            if !ids.insert(e.id).inserted { fuzzFail("two entries with id \(e.id)", bytes) }
        }
    }

    /// What every accepted entry satisfies, whatever it came from.
    static func checkEntry(_ e: ServerEntry, _ bytes: [UInt8]) {
        if !ServerEntry.isValidID(e.id) { fuzzFail("accepted id \"\(e.id)\"", bytes) }
        for (field, value) in [("name", e.name), ("url", e.url), ("startedAt", e.startedAt), ("lastSeen", e.lastSeen)] {
            guard let value else { continue }
            if value.utf8.count > limits.maxStringBytes { fuzzFail("accepted \(field) of \(value.utf8.count) bytes", bytes) }
            if value.utf8.contains(0) { fuzzFail("accepted NUL in \(field)", bytes) }
        }
        if let url = e.url, url.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) { fuzzFail("accepted url with space/control", bytes) }
        if let p = e.port, !(0...65535).contains(p) { fuzzFail("accepted port \(p)", bytes) }
        if let p = e.pid, p < 1 { fuzzFail("accepted pid \(p)", bytes) }
        if let t = e.ttlSeconds, !(1...86400).contains(t) { fuzzFail("accepted ttlSeconds \(t)", bytes) }
        for (kind, list) in [("tools", e.capabilities.tools), ("resources", e.capabilities.resources), ("prompts", e.capabilities.prompts)] {
            if list.count > limits.maxCapabilities { fuzzFail("accepted \(list.count) \(kind)", bytes) }
            for n in list where n.isEmpty || n.utf8.count > limits.maxCapabilityBytes || n.utf8.contains(0) {
                fuzzFail("accepted \(kind) name of \(n.utf8.count) bytes (or empty / with NUL)", bytes)
            }
        }
        if let m = e.health.message, m.utf8.count > limits.maxStringBytes { fuzzFail("accepted health.message of \(m.utf8.count) bytes", bytes) }
        if let m = e.health.message, m.utf8.contains(0) { fuzzFail("accepted NUL in health.message", bytes) }
        for t in [e.startedAt, e.lastSeen, e.health.lastCheck] {
            if let t, Timestamp.parse(t) == nil { fuzzFail("accepted timestamp \"\(t)\"", bytes) }
        }
    }

    /// The entry validator as `register` uses it (`ServerEntry(jsonText:)`), on text; and the
    /// object-level validator for both sources on raw bytes (invalid UTF-8 included).
    static func entry(_ bytes: [UInt8]) {
        if let text = String(validating: bytes, as: UTF8.self) {
            do throws(RegistryError) {
                let e = try ServerEntry(jsonText: text, limits: limits)
                checkEntry(e, bytes)
                // What register stores is what it hands back: the entry's JSON is accepted again
                // and means the same entry.
                let again = try ServerEntry(jsonText: e.jsonText, limits: limits)
                if again != e { fuzzFail("entry round trip changed it", bytes) }
            } catch {
                guard error.code == .invalid || error.code == .limit else { fuzzFail("entry refused with \(error.code.name)", bytes) }
                if error.message.isEmpty { fuzzFail("entry refused without a message", bytes) }
            }
            do throws(RegistryError) {
                _ = try ServerFilter(jsonText: text, limits: limits)
            } catch {
                guard error.code == .invalid || error.code == .limit else { fuzzFail("filter refused with \(error.code.name)", bytes) }
            }
        }
        guard let value = try? bytes.withUnsafeBufferPointer({ buf throws(JSONParseError) in
            try JSONParser.parse(buf, maxDepth: limits.maxDepth)
        }), case .object(let object) = value else { return }
        for source in [ServerEntry.Source.input, .file] {
            do throws(RegistryError) {
                let e = try ServerEntry(json: object, source: source, limits: limits)
                checkEntry(e, bytes)
                if source == .input, e.isLegacy { fuzzFail("an input entry was taken as legacy", bytes) }
            } catch {
                guard error.code == .invalid || error.code == .limit else { fuzzFail("entry object refused with \(error.code.name)", bytes) }
            }
        }
    }
}
