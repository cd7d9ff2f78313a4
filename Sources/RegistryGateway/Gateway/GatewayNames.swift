/// How the gateway names the tools and prompts of its backends (docs/GATEWAY.md, "Names").
///
/// LLM APIs accept tool names of `[A-Za-z0-9_-]`, at most 64 characters. A backend's tool
/// `name` on server `id` is exposed as `<id>__<name>` when that already fits; otherwise every
/// other character becomes `_`, the text is cut to 55 characters and `_` plus 8 hex digits of
/// the FNV-1a 64-bit hash of the original `<id>__<name>` are appended. The hash depends only on
/// the two strings, so the mapping is the same on every run and every machine.
public enum GatewayNames {
    public static let maxLength = 64
    static let hashDigits = 8

    /// The exposed name of `name` on server `id`.
    public static func exposed(id: String, name: String) -> String {
        let full = id + "__" + name
        if full.utf8.count <= maxLength, full.utf8.allSatisfy(isAllowed) { return full }
        return shortened(full)
    }

    /// `full` made valid and short, with the hash of its original text.
    static func shortened(_ full: String) -> String {
        var cleaned: [UInt8] = []
        cleaned.reserveCapacity(maxLength)
        // Characters, not bytes: one non-ASCII character becomes one `_`.
        for scalar in full.unicodeScalars {
            if cleaned.count == maxLength - hashDigits - 1 { break }
            let v = scalar.value
            cleaned.append(v < 128 && isAllowed(UInt8(v)) ? UInt8(v) : UInt8(ascii: "_"))
        }
        cleaned.append(UInt8(ascii: "_"))
        cleaned.append(contentsOf: hex(fnv1a64(Array(full.utf8))))
        return String(decoding: cleaned, as: UTF8.self)
    }

    /// Whether `name` is one LLM APIs accept.
    public static func isValid(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= maxLength && name.utf8.allSatisfy(isAllowed)
    }

    @inline(__always) static func isAllowed(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
    }

    static func fnv1a64(_ bytes: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01b3
        }
        return h
    }

    /// The first `hashDigits` hex digits of `value` (its high bits).
    static func hex(_ value: UInt64) -> [UInt8] {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for k in 0..<hashDigits {
            out.append(digits[Int((value >> UInt64(60 - 4 * k)) & 0xF)])
        }
        return out
    }
}
