import MCP
import RegistryKit
import RegistryServerPolicy

extension JSONValue {
    /// The same value as the MCP SDK's `Value`. Numbers become `.int` when their literal is an
    /// integer that fits, else `.double`; a number no `Double` can hold (`1e400`, which JSON
    /// allows but the SDK's encoder refuses) stays its literal, as a string. Object member order
    /// is lost (MCP objects are dictionaries), which is why text content is written from
    /// RegistryKit's own JSON instead.
    var mcpValue: MCP.Value {
        switch self {
        case .null: .null
        case .bool(let b): .bool(b)
        case .number(let literal):
            if let i = Int(literal) {
                .int(i)
            } else if let d = Double(literal), d.isFinite {
                .double(d)
            } else {
                .string(literal)
            }
        case .string(let s): .string(s)
        case .array(let items): .array(items.map(\.mcpValue))
        case .object(let o): .object(o.mcpValue)
        }
    }
}

extension JSONObject {
    var mcpValue: [String: MCP.Value] {
        var out: [String: MCP.Value] = [:]
        out.reserveCapacity(count)
        for m in members { out[m.key] = m.value.mcpValue }
        return out
    }
}

extension ServerEntry {
    /// The entry as the MCP tools and resources show it: the file's JSON with `id` always present
    /// and first (an entry written by an older tool has none in the file: it is `port-<port>`),
    /// and never its secret fields (`EntrySecrets`).
    var view: JSONObject {
        var o = JSONObject([("id", .string(id))])
        for m in EntrySecrets.redacted(jsonObject).members where m.key != "id" { o[m.key] = m.value }
        return o
    }

    /// The health object as the file holds it (always with a `status`).
    var healthView: JSONObject {
        if case .object(let h)? = jsonObject["health"] { return h }
        return JSONObject([("status", .string(health.status.name))])
    }
}

extension RegistryListing {
    /// `{"generation":N,"servers":[...]}`, each entry as `ServerEntry.view`.
    var view: JSONObject {
        JSONObject([
            ("generation", .int(generation)),
            ("servers", .array(servers.map { .object($0.view) })),
        ])
    }
}
