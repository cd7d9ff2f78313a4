import MCP
import RegistryKit

/// The registry's MCP resources: `registry://servers` (the live list, as `instances/list`
/// returns it) and `registry://servers/<id>` (one live entry), both `application/json`.
///
/// Errors are JSON-RPC errors, as the MCP specification prescribes for resources: an unknown URI
/// or id is -32002 (resource not found), an unreadable registry -32603 with the registry's
/// message.
public struct RegistryResources: Sendable {
    /// The live list.
    public static let serversURI = "registry://servers"
    /// What precedes an id in the URI of one entry.
    public static let serverURIPrefix = "registry://servers/"
    /// The URI template of one entry.
    public static let serverTemplate = "registry://servers/{id}"
    /// The MIME type of every resource.
    public static let mimeType = "application/json"
    /// JSON-RPC code for "Resource not found" (MCP specification, resources).
    public static let resourceNotFound = -32002

    /// The registry read.
    public let registry: Registry

    /// Resources of `registry`.
    public init(registry: Registry) {
        self.registry = registry
    }

    /// The id named by `registry://servers/<id>`, or nil for any other URI.
    public static func serverID(in uri: String) -> String? {
        guard uri.hasPrefix(serverURIPrefix) else { return nil }
        let id = String(uri.dropFirst(serverURIPrefix.count))
        return ServerEntry.isValidID(id) ? id : nil
    }

    /// `registry://servers/<id>`.
    public static func uri(of id: String) -> String { serverURIPrefix + id }

    /// Whether `uri` names a resource this server has or may have (an entry that is not
    /// registered yet can be subscribed to).
    public static func isKnownForm(_ uri: String) -> Bool { uri == serversURI || serverID(in: uri) != nil }

    /// `resources/list`: the list resource, then one resource per live server. When the registry
    /// cannot be read, only the list resource (reading it reports why).
    public func list() -> [Resource] {
        var out = [Resource(
            name: "servers",
            uri: Self.serversURI,
            title: "Registered MCP servers",
            description: "The live MCP servers on this machine, as instances/list returns them; updated when the registry changes.",
            mimeType: Self.mimeType
        )]
        if let listing = try? registry.list() {
            for e in listing.servers {
                out.append(Resource(
                    name: e.id,
                    uri: Self.uri(of: e.id),
                    title: e.name ?? e.id,
                    description: "Registry entry of \(e.id)\(e.url.map { " (\($0))" } ?? "")",
                    mimeType: Self.mimeType
                ))
            }
        }
        return out
    }

    /// `resources/templates/list`: `registry://servers/{id}`.
    public static let templates = [Resource.Template(
        uriTemplate: serverTemplate,
        name: "server",
        title: "One registered MCP server",
        description: "The registry entry of the live server with this id.",
        mimeType: mimeType
    )]

    /// `resources/read`.
    /// - Throws: -32002 for a URI this server does not have or an id with no live server;
    ///   -32603 when the registry cannot be read (e.g. a corrupt file), with its message.
    public func read(_ uri: String) throws(MCPError) -> [Resource.Content] {
        let id = Self.serverID(in: uri)
        guard uri == Self.serversURI || id != nil else {
            throw MCPError.serverError(code: Self.resourceNotFound, message: "Resource not found: \"\(uri.prefix(200))\" (this server has \(Self.serversURI) and \(Self.serverTemplate))")
        }
        let json: JSONObject
        do throws(RegistryError) {
            if let id { json = try registry.get(id).view } else { json = try registry.list().view }
        } catch {
            if error.code == .notFound {
                throw MCPError.serverError(code: Self.resourceNotFound, message: "Resource not found: \(uri.prefix(200)): \(error.message)")
            }
            throw MCPError.internalError("\(error.code.name): \(error.message)")
        }
        return [.text(JSONValue.object(json).jsonText, uri: uri, mimeType: Self.mimeType)]
    }
}
