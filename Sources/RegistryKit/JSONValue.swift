/// A JSON value as the registry file holds it.
///
/// Numbers keep the literal text they were written with and objects keep their key order, so a
/// value read from the file and written back is unchanged — fields this version does not know
/// survive a rewrite exactly.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    /// A number, as its JSON literal (e.g. `"8080"`, `"1.5e3"`).
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// An integer number value, written as its decimal literal.
    public static func int<I: BinaryInteger>(_ value: I) -> JSONValue { .number(String(value)) }

    /// The value as a string, if it is one.
    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    /// The value as a Bool, if it is one.
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    /// The value as an array, if it is one.
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    /// The value as an object, if it is one.
    public var objectValue: JSONObject? { if case .object(let o) = self { return o } else { return nil } }
    /// The value as an `Int64`, if it is an integer literal that fits (no fraction, no exponent).
    public var int64Value: Int64? {
        guard case .number(let literal) = self else { return nil }
        return Int64(literal)
    }
    /// The value as a `Double`, if it is a number.
    public var doubleValue: Double? {
        guard case .number(let literal) = self else { return nil }
        return Double(literal)
    }
}

/// A JSON object that keeps its members in order. Keys are unique.
public struct JSONObject: Sendable, Hashable {
    public struct Member: Sendable, Hashable {
        public var key: String
        public var value: JSONValue
        public init(key: String, value: JSONValue) { self.key = key; self.value = value }
    }

    public private(set) var members: [Member]

    public init() { members = [] }

    /// Builds an object; when a key repeats, the last value wins.
    public init(_ pairs: [(String, JSONValue)]) {
        members = []
        members.reserveCapacity(pairs.count)
        for (k, v) in pairs { self[k] = v }
    }

    init(uncheckedMembers: [Member]) { members = uncheckedMembers }

    public var count: Int { members.count }
    public var isEmpty: Bool { members.isEmpty }
    public var keys: [String] { members.map(\.key) }

    /// The value for `key`; assigning `nil` removes the member, assigning a new key appends it.
    public subscript(key: String) -> JSONValue? {
        get {
            for m in members where m.key == key { return m.value }
            return nil
        }
        set {
            if let i = members.firstIndex(where: { $0.key == key }) {
                if let newValue { members[i].value = newValue } else { members.remove(at: i) }
            } else if let newValue {
                members.append(Member(key: key, value: newValue))
            }
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(String(value)) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(JSONObject(elements)) }
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue {
    /// Parses `text` as one JSON value (RFC 8259), within `limits`.
    /// - Throws: `RegistryError` with code `.invalid` (bad JSON, duplicate key, invalid UTF-8) or
    ///   `.limit` (too large or too deep); the message names the line and column.
    public static func parse(_ text: String, limits: RegistryLimits = .default) throws(RegistryError) -> JSONValue {
        var copy = text
        let result: Result<JSONValue, RegistryError> = copy.withUTF8 { buffer in
            guard buffer.count <= limits.maxFileBytes else {
                return .failure(RegistryError(.limit, "JSON input of \(buffer.count) bytes exceeds the limit of \(limits.maxFileBytes) bytes"))
            }
            do throws(JSONParseError) {
                return .success(try JSONParser.parse(buffer, maxDepth: limits.maxDepth))
            } catch {
                return .failure(RegistryError(error.isLimit ? .limit : .invalid, "invalid JSON: \(error.description)"))
            }
        }
        return try result.get()
    }

    /// This value as compact JSON text.
    public var jsonText: String {
        var out: [UInt8] = []
        JSONWriter.write(self, into: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
