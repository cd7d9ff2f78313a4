#if canImport(Glibc)
import Glibc
#endif

/// Where and why JSON text failed to parse.
struct JSONParseError: Error, CustomStringConvertible {
    var reason: String
    var offset: Int
    var line: Int
    var column: Int
    /// The input broke a documented limit (nesting depth, number length) rather than JSON syntax.
    var isLimit = false
    var description: String { "\(reason) at line \(line), column \(column) (byte \(offset))" }
}

/// A strict RFC 8259 parser over UTF-8 bytes: rejects duplicate keys, invalid UTF-8, control
/// characters in strings, trailing garbage, and nesting deeper than `maxDepth`. Never traps.
struct JSONParser {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var pos = 0
    private let maxDepth: Int

    static func parse(_ bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) throws(JSONParseError) -> JSONValue {
        var parser = JSONParser(bytes: bytes, maxDepth: maxDepth)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 1)
        parser.skipWhitespace()
        if parser.pos < bytes.count { throw parser.error("unexpected data after the JSON value") }
        return value
    }

    /// An element of the registry's `servers` array: reused from the previous version (the
    /// bytes were identical to that entry's encoding), or parsed.
    enum ServersElement {
        case reused(Int)
        case parsed(JSONValue, Range<Int>)
    }

    /// Parses a registry file like `parse`, except that each element of the top-level `servers`
    /// array whose bytes equal one of `previous` (the encodings of the entries of the version
    /// read before, nil where unknown) is not parsed again: identical bytes, identical entry.
    /// Matching follows the old order (same place, one later, one earlier), so the common
    /// changes — one entry added, removed or changed — leave every other entry reused.
    /// Returns the top-level value with `servers` left out, and the elements (nil when the top
    /// level is not an object or has no `servers` array).
    static func parseRegistry(_ bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int, previous: [[UInt8]?])
        throws(JSONParseError) -> (top: JSONValue, servers: [ServersElement]?)
    {
        var parser = JSONParser(bytes: bytes, maxDepth: maxDepth)
        parser.skipWhitespace()
        guard parser.pos < bytes.count, bytes[parser.pos] == UInt8(ascii: "{") else {
            let value = try parser.parseValue(depth: 1)
            parser.skipWhitespace()
            if parser.pos < bytes.count { throw parser.error("unexpected data after the JSON value") }
            return (value, nil)
        }
        parser.pos += 1
        var members: [JSONObject.Member] = []
        var keys: [String] = []
        var servers: [ServersElement]? = nil
        parser.skipWhitespace()
        if parser.pos < bytes.count, bytes[parser.pos] == UInt8(ascii: "}") {
            parser.pos += 1
        } else {
            while true {
                parser.skipWhitespace()
                guard parser.pos < bytes.count, bytes[parser.pos] == UInt8(ascii: "\"") else { throw parser.error("expected a string key") }
                let keyOffset = parser.pos
                let key = try parser.parseString()
                guard !keys.contains(key) else { throw parser.error("duplicate key \"\(key)\"", at: keyOffset) }
                keys.append(key)
                parser.skipWhitespace()
                guard parser.pos < bytes.count, bytes[parser.pos] == UInt8(ascii: ":") else { throw parser.error("expected ':' after a key") }
                parser.pos += 1
                parser.skipWhitespace()
                if key == "servers", parser.pos < bytes.count, bytes[parser.pos] == UInt8(ascii: "[") {
                    servers = try parser.parseServers(previous: previous)
                } else {
                    members.append(JSONObject.Member(key: key, value: try parser.parseValue(depth: 2)))
                }
                parser.skipWhitespace()
                guard parser.pos < bytes.count else { throw parser.error("unexpected end of input in an object") }
                if bytes[parser.pos] == UInt8(ascii: ",") { parser.pos += 1; continue }
                if bytes[parser.pos] == UInt8(ascii: "}") { parser.pos += 1; break }
                throw parser.error("expected ',' or '}' in an object")
            }
        }
        parser.skipWhitespace()
        if parser.pos < bytes.count { throw parser.error("unexpected data after the JSON value") }
        return (.object(JSONObject(uncheckedMembers: members)), servers)
    }

    private mutating func parseServers(previous: [[UInt8]?]) throws(JSONParseError) -> [ServersElement] {
        if 2 > maxDepth {
            var e = error("nesting deeper than \(maxDepth) levels")
            e.isLimit = true
            throw e
        }
        pos += 1
        var items: [ServersElement] = []
        var next = 0  // the previous entry expected here if nothing changed
        skipWhitespace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") { pos += 1; return items }
        while true {
            skipWhitespace()
            if let (k, length) = matchPrevious(previous, around: next) {
                items.append(.reused(k))
                pos += length
                next = k + 1
            } else {
                let start = pos
                let value = try parseValue(depth: 3)
                items.append(.parsed(value, start..<pos))
                next += 1
            }
            skipWhitespace()
            guard pos < bytes.count else { throw error("unexpected end of input in an array") }
            if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if bytes[pos] == UInt8(ascii: "]") { pos += 1; return items }
            throw error("expected ',' or ']' in an array")
        }
    }

    /// The previous entry (at `around`, one after, or one before) whose encoding the bytes at the
    /// current position equal, followed by the end of the element.
    private func matchPrevious(_ previous: [[UInt8]?], around: Int) -> (Int, Int)? {
        for step in 0..<3 {
            // Not `for k in [around, around + 1, around - 1]`: that allocated an array per entry.
            let k = step == 0 ? around : (step == 1 ? around + 1 : around - 1)
            guard k >= 0, k < previous.count, let candidate = previous[k], !candidate.isEmpty, bytes.count - pos > candidate.count else { continue }
            let after = bytes[pos + candidate.count]
            guard after == UInt8(ascii: ",") || after == UInt8(ascii: "]") || after == 0x20 || after == 0x0A || after == 0x0D || after == 0x09 else { continue }
            let same = candidate.withUnsafeBytes { c in memcmp(bytes.baseAddress! + pos, c.baseAddress!, candidate.count) == 0 }
            if same { return (k, candidate.count) }
        }
        return nil
    }

    private init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    private func error(_ reason: String, at offset: Int? = nil) -> JSONParseError {
        let at = min(offset ?? pos, bytes.count)
        var line = 1, column = 1
        var i = 0
        while i < at {
            if bytes[i] == UInt8(ascii: "\n") { line += 1; column = 1 } else if bytes[i] & 0xC0 != 0x80 { column += 1 }
            i += 1
        }
        return JSONParseError(reason: reason, offset: at, line: line, column: column)
    }

    private mutating func skipWhitespace() {
        while pos < bytes.count {
            switch bytes[pos] {
            case 0x20, 0x0A, 0x0D, 0x09: pos += 1
            default: return
            }
        }
    }

    private mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard pos < bytes.count else { throw error("unexpected end of input") }
        switch bytes[pos] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error("unexpected character '\(printable(bytes[pos]))'")
        }
    }

    private func printable(_ b: UInt8) -> String {
        (0x20..<0x7F).contains(b) ? String(UnicodeScalar(b)) : "\\x" + String(b, radix: 16)
    }

    private mutating func expectLiteral(_ word: StaticString) throws(JSONParseError) {
        let n = word.utf8CodeUnitCount
        guard bytes.count - pos >= n else { throw error("unexpected end of input") }
        let start = word.utf8Start
        for i in 0..<n where bytes[pos + i] != start[i] { throw error("invalid literal") }
        pos += n
    }

    /// Objects and arrays deeper than `maxDepth` are a limit error, not a syntax error.
    private func checkDepth(_ depth: Int) throws(JSONParseError) {
        guard depth > maxDepth else { return }
        var e = error("nesting deeper than \(maxDepth) levels")
        e.isLimit = true
        throw e
    }

    private mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
        try checkDepth(depth)
        pos += 1
        var members: [JSONObject.Member] = []
        // Duplicate keys: a linear scan while the object is small (entries have ~15 keys), a set
        // once it grows — hashing every key of every small object costs more than comparing.
        var seen: Set<String>? = nil
        skipWhitespace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(JSONObject(uncheckedMembers: members)) }
        while true {
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let keyOffset = pos
            let key = try parseString()
            let duplicate: Bool
            if let inserted = seen?.insert(key).inserted {
                duplicate = !inserted
            } else {
                duplicate = members.contains { $0.key == key }
                if members.count >= 32 { seen = Set(members.map(\.key) + [key]) }
            }
            guard !duplicate else { throw error("duplicate key \"\(key)\"", at: keyOffset) }
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else { throw error("expected ':' after a key") }
            pos += 1
            skipWhitespace()
            let value = try parseValue(depth: depth + 1)
            members.append(JSONObject.Member(key: key, value: value))
            skipWhitespace()
            guard pos < bytes.count else { throw error("unexpected end of input in an object") }
            if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(JSONObject(uncheckedMembers: members)) }
            throw error("expected ',' or '}' in an object")
        }
    }

    private mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        try checkDepth(depth)
        pos += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            guard pos < bytes.count else { throw error("unexpected end of input in an array") }
            if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
            throw error("expected ',' or ']' in an array")
        }
    }

    private mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let start = pos
        if bytes[pos] == UInt8(ascii: "-") { pos += 1 }
        guard pos < bytes.count, isDigit(bytes[pos]) else { throw error("invalid number") }
        if bytes[pos] == UInt8(ascii: "0") {
            pos += 1
        } else {
            while pos < bytes.count, isDigit(bytes[pos]) { pos += 1 }
        }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
            pos += 1
            guard pos < bytes.count, isDigit(bytes[pos]) else { throw error("invalid number: digit expected after '.'") }
            while pos < bytes.count, isDigit(bytes[pos]) { pos += 1 }
        }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
            pos += 1
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            guard pos < bytes.count, isDigit(bytes[pos]) else { throw error("invalid number: digit expected in exponent") }
            while pos < bytes.count, isDigit(bytes[pos]) { pos += 1 }
        }
        if pos - start > 64 {
            var e = error("number literal longer than 64 characters", at: start)
            e.isLimit = true
            throw e
        }
        return .number(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self))
    }

    private func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }

    private mutating func parseString() throws(JSONParseError) -> String {
        let open = pos
        pos += 1
        let start = pos
        // Fast path: no escapes — validate the UTF-8 of the raw slice in one go.
        while pos < bytes.count {
            let b = bytes[pos]
            if b == UInt8(ascii: "\"") {
                let slice = UnsafeBufferPointer(rebasing: bytes[start..<pos])
                guard UTF8Check.isValid(slice) else { throw error("invalid UTF-8 in a string", at: open) }
                pos += 1
                return String(decoding: slice, as: UTF8.self)
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { throw error("control character in a string (escape it)") }
            pos += 1
        }
        guard pos < bytes.count else { throw error("unterminated string", at: open) }
        // Slow path with escapes.
        var out: [UInt8] = Array(UnsafeBufferPointer(rebasing: bytes[start..<pos]))
        while pos < bytes.count {
            let b = bytes[pos]
            if b == UInt8(ascii: "\"") {
                pos += 1
                let valid = out.withUnsafeBufferPointer { UTF8Check.isValid($0) }
                guard valid else { throw error("invalid UTF-8 in a string", at: open) }
                return String(decoding: out, as: UTF8.self)
            }
            if b < 0x20 { throw error("control character in a string (escape it)") }
            if b != UInt8(ascii: "\\") { out.append(b); pos += 1; continue }
            pos += 1
            guard pos < bytes.count else { break }
            let e = bytes[pos]
            pos += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try parseHex4()
                if (0xD800..<0xDC00).contains(scalar) {
                    guard bytes.count - pos >= 6, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
                        throw error("unpaired surrogate in \\u escape")
                    }
                    pos += 2
                    let low = try parseHex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in \\u escape") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00..<0xE000).contains(scalar) {
                    throw error("unpaired surrogate in \\u escape")
                }
                guard let u = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                out.append(contentsOf: String(Character(u)).utf8)
            default:
                throw error("invalid escape '\\\(printable(e))'", at: pos - 2)
            }
        }
        throw error("unterminated string", at: open)
    }

    private mutating func parseHex4() throws(JSONParseError) -> UInt32 {
        guard bytes.count - pos >= 4 else { throw error("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[pos]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw error("invalid hex digit in \\u escape")
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }
}

/// Strict UTF-8 validation (RFC 3629: no overlong forms, no surrogates, nothing above
/// U+10FFFF), with a fast path for ASCII — the common case in a registry file.
enum UTF8Check {
    static func isValid(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        let n = b.count
        while i < n {
            let c = b[i]
            if c < 0x80 { i += 1; continue }
            let length: Int
            var lower: UInt8 = 0x80, upper: UInt8 = 0xBF
            switch c {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; lower = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; upper = 0x9F
            case 0xF0: length = 4; lower = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; upper = 0x8F
            default: return false
            }
            guard i + length <= n else { return false }
            let second = b[i + 1]
            guard second >= lower, second <= upper else { return false }
            var k = 2
            while k < length {
                guard b[i + k] & 0xC0 == 0x80 else { return false }
                k += 1
            }
            i += length
        }
        return true
    }
}

/// Writes JSON text: compact, keys in their stored order, strings escaped per RFC 8259.
enum JSONWriter {
    static func write(_ value: JSONValue, into out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .number(let literal): out.append(contentsOf: literal.utf8)
        case .string(let s): writeString(s, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                write(item, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            out.append(UInt8(ascii: "{"))
            for (i, m) in object.members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                writeString(m.key, into: &out)
                out.append(UInt8(ascii: ":"))
                write(m.value, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { utf8 in
            var runStart = 0
            for i in 0..<utf8.count {
                let b = utf8[i]
                guard b < 0x20 || b == 0x22 || b == 0x5C else { continue }
                if runStart < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<i])) }
                runStart = i + 1
                switch b {
                case 0x22: out.append(contentsOf: [0x5C, 0x22])
                case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
                case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
                case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
                case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
                default:
                    out.append(contentsOf: [0x5C, UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                            hex[Int(b >> 4)], hex[Int(b & 0xF)]])
                }
            }
            if runStart < utf8.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...])) }
        }
        out.append(UInt8(ascii: "\""))
    }
}
