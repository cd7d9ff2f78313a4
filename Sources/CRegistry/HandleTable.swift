import Synchronization
import RegistryKit
#if canImport(Glibc)
import Glibc
#endif

/// Live handles by id. The opaque pointers handed to C are never dereferenced: they encode an
/// id (`base + id * 16`, well above the first page), so a closed or forged handle is simply not
/// found — `PEERREG_ECLOSED` instead of a use-after-free, and double close is a no-op. Ids are
/// never reused.
final class HandleTable<Object: AnyObject & Sendable>: Sendable {
    private struct Table {
        var next: UInt = 1
        var objects: [UInt: Object] = [:]
    }
    /// Not Synchronization's Mutex, which traps in a forked child (see ForkSafeMutex).
    private let table = ForkSafeMutex(Table())
    private let base: UInt

    init(base: UInt) { self.base = base }

    func insert(_ object: Object) -> OpaquePointer? {
        let id = table.withLock { t -> UInt in
            let id = t.next
            t.next += 1
            t.objects[id] = object
            return id
        }
        return OpaquePointer(bitPattern: base + id * 16)
    }

    private func id(of pointer: OpaquePointer?) -> UInt? {
        guard let pointer else { return nil }
        let raw = UInt(bitPattern: pointer)
        guard raw > base, (raw - base) % 16 == 0 else { return nil }
        return (raw - base) / 16
    }

    func lookup(_ pointer: OpaquePointer?) -> Object? {
        guard let id = id(of: pointer) else { return nil }
        return table.withLock { $0.objects[id] }
    }

    func remove(_ pointer: OpaquePointer?) -> Object? {
        guard let id = id(of: pointer) else { return nil }
        return table.withLock { $0.objects.removeValue(forKey: id) }
    }
}

enum Handles {
    static let registries = HandleTable<Registry>(base: 0x7e57_0000_0000)
    static let watches = HandleTable<RegistryWatch>(base: 0x7e58_0000_0000)
}
