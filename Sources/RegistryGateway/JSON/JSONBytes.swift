/// JSON read straight from bytes, for two jobs the registry's tree parser does not do:
/// messages relayed between MCP peers (only the top-level members are located, by byte range,
/// so an `id` can be swapped without re-encoding the rest, which stays byte for byte what the
/// peer sent), and configuration files (every value keeps its offset, so an error can name the
/// line and column).
///
/// Everything is validated: a value that is not RFC 8259 JSON is an error, never a guess.
public struct JSONSyntaxError: Error, Sendable, CustomStringConvertible {
    /// Byte offset of the problem in the input.
    public var offset: Int
    public var message: String
    public var description: String { "\(message) at byte \(offset)" }
}

enum JSONBytes {
    static let maxDepth = 64

    @inline(__always) static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 }

    static func skipSpace(_ b: [UInt8], _ i: inout Int) {
        while i < b.count, isSpace(b[i]) { i += 1 }
    }

    /// Moves `i` past one value (which must start at `i`, after optional space).
    static func skipValue(_ b: [UInt8], _ i: inout Int, depth: Int = 0) throws(JSONSyntaxError) {
        skipSpace(b, &i)
        guard i < b.count else { throw JSONSyntaxError(offset: i, message: "unexpected end of input") }
        guard depth < maxDepth else { throw JSONSyntaxError(offset: i, message: "nested deeper than \(maxDepth)") }
        switch b[i] {
        case UInt8(ascii: "\""): try skipString(b, &i)
        case UInt8(ascii: "{"):
            i += 1
            skipSpace(b, &i)
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return }
            while true {
                skipSpace(b, &i)
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw JSONSyntaxError(offset: i, message: "expected a member name") }
                try skipString(b, &i)
                skipSpace(b, &i)
                guard i < b.count, b[i] == UInt8(ascii: ":") else { throw JSONSyntaxError(offset: i, message: "expected ':'") }
                i += 1
                try skipValue(b, &i, depth: depth + 1)
                skipSpace(b, &i)
                guard i < b.count else { throw JSONSyntaxError(offset: i, message: "unterminated object") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "}") { i += 1; return }
                throw JSONSyntaxError(offset: i, message: "expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            i += 1
            skipSpace(b, &i)
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return }
            while true {
                try skipValue(b, &i, depth: depth + 1)
                skipSpace(b, &i)
                guard i < b.count else { throw JSONSyntaxError(offset: i, message: "unterminated array") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "]") { i += 1; return }
                throw JSONSyntaxError(offset: i, message: "expected ',' or ']'")
            }
        case UInt8(ascii: "t"): try skipLiteral(b, &i, "true")
        case UInt8(ascii: "f"): try skipLiteral(b, &i, "false")
        case UInt8(ascii: "n"): try skipLiteral(b, &i, "null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try skipNumber(b, &i)
        default: throw JSONSyntaxError(offset: i, message: "unexpected character")
        }
    }

    static func skipLiteral(_ b: [UInt8], _ i: inout Int, _ word: StaticString) throws(JSONSyntaxError) {
        let n = word.utf8CodeUnitCount
        guard i + n <= b.count else { throw JSONSyntaxError(offset: i, message: "unexpected end of input") }
        let p = word.utf8Start
        for k in 0..<n where b[i + k] != p[k] { throw JSONSyntaxError(offset: i, message: "invalid literal") }
        i += n
    }

    static func skipNumber(_ b: [UInt8], _ i: inout Int) throws(JSONSyntaxError) {
        let start = i
        func digits(_ i: inout Int) -> Int {
            var n = 0
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 { i += 1; n += 1 }
            return n
        }
        if b[i] == UInt8(ascii: "-") { i += 1 }
        guard i < b.count else { throw JSONSyntaxError(offset: start, message: "invalid number") }
        if b[i] == UInt8(ascii: "0") { i += 1 } else if digits(&i) == 0 { throw JSONSyntaxError(offset: start, message: "invalid number") }
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            if digits(&i) == 0 { throw JSONSyntaxError(offset: start, message: "invalid number") }
        }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            if digits(&i) == 0 { throw JSONSyntaxError(offset: start, message: "invalid number") }
        }
    }

    /// Skips a string, checking escapes and that control characters are escaped. UTF-8 validity
    /// is checked when a string is decoded (`decodeString`); relayed strings pass through as is.
    static func skipString(_ b: [UInt8], _ i: inout Int) throws(JSONSyntaxError) {
        let start = i
        i += 1
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") { i += 1; return }
            if c < 0x20 { throw JSONSyntaxError(offset: i, message: "unescaped control character in a string") }
            if c == UInt8(ascii: "\\") {
                i += 1
                guard i < b.count else { break }
                switch b[i] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    i += 1
                case UInt8(ascii: "u"):
                    guard i + 4 < b.count, (1...4).allSatisfy({ hexValue(b[i + $0]) != nil }) else {
                        throw JSONSyntaxError(offset: i, message: "invalid \\u escape")
                    }
                    i += 5
                default: throw JSONSyntaxError(offset: i, message: "invalid escape")
                }
                continue
            }
            i += 1
        }
        throw JSONSyntaxError(offset: start, message: "unterminated string")
    }

    static func hexValue(_ c: UInt8) -> UInt32? {
        switch c {
        case 0x30...0x39: UInt32(c - 0x30)
        case 0x41...0x46: UInt32(c - 0x41 + 10)
        case 0x61...0x66: UInt32(c - 0x61 + 10)
        default: nil
        }
    }

    /// The string whose quoted text is `b[range]` (quotes included), unescaped; nil when it is
    /// not a valid string (bad escape, lone surrogate, invalid UTF-8).
    static func decodeString(_ b: [UInt8], _ range: Range<Int>) -> String? {
        guard range.count >= 2, b[range.lowerBound] == UInt8(ascii: "\""), b[range.upperBound - 1] == UInt8(ascii: "\"") else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(range.count)
        var i = range.lowerBound + 1
        let end = range.upperBound - 1
        while i < end {
            let c = b[i]
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            i += 1
            guard i < end else { return nil }
            let e = b[i]
            i += 1
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
                guard var scalar = hex4(b, i, end) else { return nil }
                i += 4
                if (0xD800...0xDBFF).contains(scalar) {
                    guard i + 6 <= end, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u"),
                          let low = hex4(b, i + 2, end), (0xDC00...0xDFFF).contains(low) else { return nil }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    return nil
                }
                guard let u = Unicode.Scalar(scalar) else { return nil }
                out.append(contentsOf: Array(String(Character(u)).utf8))
            default: return nil
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    private static func hex4(_ b: [UInt8], _ i: Int, _ end: Int) -> UInt32? {
        guard i + 4 <= end else { return nil }
        var v: UInt32 = 0
        for k in 0..<4 {
            guard let h = hexValue(b[i + k]) else { return nil }
            v = v << 4 | h
        }
        return v
    }

    /// One member of an object: the decoded name and the byte range of its value.
    struct Member {
        var key: String
        var value: Range<Int>
    }

    /// The members of the object at `b[range]` (space around it allowed), in order.
    /// - Throws: when it is not an object, or not valid JSON, or a name repeats.
    static func members(_ b: [UInt8], _ range: Range<Int>) throws(JSONSyntaxError) -> [Member] {
        var i = range.lowerBound
        skipSpace(b, &i)
        guard i < range.upperBound, b[i] == UInt8(ascii: "{") else { throw JSONSyntaxError(offset: i, message: "expected an object") }
        i += 1
        var out: [Member] = []
        skipSpace(b, &i)
        if i < range.upperBound, b[i] == UInt8(ascii: "}") { return out }
        while true {
            skipSpace(b, &i)
            let keyStart = i
            guard i < range.upperBound, b[i] == UInt8(ascii: "\"") else { throw JSONSyntaxError(offset: i, message: "expected a member name") }
            try skipString(b, &i)
            guard let key = decodeString(b, keyStart..<i) else { throw JSONSyntaxError(offset: keyStart, message: "invalid member name") }
            skipSpace(b, &i)
            guard i < range.upperBound, b[i] == UInt8(ascii: ":") else { throw JSONSyntaxError(offset: i, message: "expected ':'") }
            i += 1
            skipSpace(b, &i)
            let valueStart = i
            try skipValue(b, &i, depth: 1)
            guard i <= range.upperBound else { throw JSONSyntaxError(offset: i, message: "value runs past the object") }
            if out.contains(where: { $0.key == key }) { throw JSONSyntaxError(offset: keyStart, message: "duplicate member \"\(key)\"") }
            out.append(Member(key: key, value: valueStart..<i))
            skipSpace(b, &i)
            guard i < range.upperBound else { throw JSONSyntaxError(offset: i, message: "unterminated object") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "}") { return out }
            throw JSONSyntaxError(offset: i, message: "expected ',' or '}'")
        }
    }

    /// `s` as a JSON string literal.
    static func quote(_ s: String) -> [UInt8] {
        var out: [UInt8] = [0x22]
        out.reserveCapacity(s.utf8.count + 2)
        for c in s.utf8 {
            switch c {
            case 0x22: out += [0x5C, 0x22]
            case 0x5C: out += [0x5C, 0x5C]
            case 0x0A: out += [0x5C, UInt8(ascii: "n")]
            case 0x0D: out += [0x5C, UInt8(ascii: "r")]
            case 0x09: out += [0x5C, UInt8(ascii: "t")]
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(c >> 4)], hex[Int(c & 15)]]
            default: out.append(c)
            }
        }
        out.append(0x22)
        return out
    }
}

/// A JSON value that remembers where it was in the text (configuration files).
indirect enum PositionedJSON: Sendable {
    case string(String, offset: Int)
    case number(String, offset: Int)
    case bool(Bool, offset: Int)
    case null(offset: Int)
    case array([PositionedJSON], offset: Int)
    case object([(key: String, keyOffset: Int, value: PositionedJSON)], offset: Int)

    var offset: Int {
        switch self {
        case .string(_, let o), .number(_, let o), .bool(_, let o), .null(let o), .array(_, let o), .object(_, let o): o
        }
    }

    var typeName: String {
        switch self {
        case .string: "a string"
        case .number: "a number"
        case .bool: "a boolean"
        case .null: "null"
        case .array: "an array"
        case .object: "an object"
        }
    }

    static func parse(_ b: [UInt8]) throws(JSONSyntaxError) -> PositionedJSON {
        var i = 0
        // A UTF-8 byte order mark is accepted (some editors write one).
        if b.count >= 3, b[0] == 0xEF, b[1] == 0xBB, b[2] == 0xBF { i = 3 }
        let value = try parseValue(b, &i, depth: 0)
        JSONBytes.skipSpace(b, &i)
        guard i == b.count else { throw JSONSyntaxError(offset: i, message: "unexpected text after the JSON value") }
        return value
    }

    private static func parseValue(_ b: [UInt8], _ i: inout Int, depth: Int) throws(JSONSyntaxError) -> PositionedJSON {
        JSONBytes.skipSpace(b, &i)
        let start = i
        guard i < b.count else { throw JSONSyntaxError(offset: i, message: "unexpected end of input") }
        guard depth < JSONBytes.maxDepth else { throw JSONSyntaxError(offset: i, message: "nested deeper than \(JSONBytes.maxDepth)") }
        switch b[i] {
        case UInt8(ascii: "\""):
            try JSONBytes.skipString(b, &i)
            guard let s = JSONBytes.decodeString(b, start..<i) else { throw JSONSyntaxError(offset: start, message: "invalid string (bad escape or UTF-8)") }
            return .string(s, offset: start)
        case UInt8(ascii: "{"):
            i += 1
            var members: [(key: String, keyOffset: Int, value: PositionedJSON)] = []
            JSONBytes.skipSpace(b, &i)
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(members, offset: start) }
            while true {
                JSONBytes.skipSpace(b, &i)
                let keyStart = i
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw JSONSyntaxError(offset: i, message: "expected a member name in quotes") }
                try JSONBytes.skipString(b, &i)
                guard let key = JSONBytes.decodeString(b, keyStart..<i) else { throw JSONSyntaxError(offset: keyStart, message: "invalid member name") }
                if members.contains(where: { $0.key == key }) { throw JSONSyntaxError(offset: keyStart, message: "duplicate member \"\(key)\"") }
                JSONBytes.skipSpace(b, &i)
                guard i < b.count, b[i] == UInt8(ascii: ":") else { throw JSONSyntaxError(offset: i, message: "expected ':' after a member name") }
                i += 1
                let value = try parseValue(b, &i, depth: depth + 1)
                members.append((key, keyStart, value))
                JSONBytes.skipSpace(b, &i)
                guard i < b.count else { throw JSONSyntaxError(offset: i, message: "unterminated object (missing '}')") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "}") { i += 1; return .object(members, offset: start) }
                throw JSONSyntaxError(offset: i, message: "expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            i += 1
            var items: [PositionedJSON] = []
            JSONBytes.skipSpace(b, &i)
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(items, offset: start) }
            while true {
                items.append(try parseValue(b, &i, depth: depth + 1))
                JSONBytes.skipSpace(b, &i)
                guard i < b.count else { throw JSONSyntaxError(offset: i, message: "unterminated array (missing ']')") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "]") { i += 1; return .array(items, offset: start) }
                throw JSONSyntaxError(offset: i, message: "expected ',' or ']'")
            }
        case UInt8(ascii: "t"): try JSONBytes.skipLiteral(b, &i, "true"); return .bool(true, offset: start)
        case UInt8(ascii: "f"): try JSONBytes.skipLiteral(b, &i, "false"); return .bool(false, offset: start)
        case UInt8(ascii: "n"): try JSONBytes.skipLiteral(b, &i, "null"); return .null(offset: start)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try JSONBytes.skipNumber(b, &i)
            return .number(String(decoding: b[start..<i], as: UTF8.self), offset: start)
        default:
            throw JSONSyntaxError(offset: i, message: "unexpected character")
        }
    }
}
