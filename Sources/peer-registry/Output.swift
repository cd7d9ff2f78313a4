import RegistryKit
import RegistryServerPolicy
#if canImport(Glibc)
import Glibc
#endif

/// Where output goes: results on stdout, errors on stderr as `peer-registry: <message>`.
enum Output {
    /// A result line on stdout. Unbuffered (one write per call), so a stream read line by line
    /// through a pipe (watch, the URL serve and mcp print) sees each line at once.
    static func line(_ text: String) { write(text + "\n", to: 1) }

    /// A message for a person — an error, or a note such as where a server listens — on stderr
    /// as `peer-registry: <message>`, so stdout stays machine-readable.
    static func error(_ message: String) { write("peer-registry: \(message)\n", to: 2) }

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

extension Output {
    /// `text` safe to print on a terminal: control characters (C0, DEL, C1: escape sequences,
    /// carriage returns and newlines that would forge lines) and bidirectional overrides (which
    /// reverse what follows) are shown as `\u{XX}`.
    static func printable(_ text: String) -> String {
        var out = ""
        out.unicodeScalars.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            let v = scalar.value
            if v < 0x20 || (0x7F...0x9F).contains(v) || (0x202A...0x202E).contains(v) || (0x2066...0x2069).contains(v)
                || v == 0x200E || v == 0x200F || v == 0x061C {
                out += "\\u{" + String(v, radix: 16, uppercase: true) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

extension ServerEntry {
    /// What the supervisor wrote into `metadata.supervisor` (`{"state":"running","restarts":2}`),
    /// as `running (2 restarts)`; nil when the entry is not supervised.
    var supervisorLabel: String? {
        guard case .object(let m)? = metadata, case .object(let sup)? = m["supervisor"] else { return nil }
        let state = sup["state"]?.stringValue ?? "?"
        let restarts = sup["restarts"]?.int64Value ?? 0
        return restarts > 0 ? "\(state) (\(restarts) restart\(restarts == 1 ? "" : "s"))" : state
    }

    /// The entry's JSON for printing: without its secret fields unless `showSecrets`.
    func printedJSON(showSecrets: Bool) -> JSONObject {
        showSecrets ? jsonObject : EntrySecrets.redacted(jsonObject)
    }

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
