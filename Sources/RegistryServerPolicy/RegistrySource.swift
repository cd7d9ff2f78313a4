import RegistryKit
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The registry a long-running server reads, reopened when its directory is replaced.
///
/// A `Registry` handle and its watch follow the directory they were opened on: when it is moved
/// away and a new one is made at the same path, they keep reading the old one. A server calls
/// `directoryWasReplaced()` now and then (a `stat`) and `reopen()` when it says so.
public final class RegistrySource: Sendable {
    private struct Current {
        var registry: Registry
        var identity: DirectoryIdentity?
    }

    struct DirectoryIdentity: Equatable {
        var device: UInt64
        var inode: UInt64
    }

    private let current: Mutex<Current>
    private let open: @Sendable () throws(RegistryError) -> Registry

    /// - Parameters:
    ///   - registry: the registry, open.
    ///   - reopen: opens it again at the same path (with the same options) after its directory
    ///     was replaced.
    public init(registry: Registry, reopen: @escaping @Sendable () throws(RegistryError) -> Registry) {
        self.open = reopen
        self.current = Mutex(Current(registry: registry, identity: Self.identity(of: registry.path)))
    }

    /// A source that reopens `registry`'s path with default options.
    public convenience init(registry: Registry) {
        let path = registry.path
        self.init(registry: registry, reopen: { () throws(RegistryError) -> Registry in try Registry(path: path) })
    }

    /// The registry to read now.
    public var registry: Registry { current.withLock { $0.registry } }

    /// The registry file's path.
    public var path: String { registry.path }

    /// Whether the directory at the registry's path is no longer the one it was opened on.
    public func directoryWasReplaced() -> Bool {
        let (path, known) = current.withLock { ($0.registry.path, $0.identity) }
        let now = Self.identity(of: path)
        return now != nil && now != known
    }

    /// Opens the registry again (after `directoryWasReplaced()`).
    /// - Throws: what opening throws (the new directory may be unsafe, say); the old handle stays.
    public func reopen() throws(RegistryError) {
        let registry = try open()
        let identity = Self.identity(of: registry.path)
        current.withLock { $0 = Current(registry: registry, identity: identity) }
    }

    static func identity(of registryPath: String) -> DirectoryIdentity? {
        let dir = RuntimeFile.directory(forRegistryAt: registryPath).split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        var st = stat()
        guard stat(dir.isEmpty ? "." : dir, &st) == 0 else { return nil }
        return DirectoryIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }
}
