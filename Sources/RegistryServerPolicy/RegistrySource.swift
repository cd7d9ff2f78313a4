import RegistryKit
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The registry a long-running server reads, reopened when its directory is replaced.
///
/// A `Registry` handle and its watch follow the directory they were opened on: when it is moved
/// away and a new one is made at the same path, they keep reading the old one. A server calls
/// `directoryWasReplaced()` now and then (a `stat`) and `reopen()` when it says so. Several
/// readers sharing one source (serve's local and cluster event hubs) each ask
/// `isStale(_:)` about the handle they follow and call `reopen(replacing:)`: the first reopens,
/// and the others then see their handle is stale too (not "not replaced" against the new one).
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

    /// Whether `registry` (a handle this source gave out) is no longer the one to read: its
    /// directory was replaced, or another reader of this source has already reopened it.
    public func isStale(_ registry: Registry) -> Bool {
        current.withLock { $0.registry !== registry } || directoryWasReplaced()
    }

    /// Opens the registry again (after `directoryWasReplaced()`).
    /// - Throws: what opening throws (the new directory may be unsafe, say); the old handle stays.
    public func reopen() throws(RegistryError) {
        try reopen(replacing: registry)
    }

    /// Opens the registry again unless another reader already did since `registry` was the
    /// current handle; either way `self.registry` is then the handle to follow.
    /// - Throws: what opening throws; the old handle stays.
    public func reopen(replacing registry: Registry) throws(RegistryError) {
        if current.withLock({ $0.registry !== registry }) { return }
        let fresh = try open()
        let identity = Self.identity(of: fresh.path)
        let lost = current.withLock { c -> Bool in
            guard c.registry === registry else { return true }
            c = Current(registry: fresh, identity: identity)
            return false
        }
        if lost { fresh.close() }  // another reader reopened it meanwhile: keep theirs
    }

    static func identity(of registryPath: String) -> DirectoryIdentity? {
        let dir = RuntimeFile.directory(forRegistryAt: registryPath).split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        var st = stat()
        guard stat(dir.isEmpty ? "." : dir, &st) == 0 else { return nil }
        return DirectoryIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }
}
