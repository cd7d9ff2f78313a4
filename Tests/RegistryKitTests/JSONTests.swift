import Testing
@testable import RegistryKit

@Suite struct JSONTests {
    @Test func parsesAndKeepsNumbersAndKeyOrder() throws {
        let v = try JSONValue.parse(#"{"b": 1.50, "a": [true, false, null, -0, 1e3, "x\u00e9\n\ud83d\ude00"]}"#)
        guard case .object(let o) = v else { Issue.record("not an object"); return }
        #expect(o.keys == ["b", "a"])
        #expect(o["b"] == .number("1.50"))
        #expect(o["a"] == .array([.bool(true), .bool(false), .null, .number("-0"), .number("1e3"), .string("xé\n😀")]))
        #expect(v.jsonText == #"{"b":1.50,"a":[true,false,null,-0,1e3,"xé\n😀"]}"#)
    }

    @Test func roundTripsEscapes() throws {
        let s = "quote\" backslash\\ tab\t nul\u{0} bell\u{7} é"
        let text = JSONValue.string(s).jsonText
        #expect(text == #""quote\" backslash\\ tab\t nul\u0000 bell\u0007 é""#)
        #expect(try JSONValue.parse(text) == .string(s))
    }

    @Test(arguments: [
        ("", "unexpected end of input"),
        ("{", "expected a string key"),
        (#"{"a":1,"a":2}"#, "duplicate key \"a\""),
        (#"{"a":1,}"#, "expected a string key"),
        ("[1,]", "unexpected character"),
        ("01", "unexpected data after"),
        ("1.", "digit expected after '.'"),
        (#""\x""#, "invalid escape"),
        (#""\ud800""#, "unpaired surrogate"),
        ("\"a\u{1}b\"", "control character"),
        ("nul", "unexpected end of input"),
        ("[1] [2]", "unexpected data after"),
        (#"{"a" 1}"#, "expected ':'"),
    ])
    func rejectsMalformedInput(text: String, reason: String) {
        let error = expectError(.invalid) { _ = try JSONValue.parse(text) }
        #expect(error?.message.contains(reason) == true, "\(String(describing: error))")
    }

    @Test func reportsLineAndColumn() {
        let error = expectError(.invalid) { _ = try JSONValue.parse("{\n  \"a\": 1,\n  \"b\": tru\n}") }
        #expect(error?.message.contains("line 3, column 8") == true, "\(String(describing: error))")
    }

    @Test func rejectsInvalidUTF8() {
        let bytes: [UInt8] = [0x22, 0xC3, 0x28, 0x22]
        let result = bytes.withUnsafeBufferPointer { buf in Result { try JSONParser.parse(buf, maxDepth: 16) } }
        guard case .failure(let error as JSONParseError) = result else { Issue.record("accepted invalid UTF-8"); return }
        #expect(error.reason.contains("invalid UTF-8"))
    }

    @Test(arguments: [
        ([0xC0, 0xAF], false),              // overlong '/'
        ([0xE0, 0x80, 0xAF], false),        // overlong, 3 bytes
        ([0xED, 0xA0, 0x80], false),        // UTF-16 surrogate encoded in UTF-8
        ([0xF4, 0x90, 0x80, 0x80], false),  // above U+10FFFF
        ([0xF5, 0x80, 0x80, 0x80], false),
        ([0xE2, 0x82], false),              // truncated
        ([0x80], false),                    // lone continuation byte
        ([0x61, 0xE2, 0x82, 0xAC], true),   // "a€"
        ([0xF0, 0x9F, 0x98, 0x80], true),   // 😀
        ([0xED, 0x9F, 0xBF], true),         // U+D7FF, just below the surrogates
        ([0xF4, 0x8F, 0xBF, 0xBF], true),   // U+10FFFF
    ] as [([UInt8], Bool)])
    func utf8ValidationIsStrict(bytes: [UInt8], valid: Bool) {
        #expect(bytes.withUnsafeBufferPointer { UTF8Check.isValid($0) } == valid)
        #expect(bytes.withUnsafeBufferPointer { UTF8Check.isValid($0) } == (String(validating: bytes, as: UTF8.self) != nil),
                "agrees with the standard library")
    }

    @Test func limitsDepth() {
        let deep = String(repeating: "[", count: 17) + String(repeating: "]", count: 17)
        expectError(.limit) { _ = try JSONValue.parse(deep) }
        let ok = String(repeating: "[", count: 16) + String(repeating: "]", count: 16)
        #expect(throws: Never.self) { _ = try JSONValue.parse(ok) }
    }

    @Test func limitsSize() {
        var limits = RegistryLimits()
        limits.maxFileBytes = 10
        expectError(.limit) { _ = try JSONValue.parse("[1,2,3,4,5,6]", limits: limits) }
    }
}
