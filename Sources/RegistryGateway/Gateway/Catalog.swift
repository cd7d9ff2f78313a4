#if canImport(Glibc)
import Glibc
#endif
import RegistryKit

/// What a backend offers, as its own lists give it (each item a JSON object).
struct BackendLists: Sendable, Equatable {
    var tools: [JSONObject] = []
    var prompts: [JSONObject] = []
    var resources: [JSONObject] = []
    var templates: [JSONObject] = []
}

/// One tool or prompt of one backend, under the name the gateway exposes.
struct CatalogItem: Sendable, Equatable {
    let backend: String
    let name: String
    let exposed: String
}

/// `--include` / `--exclude`: glob patterns (fnmatch) on server ids and on tool and prompt names.
/// An item is shown when it passes both: with include patterns, one of them matches its server
/// id, its exposed name or its own name; no exclude pattern matches any of those.
public struct GatewayFilter: Sendable, Equatable {
    public var include: [String]
    public var exclude: [String]

    public init(include: [String] = [], exclude: [String] = []) {
        self.include = include
        self.exclude = exclude
    }

    func allows(server: String, names: [String]) -> Bool {
        let subjects = [server] + names
        func matches(_ pattern: String) -> Bool { subjects.contains { fnmatch(pattern, $0, 0) == 0 } }
        if !include.isEmpty, !include.contains(where: matches) { return false }
        return !exclude.contains(where: matches)
    }
}

/// Everything the gateway shows, rebuilt from the visible backends whenever one changes, with
/// each list's JSON ready to send.
struct Catalog: Sendable {
    var tools: [String: CatalogItem] = [:]
    var prompts: [String: CatalogItem] = [:]
    /// Original name → the items carrying it (bare-name calls).
    var toolsByName: [String: [CatalogItem]] = [:]
    var promptsByName: [String: [CatalogItem]] = [:]
    /// Resource URI → backends listing it.
    var resources: [String: [String]] = [:]
    /// Template text before its first `{`, with the backend, longest first.
    var templatePrefixes: [(prefix: String, backend: String)] = []
    var backends: Set<String> = []

    var toolsResult: [UInt8] = Array(#"{"tools":[]}"#.utf8)
    var promptsResult: [UInt8] = Array(#"{"prompts":[]}"#.utf8)
    var resourcesResult: [UInt8] = Array(#"{"resources":[]}"#.utf8)
    var templatesResult: [UInt8] = Array(#"{"resourceTemplates":[]}"#.utf8)

    /// The prefix of a backend's exposed names: its id, or `<node>__<id>` for another machine's
    /// server (backend key `node/id`).
    static func label(of key: String) -> String {
        key.contains("/") ? key.replacingOccurrences(of: "/", with: "__") : key
    }

    /// The catalog of `backends` (sorted by id, so every collision is settled the same way on
    /// every run), plus the gateway's own tools.
    static func build(_ backends: [(id: String, lists: BackendLists)], filter: GatewayFilter, ownTools: [JSONObject]) -> Catalog {
        var c = Catalog()
        var toolItems: [JSONValue] = []
        var promptItems: [JSONValue] = []
        var resourceItems: [JSONValue] = []
        var templateItems: [JSONValue] = []
        for own in ownTools {
            if let name = own["name"]?.stringValue, filter.allows(server: "", names: [name]) { toolItems.append(.object(own)) }
        }
        for (id, lists) in backends.sorted(by: { $0.id < $1.id }) {
            c.backends.insert(id)
            func add(_ objects: [JSONObject], into table: inout [String: CatalogItem], byName: inout [String: [CatalogItem]], out: inout [JSONValue]) {
                for object in objects {
                    guard let name = object["name"]?.stringValue, !name.isEmpty else { continue }
                    let label = Catalog.label(of: id)
                    var exposed = GatewayNames.exposed(id: label, name: name)
                    // Two different (id, name) pairs can meet ("a__b"+"c", "a"+"b__c"): the later one is hashed.
                    if table[exposed] != nil { exposed = GatewayNames.shortened(label + "__" + name + "\u{0}") }
                    guard table[exposed] == nil, filter.allows(server: id, names: [exposed, name]) else { continue }
                    let item = CatalogItem(backend: id, name: name, exposed: exposed)
                    table[exposed] = item
                    byName[name, default: []].append(item)
                    var renamed = object
                    renamed["name"] = .string(exposed)
                    if renamed["title"] == nil { renamed["title"] = .string(name) }
                    out.append(.object(renamed))
                }
            }
            add(lists.tools, into: &c.tools, byName: &c.toolsByName, out: &toolItems)
            add(lists.prompts, into: &c.prompts, byName: &c.promptsByName, out: &promptItems)
            for r in lists.resources {
                guard let uri = r["uri"]?.stringValue, filter.allows(server: id, names: [uri]) else { continue }
                c.resources[uri, default: []].append(id)
                resourceItems.append(.object(r))
            }
            for t in lists.templates {
                guard let template = t["uriTemplate"]?.stringValue, filter.allows(server: id, names: [template]) else { continue }
                let prefix = template.split(separator: "{", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? template
                c.templatePrefixes.append((prefix, id))
                templateItems.append(.object(t))
            }
        }
        c.templatePrefixes.sort { $0.prefix.utf8.count > $1.prefix.utf8.count }
        c.toolsResult = Array(JSONValue.object(JSONObject([("tools", .array(toolItems))])).jsonText.utf8)
        c.promptsResult = Array(JSONValue.object(JSONObject([("prompts", .array(promptItems))])).jsonText.utf8)
        c.resourcesResult = Array(JSONValue.object(JSONObject([("resources", .array(resourceItems))])).jsonText.utf8)
        c.templatesResult = Array(JSONValue.object(JSONObject([("resourceTemplates", .array(templateItems))])).jsonText.utf8)
        return c
    }
}
