/// One JSON-RPC 2.0 message as relayed: its bytes (compact, no raw newlines, so it can go on a
/// stdio line as is) and where its parts are. Only the top level is examined.
public struct RPCMessage: Sendable {
    public enum Kind: Sendable, Equatable { case request, notification, response }

    public private(set) var bytes: [UInt8]
    public let kind: Kind
    /// The method of a request or notification.
    public let method: String?
    /// Byte range of `id` (requests and responses).
    let idRange: Range<Int>?
    /// Byte range of `params`.
    let paramsRange: Range<Int>?

    /// Parses one message.
    /// - Throws: `JSONSyntaxError` for invalid JSON or something that is not a JSON-RPC message.
    public init(_ input: [UInt8]) throws(JSONSyntaxError) {
        var bytes = input
        let members = try JSONBytes.members(bytes, 0..<bytes.count)
        var end = 0
        if let last = members.last?.value.upperBound { end = last }
        // Only whitespace may follow the closing brace.
        if var i = bytes[end...].firstIndex(of: UInt8(ascii: "}")).map({ $0 + 1 }) {
            JSONBytes.skipSpace(bytes, &i)
            if i != bytes.count { throw JSONSyntaxError(offset: i, message: "text after the message") }
        }
        // Valid JSON has no raw line breaks inside strings: any left are whitespace, and a stdio
        // line must not contain one.
        for i in bytes.indices where bytes[i] == 0x0A || bytes[i] == 0x0D { bytes[i] = 0x20 }
        self.bytes = bytes
        var method: String?
        var id: Range<Int>?
        var params: Range<Int>?
        var hasResult = false
        for m in members {
            switch m.key {
            case "method":
                guard let s = JSONBytes.decodeString(bytes, m.value) else { throw JSONSyntaxError(offset: m.value.lowerBound, message: "\"method\" must be a string") }
                method = s
            case "id":
                let first = bytes[m.value.lowerBound]
                guard first == UInt8(ascii: "\"") || first == UInt8(ascii: "-") || (first >= 0x30 && first <= 0x39) || first == UInt8(ascii: "n") else {
                    throw JSONSyntaxError(offset: m.value.lowerBound, message: "\"id\" must be a string or a number")
                }
                id = m.value
            case "params": params = m.value
            case "result", "error": hasResult = true
            default: break
            }
        }
        if method != nil {
            kind = id == nil ? .notification : .request
        } else if hasResult {
            kind = .response
        } else {
            throw JSONSyntaxError(offset: 0, message: "neither a request, a notification nor a response")
        }
        self.method = method
        self.idRange = id
        self.paramsRange = params
    }

    /// The raw `id` (its JSON text).
    public var id: [UInt8]? { idRange.map { Array(bytes[$0]) } }

    /// The byte range of a member of `params` (or of `params._meta` with `meta`).
    func paramRange(_ key: String, meta: Bool = false) -> Range<Int>? {
        guard let paramsRange, let members = try? JSONBytes.members(bytes, paramsRange) else { return nil }
        if meta {
            guard let m = members.first(where: { $0.key == "_meta" }), let inner = try? JSONBytes.members(bytes, m.value) else { return nil }
            return inner.first(where: { $0.key == key })?.value
        }
        return members.first(where: { $0.key == key })?.value
    }

    /// The byte range of a top-level member (`result`, `error`, ...).
    func member(_ key: String) -> Range<Int>? {
        guard let members = try? JSONBytes.members(bytes, 0..<bytes.count) else { return nil }
        return members.first(where: { $0.key == key })?.value
    }

    /// `params._meta.progressToken`, where a request asks for progress notifications.
    var progressTokenRange: Range<Int>? { paramRange("progressToken", meta: true) }

    /// These bytes with ranges replaced (ranges must not overlap).
    func replacing(_ replacements: [(Range<Int>, [UInt8])]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 16)
        var at = 0
        for (range, text) in replacements.sorted(by: { $0.0.lowerBound < $1.0.lowerBound }) {
            out.append(contentsOf: bytes[at..<range.lowerBound])
            out.append(contentsOf: text)
            at = range.upperBound
        }
        out.append(contentsOf: bytes[at...])
        return out
    }

    /// A response with `id` and a JSON-RPC error.
    public static func error(id: [UInt8]?, code: Int, message: String) -> [UInt8] {
        var out = Array(#"{"jsonrpc":"2.0","id":"#.utf8)
        out.append(contentsOf: id ?? Array("null".utf8))
        out.append(contentsOf: #","error":{"code":"#.utf8)
        out.append(contentsOf: String(code).utf8)
        out.append(contentsOf: #","message":"#.utf8)
        out.append(contentsOf: JSONBytes.quote(message))
        out.append(contentsOf: "}}".utf8)
        return out
    }

    /// A request made by the supervisor itself (`params` is JSON text).
    static func request(id: UInt64, method: String, params: String?) -> [UInt8] {
        var s = #"{"jsonrpc":"2.0","id":\#(id),"method":"#
        s += String(decoding: JSONBytes.quote(method), as: UTF8.self)
        if let params { s += #","params":"# + params }
        return Array((s + "}").utf8)
    }

    public static func notification(method: String, params: String?) -> [UInt8] {
        var s = #"{"jsonrpc":"2.0","method":"#
        s += String(decoding: JSONBytes.quote(method), as: UTF8.self)
        if let params { s += #","params":"# + params }
        return Array((s + "}").utf8)
    }
}

/// JSON-RPC error codes the supervisor answers with.
public enum RPCErrorCode {
    public static let parseError = -32700
    public static let invalidRequest = -32600
    public static let methodNotFound = -32601
    public static let invalidParams = -32602
    public static let internalError = -32603
    /// The server process is gone (crashed, crash loop, cannot start).
    public static let serverUnavailable = -32000
    /// No server has the resource (MCP's resource-not-found code).
    public static let resourceNotFound = -32002
    /// No answer within the request timeout.
    public static let requestTimeout = -32001
    /// The request was cancelled by the client.
    public static let requestCancelled = -32800
}
