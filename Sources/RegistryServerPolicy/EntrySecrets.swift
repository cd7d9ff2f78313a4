import RegistryKit

/// Fields of an entry that hold secrets (`headers`: what a client must send upstream, such as
/// `Authorization: Bearer ...`). No server of this project serves them and the CLI prints them
/// only when asked (`--show-secrets`): the registry file is private to its user, its readers
/// over HTTP or MCP are not necessarily.
public enum EntrySecrets {
    /// The entry fields that are never served.
    public static let fields: Set<String> = ["headers"]

    /// Whether `entry` holds a secret field.
    public static func holdsSecrets(_ entry: ServerEntry) -> Bool {
        entry.headers != nil || entry.extra.members.contains { fields.contains($0.key) }
    }

    /// `entry` without its secret fields (the same value, caches included, when it has none).
    public static func redacted(_ entry: ServerEntry) -> ServerEntry {
        guard holdsSecrets(entry) else { return entry }
        var copy = entry
        copy.headers = nil
        for field in fields { copy.extra[field] = nil }
        return copy
    }

    /// `entries` without their secret fields.
    public static func redacted(_ entries: [ServerEntry]) -> [ServerEntry] {
        entries.contains(where: holdsSecrets) ? entries.map(redacted) : entries
    }

    /// `object` (an entry's JSON) without its secret fields.
    public static func redacted(_ object: JSONObject) -> JSONObject {
        var copy = object
        for field in fields { copy[field] = nil }
        return copy
    }

    /// The listing with every entry redacted.
    public static func redacted(_ listing: RegistryListing) -> RegistryListing {
        RegistryListing(generation: listing.generation, servers: redacted(listing.servers))
    }

    /// The event with every entry redacted.
    public static func redacted(_ event: RegistryEvent) -> RegistryEvent {
        RegistryEvent(generation: event.generation, added: redacted(event.added), removed: redacted(event.removed), changed: redacted(event.changed))
    }
}
