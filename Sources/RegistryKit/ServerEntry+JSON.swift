extension ServerEntry {
    /// Where an entry object comes from: the rules for missing fields differ.
    enum Source {
        /// Read from the registry file: entries without `id` are legacy (`port-<port>`).
        case file
        /// Passed to `register`: `id` is required, `liveness` defaults to `lease`.
        case input
    }

    static let knownKeys: Set<String> = [
        "id", "name", "url", "port", "transport", "pid", "pidStartTime", "startedAt", "lastSeen", "liveness",
        "ttlSeconds", "capabilities", "health", "requiresSession", "metadata", "headers",
    ]

    /// Most headers an entry may carry.
    static let maxHeaders = 64

    /// Decodes and validates one entry object. Every problem is `.invalid` (input) with the
    /// field named; the caller turns it into `.corrupt` for the file.
    init(json object: JSONObject, source: Source, limits: RegistryLimits) throws(RegistryError) {
        func bad(_ field: String, _ why: String) -> RegistryError { RegistryError(.invalid, "field \"\(field)\": \(why)") }
        func string(_ key: String) throws(RegistryError) -> String? {
            guard let v = object[key], v != .null else { return nil }
            guard case .string(let s) = v else { throw bad(key, "must be a string") }
            guard s.utf8.count <= limits.maxStringBytes else {
                throw RegistryError(.limit, "field \"\(key)\": \(s.utf8.count) bytes exceeds the limit of \(limits.maxStringBytes)")
            }
            guard !s.utf8.contains(0) else { throw bad(key, "must not contain NUL characters") }
            return s
        }
        func integer(_ key: String, _ range: ClosedRange<Int64>) throws(RegistryError) -> Int64? {
            guard let v = object[key], v != .null else { return nil }
            guard let n = v.int64Value else { throw bad(key, "must be an integer") }
            guard range.contains(n) else { throw bad(key, "must be between \(range.lowerBound) and \(range.upperBound)") }
            return n
        }

        var id = try string("id")
        let url = try string("url")
        let port = try integer("port", 0...65535).map(Int.init)
        if let id {
            guard ServerEntry.isValidID(id) else {
                throw bad("id", "\"\(id.prefix(80))\" is not a valid id (1-64 of A-Z a-z 0-9 _ -, starting with a letter or digit)")
            }
        } else if source == .input {
            throw bad("id", "is required")
        }
        self.init(id: id ?? "")
        self.name = try string("name")
        self.url = url
        if let url { try ServerEntry.validateURL(url, strict: source == .input) }
        // Stored as written; `register` fills it in from the URL, a reader never adds it.
        self.port = port
        if id == nil {
            guard let p = port ?? url.flatMap(ServerEntry.port(fromURL:)) else { throw bad("id", "missing, and no port to name the entry by") }
            id = "port-\(p)"
            self.id = id ?? ""
            self.isLegacy = true
        }
        if let t = try string("transport") {
            guard let transport = Transport(rawValue: t) else { throw bad("transport", "must be one of http, sse, ws, stdio") }
            self.transport = transport
        }
        self.pid = try integer("pid", 1...Int64(Int32.max)).map { Int32($0) }
        if let v = object["pidStartTime"], v != .null {
            guard case .number(let literal) = v, let t = UInt64(literal) else { throw bad("pidStartTime", "must be a non-negative integer") }
            self.pidStartTime = t
        }
        self.startedAt = try ServerEntry.timestamp(object["startedAt"], field: "startedAt", limits: limits)
        self.lastSeen = try ServerEntry.timestamp(object["lastSeen"], field: "lastSeen", limits: limits)
        if let l = try string("liveness") {
            guard let liveness = Liveness(rawValue: l) else { throw bad("liveness", "must be one of lease, pid, ttl, none") }
            self.liveness = liveness
        } else if source == .input {
            self.liveness = .lease
        } else {
            // Written by a tool that does not know liveness modes: judge it by its pid if it has one.
            self.liveness = pid != nil ? .pid : .none
        }
        self.ttlSeconds = try integer("ttlSeconds", 1...86_400).map(Int.init)
        if let v = object["requiresSession"], v != .null {
            guard case .bool(let b) = v else { throw bad("requiresSession", "must be true or false") }
            self.requiresSession = b
        }
        if let v = object["metadata"], v != .null { self.metadata = v }
        if let v = object["headers"], v != .null { self.headers = try ServerEntry.headers(v, limits: limits) }
        if let v = object["capabilities"], v != .null {
            guard case .object(let caps) = v else { throw bad("capabilities", "must be an object") }
            self.capabilities = try Capabilities(json: caps, limits: limits)
        }
        if let v = object["health"], v != .null {
            guard case .object(let h) = v else { throw bad("health", "must be an object") }
            self.health = try Health(json: h, limits: limits)
        }
        var extra = JSONObject()
        for m in object.members where !ServerEntry.knownKeys.contains(m.key) { extra[m.key] = m.value }
        self.extra = extra
        if source == .file { self.keyOrder = KeyOrder(keys: object.keys) }
        if source == .input, !extra.isEmpty {
            try ServerEntry.checkStrings(in: .object(extra), field: "metadata", limits: limits)
            try ServerEntry.validateClusterFields(extra)
        }
        if let metadata { try ServerEntry.checkStrings(in: metadata, field: "metadata", limits: limits) }
    }

    /// `headers`: an object of at most `maxHeaders` HTTP header names (tokens) to values without
    /// CR, LF or NUL, each within the string limit.
    private static func headers(_ v: JSONValue, limits: RegistryLimits) throws(RegistryError) -> [String: String] {
        guard case .object(let o) = v else { throw RegistryError(.invalid, "field \"headers\": must be an object of strings") }
        guard o.count <= maxHeaders else {
            throw RegistryError(.limit, "field \"headers\": \(o.count) headers exceeds the limit of \(maxHeaders)")
        }
        var out: [String: String] = [:]
        for m in o.members {
            let tokenChars = Set("!#$%&'*+-.^_`|~".utf8)
            guard !m.key.isEmpty, m.key.utf8.count <= 256,
                  m.key.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || tokenChars.contains($0) })
            else { throw RegistryError(.invalid, "field \"headers\": \"\(m.key.prefix(80))\" is not an HTTP header name") }
            guard case .string(let value) = m.value else { throw RegistryError(.invalid, "field \"headers.\(m.key)\": must be a string") }
            guard value.utf8.count <= limits.maxStringBytes else {
                throw RegistryError(.limit, "field \"headers.\(m.key)\": \(value.utf8.count) bytes exceeds the limit of \(limits.maxStringBytes)")
            }
            guard !value.utf8.contains(where: { $0 == 0 || $0 == 0x0A || $0 == 0x0D }) else {
                throw RegistryError(.invalid, "field \"headers.\(m.key)\": must not contain CR, LF or NUL")
            }
            out[m.key] = value
        }
        return out
    }

    /// Strings nested in free-form JSON obey the same length limit as every other string.
    private static func checkStrings(in value: JSONValue, field: String, limits: RegistryLimits) throws(RegistryError) {
        switch value {
        case .string(let s):
            if s.utf8.count > limits.maxStringBytes {
                throw RegistryError(.limit, "field \"\(field)\": a string of \(s.utf8.count) bytes exceeds the limit of \(limits.maxStringBytes)")
            }
        case .array(let items): for item in items { try checkStrings(in: item, field: field, limits: limits) }
        case .object(let o):
            for m in o.members {
                try checkStrings(in: .string(m.key), field: field, limits: limits)
                try checkStrings(in: m.value, field: field, limits: limits)
            }
        default: break
        }
    }

    /// Timestamps are ISO 8601 strings; an older writer's epoch-milliseconds number is accepted
    /// and converted.
    private static func timestamp(_ v: JSONValue?, field: String, limits: RegistryLimits) throws(RegistryError) -> String? {
        guard let v, v != .null else { return nil }
        switch v {
        case .string(let s):
            guard Timestamp.parse(s) != nil else {
                throw RegistryError(.invalid, "field \"\(field)\": \"\(s.prefix(64))\" is not an ISO 8601 date-time")
            }
            return s
        case .number:
            guard let ms = v.int64Value, ms >= 0, ms < 253_402_300_800_000 else {
                throw RegistryError(.invalid, "field \"\(field)\": must be an ISO 8601 string or epoch milliseconds")
            }
            return Timestamp.format(millis: ms)
        default:
            throw RegistryError(.invalid, "field \"\(field)\": must be an ISO 8601 date-time string")
        }
    }

    /// `strict` (what `register` accepts): `URLParts` must parse it — a scheme starting with a
    /// letter, a host for http(s)/ws(s), a port of 1-65535. Read from the file, an older writer's
    /// URL only needs `scheme:rest` without spaces or control characters, so a file that was
    /// valid stays valid.
    static func validateURL(_ url: String, strict: Bool) throws(RegistryError) {
        if !strict {
            let u = Array(url.utf8)
            guard let colon = u.firstIndex(of: UInt8(ascii: ":")), colon > 0,
                  u[0..<colon].allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2B || $0 == 0x2D || $0 == 0x2E }),
                  u.allSatisfy({ $0 > 0x20 && $0 != 0x7F })
            else {
                throw RegistryError(.invalid, "field \"url\": \"\(url.prefix(80))\" is not a URL (scheme:rest, no spaces or control characters)")
            }
            return
        }
        if case .failure(let why) = URLParts.parse(url) {
            throw RegistryError(.invalid, "field \"url\": \"\(url.prefix(80))\" is not a usable URL: it \(why.reason)")
        }
    }

    /// The scheme of `url`, lowercased (`http`, `ws`, ...).
    static func scheme(of url: String) -> String? {
        try? URLParts.parse(url).get().scheme
    }

    /// The port in `scheme://host:port/...`, or the scheme's default.
    static func port(fromURL url: String) -> Int? {
        try? URLParts.parse(url).get().port
    }

    /// The transport a URL implies when none is given.
    static func transport(fromURL url: String) -> Transport? {
        switch scheme(of: url) {
        case "http", "https": .http
        case "ws", "wss": .ws
        case "stdio": .stdio
        default: nil
        }
    }

    /// The entry as a JSON object, as the API hands it out: `id` always present, known fields
    /// in a fixed order (or the order they were read in), then unknown ones as read.
    public var jsonObject: JSONObject { members(forFile: false) }

    /// The entry as the file holds it: the same, except that a legacy entry is written back
    /// exactly as it was, without the derived `id` or a `liveness` it never had.
    var fileObject: JSONObject { members(forFile: true) }

    private func members(forFile: Bool) -> JSONObject {
        var m: [JSONObject.Member] = []
        m.reserveCapacity(16 + extra.count)
        func add(_ k: String, _ v: JSONValue?) { if let v { m.append(.init(key: k, value: v)) } }
        if !isLegacy || !forFile { add("id", .string(id)) }
        add("name", name.map(JSONValue.string))
        add("url", url.map(JSONValue.string))
        add("port", port.map { .int($0) })
        add("transport", transport.map { .string($0.rawValue) })
        add("pid", pid.map { .int($0) })
        add("pidStartTime", pidStartTime.map { .int($0) })
        add("startedAt", startedAt.map(JSONValue.string))
        add("lastSeen", lastSeen.map(JSONValue.string))
        // A legacy entry gets back the liveness it was written with, and none if it had none.
        if !isLegacy || !forFile || keyOrder.keys.contains("liveness") { add("liveness", .string(liveness.rawValue)) }
        add("ttlSeconds", ttlSeconds.map { .int($0) })
        let caps = capabilities
        if !isLegacy || caps != Capabilities() { add("capabilities", .object(caps.jsonObject)) }
        if !isLegacy || health != Health() { add("health", .object(health.jsonObject)) }
        add("requiresSession", requiresSession.map(JSONValue.bool))
        add("metadata", metadata)
        add("headers", headers.map { h in .object(JSONObject(uncheckedMembers: h.keys.sorted().map { .init(key: $0, value: .string(h[$0] ?? "")) })) })
        m.append(contentsOf: extra.members)
        if !keyOrder.keys.isEmpty {
            // Keys read from the file keep their places; new keys follow in canonical order
            // (a legacy entry's derived id goes first).
            var rank: [String: Int] = ["id": -1]
            for (i, k) in keyOrder.keys.enumerated() { rank[k] = i }
            m = m.enumerated().sorted { (rank[$0.element.key] ?? Int.max, $0.offset) < (rank[$1.element.key] ?? Int.max, $1.offset) }.map(\.element)
        }
        return JSONObject(uncheckedMembers: m)
    }

    /// Appends the entry's API JSON to `out`, reusing the bytes it was last written with when it
    /// has not changed since (the file encoding and the API JSON are the same unless legacy).
    func appendJSON(into out: inout [UInt8]) {
        if !isLegacy, let encoded {
            out.append(contentsOf: encoded.bytes)
        } else {
            JSONWriter.write(.object(jsonObject), into: &out)
        }
    }

    /// The entry as compact JSON text (what the C ABI hands out), `id` always included.
    public var jsonText: String {
        var out: [UInt8] = []
        appendJSON(into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses one entry object as `register` accepts it.
    /// - Throws: `.invalid` for bad JSON or fields, `.limit` for oversized input.
    public init(jsonText: String, limits: RegistryLimits = .default) throws(RegistryError) {
        guard case .object(let object) = try JSONValue.parse(jsonText, limits: limits) else {
            throw RegistryError(.invalid, "an entry must be a JSON object")
        }
        try self.init(json: object, source: .input, limits: limits)
    }
}

extension Capabilities {
    init(json object: JSONObject, limits: RegistryLimits) throws(RegistryError) {
        func names(_ key: String) throws(RegistryError) -> [String] {
            guard let v = object[key], v != .null else { return [] }
            guard case .array(let items) = v else { throw RegistryError(.invalid, "field \"capabilities.\(key)\": must be an array of strings") }
            guard items.count <= limits.maxCapabilities else {
                throw RegistryError(.limit, "field \"capabilities.\(key)\": \(items.count) names exceeds the limit of \(limits.maxCapabilities)")
            }
            var out: [String] = []
            out.reserveCapacity(items.count)
            for item in items {
                guard case .string(let s) = item, !s.isEmpty, !s.utf8.contains(0) else {
                    throw RegistryError(.invalid, "field \"capabilities.\(key)\": every name must be a non-empty string")
                }
                guard s.utf8.count <= limits.maxCapabilityBytes else {
                    throw RegistryError(.limit, "field \"capabilities.\(key)\": a name of \(s.utf8.count) bytes exceeds the limit of \(limits.maxCapabilityBytes)")
                }
                out.append(s)
            }
            return out
        }
        self.init(tools: try names("tools"), resources: try names("resources"), prompts: try names("prompts"))
        var extra = JSONObject()
        for m in object.members where !["tools", "resources", "prompts"].contains(m.key) { extra[m.key] = m.value }
        self.extra = extra
    }

    var jsonObject: JSONObject {
        var o = JSONObject(uncheckedMembers: [
            .init(key: "tools", value: .array(tools.map(JSONValue.string))),
            .init(key: "resources", value: .array(resources.map(JSONValue.string))),
            .init(key: "prompts", value: .array(prompts.map(JSONValue.string))),
        ])
        for m in extra.members { o[m.key] = m.value }
        return o
    }
}

extension Health {
    /// The largest `consecutiveFailures` a file may hold; probes count no further.
    static let maxConsecutiveFailures = 1_000_000

    init(json object: JSONObject, limits: RegistryLimits) throws(RegistryError) {
        self.init()
        if let v = object["status"], v != .null {
            guard case .string(let s) = v, let status = HealthStatus(name: s), s == status.name else {
                throw RegistryError(.invalid, "field \"health.status\": must be one of HEALTHY, DEGRADED, DOWN, UNKNOWN")
            }
            self.status = status
        }
        if let v = object["message"], v != .null {
            guard case .string(let s) = v else { throw RegistryError(.invalid, "field \"health.message\": must be a string") }
            guard !s.utf8.contains(0) else { throw RegistryError(.invalid, "field \"health.message\": must not contain NUL characters") }
            guard s.utf8.count <= limits.maxStringBytes else {
                throw RegistryError(.limit, "field \"health.message\": \(s.utf8.count) bytes exceeds the limit of \(limits.maxStringBytes)")
            }
            self.message = s
        }
        if let v = object["lastCheck"], v != .null {
            switch v {
            case .string(let s) where Timestamp.parse(s) != nil: self.lastCheck = s
            case .number where (v.int64Value ?? -1) >= 0 && (v.int64Value ?? 0) < 253_402_300_800_000:
                self.lastCheck = Timestamp.format(millis: v.int64Value ?? 0)
            default: throw RegistryError(.invalid, "field \"health.lastCheck\": must be an ISO 8601 date-time")
            }
        }
        if let v = object["consecutiveFailures"], v != .null {
            guard let n = v.int64Value, n >= 0, n <= Int64(Health.maxConsecutiveFailures) else {
                throw RegistryError(.invalid, "field \"health.consecutiveFailures\": must be a non-negative integer")
            }
            self.consecutiveFailures = Int(n)
        }
        var extra = JSONObject()
        for m in object.members where !["status", "message", "lastCheck", "consecutiveFailures"].contains(m.key) { extra[m.key] = m.value }
        self.extra = extra
    }

    var jsonObject: JSONObject {
        var o = JSONObject(uncheckedMembers: [.init(key: "status", value: .string(status.name))])
        if let message { o["message"] = .string(message) }
        if let lastCheck { o["lastCheck"] = .string(lastCheck) }
        if let consecutiveFailures { o["consecutiveFailures"] = .int(consecutiveFailures) }
        for m in extra.members { o[m.key] = m.value }
        return o
    }
}
