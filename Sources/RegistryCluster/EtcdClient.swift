import AsyncHTTPClient
import NIOCore
import RegistryKit

/// A failure talking to etcd: unreachable, an HTTP or gRPC error, or an answer that does not
/// make sense. The agent treats them all alike (try the next member, then back off).
public struct EtcdError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// One key-value pair as etcd holds it.
struct EtcdKeyValue: Sendable {
    var key: String
    var value: [UInt8]
    var lease: Int64
    var modRevision: Int64
}

/// One event of a watch.
enum EtcdEvent: Sendable {
    case put(EtcdKeyValue)
    case delete(key: String, modRevision: Int64)
}

/// etcd's v3 API through its JSON gateway (`/v3/...`, keys and values base64, 64-bit integers
/// as strings), over AsyncHTTPClient. One member per call; the caller picks which (docs/CLUSTER.md:
/// why the gateway and not gRPC).
struct EtcdClient: Sendable {
    let http: HTTPClient
    /// e.g. `http://127.0.0.1:2379`.
    let endpoint: String
    let timeout: TimeAmount

    /// The end of the range of every key that starts with `prefix` (the prefix with its last
    /// byte incremented, as etcd's clients compute it).
    static func rangeEnd(ofPrefix prefix: String) -> [UInt8] {
        var bytes = Array(prefix.utf8)
        while let last = bytes.last {
            if last < 0xFF {
                bytes[bytes.count - 1] = last + 1
                return bytes
            }
            bytes.removeLast()
        }
        return [0]
    }

    // MARK: Leases

    /// Grants a lease of `ttl` seconds; returns its id.
    func grantLease(ttl: Int) async throws -> Int64 {
        let r = try await call("/v3/lease/grant", ["TTL": .int(ttl)])
        guard let id = Self.int(r["ID"]), id != 0 else { throw EtcdError("lease grant: no lease id in the answer") }
        return id
    }

    /// Refreshes the lease; returns the TTL etcd granted, 0 when the lease is gone (expired).
    func keepAlive(lease: Int64) async throws -> Int64 {
        let r = try await call("/v3/lease/keepalive", ["ID": .string(String(lease))])
        guard case .object(let result)? = r["result"] else { throw EtcdError("lease keepalive: no result in the answer") }
        return Self.int(result["TTL"]) ?? 0
    }

    /// Revokes the lease: every key attached to it is deleted at once.
    func revokeLease(_ lease: Int64) async throws {
        _ = try await call("/v3/lease/revoke", ["ID": .string(String(lease))])
    }

    // MARK: Keys

    /// Every key under `prefix` at one revision (paged, 500 keys a request), and that revision.
    func rangePrefix(_ prefix: String) async throws -> (kvs: [EtcdKeyValue], revision: Int64) {
        let end = Base64.encode(Self.rangeEnd(ofPrefix: prefix))
        var from = Array(prefix.utf8)
        var revision: Int64 = 0
        var kvs: [EtcdKeyValue] = []
        while true {
            var body: [(String, JSONValue)] = [("key", .string(Base64.encode(from))), ("range_end", .string(end)), ("limit", .int(500))]
            if revision > 0 { body.append(("revision", .string(String(revision)))) }
            let r = try await call("/v3/kv/range", JSONValue.object(JSONObject(body)))
            guard case .object(let header)? = r["header"], let rev = Self.int(header["revision"]) else {
                throw EtcdError("range: no header revision in the answer")
            }
            if revision == 0 { revision = rev }
            let page = try Self.keyValues(r["kvs"])
            kvs += page
            guard r["more"]?.boolValue == true, let last = page.last else { break }
            from = Array(last.key.utf8) + [0]
        }
        return (kvs, revision)
    }

    func put(_ key: String, _ value: String, lease: Int64) async throws {
        _ = try await call("/v3/kv/put", ["key": .string(Base64.encode(key)), "value": .string(Base64.encode(value)), "lease": .string(String(lease))])
    }

    func delete(_ key: String) async throws {
        _ = try await call("/v3/kv/deleterange", ["key": .string(Base64.encode(key))])
    }

    // MARK: Watch

    /// Watches every key under `prefix` from `startRevision`, calling `onEvents` with each batch
    /// and the revision it brings the watcher to. Returns never on its own: it throws when the
    /// stream ends or fails, or `EtcdError` with `compacted` set when the revision is gone.
    func watchPrefix(_ prefix: String, from startRevision: Int64,
                     onEvents: @Sendable ([EtcdEvent], Int64) async throws -> Void) async throws -> Never {
        let create: JSONValue = ["create_request": [
            "key": .string(Base64.encode(prefix)),
            "range_end": .string(Base64.encode(Self.rangeEnd(ofPrefix: prefix))),
            "start_revision": .string(String(startRevision)),
        ]]
        var request = HTTPClientRequest(url: endpoint + "/v3/watch")
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: create.jsonText))
        let response = try await http.execute(request, timeout: timeout)
        guard response.status == .ok else { throw EtcdError("watch: HTTP \(response.status.code)") }
        var pending: [UInt8] = []
        for try await chunk in response.body {
            pending += chunk.readableBytesView
            guard pending.count <= 64 << 20 else { throw EtcdError("watch: a message longer than 64 MiB") }
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                guard !line.allSatisfy({ $0 == " " || $0 == "\r" }) else { continue }
                guard case .object(let message) = try Self.parse(line, what: "watch") else { throw EtcdError("watch: a message that is not an object") }
                if case .object(let error)? = message["error"] { throw EtcdError("watch: \(error["message"]?.stringValue ?? "error")") }
                guard case .object(let result)? = message["result"] else { throw EtcdError("watch: a message without result") }
                if let compacted = Self.int(result["compact_revision"]), compacted > 0 {
                    throw EtcdError("watch: revision \(startRevision) was compacted (now \(compacted)); resync")
                }
                if result["canceled"]?.boolValue == true { throw EtcdError("watch: canceled by etcd (\(result["cancel_reason"]?.stringValue ?? "no reason"))") }
                guard case .object(let header)? = result["header"], let revision = Self.int(header["revision"]) else { continue }
                var events: [EtcdEvent] = []
                if case .array(let items)? = result["events"] {
                    for item in items {
                        guard case .object(let e) = item, case .object(let kvObject)? = e["kv"], let kv = try Self.keyValue(kvObject) else {
                            throw EtcdError("watch: an event without a key")
                        }
                        if e["type"]?.stringValue == "DELETE" {
                            events.append(.delete(key: kv.key, modRevision: kv.modRevision))
                        } else {
                            events.append(.put(kv))
                        }
                    }
                }
                try await onEvents(events, revision)
            }
        }
        throw EtcdError("watch: the stream ended")
    }

    // MARK: Plumbing

    private func call(_ path: String, _ body: JSONValue) async throws -> JSONObject {
        var request = HTTPClientRequest(url: endpoint + path)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body.jsonText))
        let response = try await http.execute(request, timeout: timeout)
        let bytes = try await response.body.collect(upTo: 64 << 20)
        let text = String(buffer: bytes)
        guard response.status == .ok else {
            throw EtcdError("\(path): HTTP \(response.status.code): \(text.prefix(200))")
        }
        guard case .object(let object) = try Self.parse(text, what: path) else { throw EtcdError("\(path): the answer is not a JSON object") }
        if let message = object["error"]?.stringValue ?? (object["code"] != nil ? object["message"]?.stringValue : nil) {
            throw EtcdError("\(path): \(message.prefix(200))")
        }
        return object
    }

    private static func parse(_ text: String, what: String) throws -> JSONValue {
        do throws(RegistryError) {
            return try JSONValue.parse(text)
        } catch {
            throw EtcdError("\(what): the answer is not JSON (\(error.message.prefix(120)))")
        }
    }

    /// A 64-bit integer as the gateway writes it: a string of digits (or, leniently, a number).
    static func int(_ v: JSONValue?) -> Int64? {
        switch v {
        case .string(let s)?: Int64(s)
        case .number?: v?.int64Value
        default: nil
        }
    }

    private static func keyValues(_ v: JSONValue?) throws -> [EtcdKeyValue] {
        guard let v, v != .null else { return [] }
        guard case .array(let items) = v else { throw EtcdError("range: kvs is not an array") }
        var out: [EtcdKeyValue] = []
        out.reserveCapacity(items.count)
        for item in items {
            guard case .object(let o) = item, let kv = try keyValue(o) else { throw EtcdError("range: a key-value without a key") }
            out.append(kv)
        }
        return out
    }

    private static func keyValue(_ o: JSONObject) throws -> EtcdKeyValue? {
        guard let k = o["key"]?.stringValue, let keyBytes = Base64.decode(k) else { return nil }
        guard let key = String(validating: keyBytes, as: UTF8.self) else { throw EtcdError("a key that is not UTF-8") }
        let value: [UInt8]
        if let v = o["value"]?.stringValue {
            guard let decoded = Base64.decode(v) else { throw EtcdError("a value that is not base64") }
            value = decoded
        } else {
            value = []
        }
        return EtcdKeyValue(key: key, value: value, lease: int(o["lease"]) ?? 0, modRevision: int(o["mod_revision"] ?? o["modRevision"]) ?? 0)
    }
}
