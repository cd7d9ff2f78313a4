import RegistryKit
#if canImport(Glibc)
import Glibc
#endif

/// Where output goes: results on stdout, errors on stderr as `peer-registry: <message>`.
enum Output {
    static func line(_ text: String) { write(text + "\n", to: 1) }

    /// Same as `line`: output is unbuffered (one write per call), so a stream read line by line
    /// through a pipe sees each line at once.
    static func lineFlushed(_ text: String) { write(text + "\n", to: 1) }

    static func error(_ message: String) { write("peer-registry: \(message)\n", to: 2) }

    /// Information for a person, not the result: stderr, so stdout stays machine-readable.
    static func note(_ message: String) { write("peer-registry: \(message)\n", to: 2) }

    /// Writes all of `text` to descriptor `fd` (retrying short writes and EINTR).
    private static func write(_ text: String, to fd: Int32) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            bytes = bytes.dropFirst(n)
        }
    }

    /// JSON indented by two spaces, keys in the order they have.
    static func pretty(_ value: JSONValue, indent: String = "") -> String {
        let inner = indent + "  "
        switch value {
        case .array(let items):
            if items.isEmpty { return "[]" }
            if items.allSatisfy({ $0.arrayValue == nil && $0.objectValue == nil }) {
                return "[" + items.map(\.jsonText).joined(separator: ", ") + "]"
            }
            return "[\n" + items.map { inner + pretty($0, indent: inner) }.joined(separator: ",\n") + "\n" + indent + "]"
        case .object(let object):
            if object.isEmpty { return "{}" }
            return "{\n" + object.members.map { inner + JSONValue.string($0.key).jsonText + ": " + pretty($0.value, indent: inner) }
                .joined(separator: ",\n") + "\n" + indent + "}"
        default:
            return value.jsonText
        }
    }

    /// Rows padded into columns, two spaces apart; the last column is not padded.
    static func table(_ rows: [[String]]) -> String {
        guard let columns = rows.map(\.count).max() else { return "" }
        var widths = [Int](repeating: 0, count: columns)
        for row in rows {
            for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) }
        }
        return rows.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}

extension ServerEntry {
    /// How the entry's liveness reads in a table.
    var livenessLabel: String {
        switch liveness {
        case .lease: "lease"
        case .pid: "pid"
        case .ttl: "ttl \(ttlSeconds ?? 30)s"
        case .none: "static"
        }
    }

    var healthLabel: String { health.status.name }
}
