/// The limits enforced on everything read from or written to a registry, so that no input —
/// a hostile file, an oversized entry — can make the library use unbounded memory or time.
/// Documented in docs/FORMAT.md; exceeding one is `RegistryError.Code.limit`.
public struct RegistryLimits: Sendable, Equatable {
    /// Largest registry file, and largest JSON argument, in bytes.
    public var maxFileBytes: Int = 8 << 20
    /// Most entries in one registry.
    public var maxEntries: Int = 4096
    /// Largest single entry, encoded, in bytes.
    public var maxEntryBytes: Int = 64 << 10
    /// Longest string field (name, url, message, timestamps, metadata strings), in bytes.
    public var maxStringBytes: Int = 4096
    /// Most names in each capability list (tools, resources, prompts).
    public var maxCapabilities: Int = 1024
    /// Longest capability name or resource URI, in bytes.
    public var maxCapabilityBytes: Int = 512
    /// Deepest nesting of arrays and objects anywhere in the file (metadata included).
    public var maxDepth: Int = 16

    public init() {}

    /// The limits a registry uses unless told otherwise.
    public static let `default` = RegistryLimits()
}
