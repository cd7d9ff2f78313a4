#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Keeps the entries a handle holds leases for in the file (docs/FORMAT.md, "Anti-entropy"): a
/// thread of the handle's own wakes on every change to the registry's directory (inotify; once a
/// second regardless, every 50 ms where inotify is unavailable) and, when a writer that bypasses
/// the library removed or changed one of them, writes it back — through the library's normal
/// write, so a corrupt file is still never overwritten. It holds the handle weakly: dropping or
/// closing the handle ends it.
final class AntiEntropy: Sendable {
    private final class Target: @unchecked Sendable {
        weak var registry: Registry?
        init(_ r: Registry) { registry = r }
    }

    private let target: Target
    private let directory: String
    private let fileName: String
    private let stopped = Atomic<Bool>(false)
    private let wake: (read: Int32, write: Int32)?

    init(registry: Registry) {
        target = Target(registry)
        directory = registry.store.directory
        fileName = registry.store.fileName
        wake = try? Sys.pipe(path: registry.path)
    }

    deinit {
        if let wake {
            Sys.closeTracked(wake.read)
            Sys.closeTracked(wake.write)
        }
    }

    /// Starts the thread. Without a thread (none could be created) entries are still restored
    /// by this handle's own next write.
    func start() {
        try? Sys.startThread("anti-entropy \(directory)") { [self] in run() }
    }

    /// Ends the thread soon (it exits on its own; this does not wait).
    func stop() {
        stopped.store(true, ordering: .releasing)
        if let wake {
            var byte: UInt8 = 1
            _ = write(wake.write, &byte, 1)
        }
    }

    private func run() {
        let ifd = Sys.inotifyInit(path: directory)
        // Not IN_CREATE: every library write creates the temp file, and a bypassing writer that
        // creates the registry file anew is seen anyway (its delete or rename came first, or its
        // close after writing).
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE)
        let watching = ifd >= 0 && Sys.inotifyWatch(ifd, directory, mask)
        let ep = Sys.epollCreate(path: directory)
        defer {
            Sys.closeTracked(ifd)
            Sys.closeTracked(ep)
        }
        if ep >= 0 {
            if watching { _ = Sys.epollAdd(ep, ifd, path: directory) }
            if let wake { _ = Sys.epollAdd(ep, wake.read, path: directory) }
        }
        var buffer = [UInt8](repeating: 0, count: 4096)
        var libraryCookies = LibraryRenames()
        while !stopped.load(ordering: .acquiring) {
            let interval: Int32 = watching ? 1000 : 50
            var ready: Int32 = 0
            if ep >= 0 {
                ready = Sys.epollWait(ep, timeoutMillis: interval, path: directory)
            } else {
                Sys.sleepMicros(Int(interval) * 1000)
            }
            // Only a change of the registry file itself (not the temp or lock file) is worth a
            // look; the periodic wake-up looks regardless.
            var relevant = ready <= 0 || !watching
            if watching {
                while true {
                    let n = Sys.readAvailable(ifd, into: &buffer, path: directory)
                    if n <= 0 { break }
                    // Every batch is scanned, relevant or not, so that each rename's cookie is
                    // known when its second half arrives in a later read.
                    if Self.namesFile(buffer, count: n, fileName: fileName, libraryRenames: &libraryCookies) { relevant = true }
                }
            }
            if stopped.load(ordering: .acquiring) { break }
            guard relevant else { continue }
            guard let registry = target.registry else { break }
            if !registry.restoreOwnedIfNeeded() { break }
        }
    }
}

extension AntiEntropy {
    /// Whether the inotify events in `buffer[0..<count]` may be a change by a writer that
    /// bypasses the library: anything done to the registry file (written in place, created,
    /// deleted, renamed from another name) or an overflow — but not a library write, which is
    /// the rename of `servers.json.tmp` over it (library writers copy every live entry).
    ///
    /// The kernel queues a rename's two halves (`IN_MOVED_FROM` of the temp file, `IN_MOVED_TO`
    /// of the registry file) one after the other, so a read can end between them: the cookies of
    /// temp-file renames are kept across reads in `libraryRenames`. (Taking the second half for
    /// a bypassing writer's made every other process re-read the file after about one write in
    /// two under contention.)
    static func namesFile(_ buffer: [UInt8], count: Int, fileName: String, libraryRenames libraryCookies: inout LibraryRenames) -> Bool {
        let header = MemoryLayout<inotify_event>.size
        var offset = 0
        let target = Array(fileName.utf8), temp = Array((fileName + ".tmp").utf8)
        var relevant = false
        while offset + header <= count {
            let (mask, cookie, length) = buffer.withUnsafeBytes { raw -> (UInt32, UInt32, Int) in
                let ev = raw.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                return (ev.mask, ev.cookie, Int(ev.len))
            }
            if mask & UInt32(IN_Q_OVERFLOW) != 0 { relevant = true }
            if length > 0, offset + header + length <= count {
                let name = buffer[(offset + header)..<(offset + header + length)].prefix(while: { $0 != 0 })
                if name.elementsEqual(temp), mask & UInt32(IN_MOVED_FROM) != 0 { libraryCookies.insert(cookie) }
                if name.elementsEqual(target) {
                    let libraryRename = mask & UInt32(IN_MOVED_TO) != 0 && libraryCookies.remove(cookie)
                    if !libraryRename { relevant = true }
                }
            }
            offset += header + length
        }
        return relevant
    }
}

/// The cookies of temp-file renames whose `IN_MOVED_TO` has not been read yet: a handful at
/// most (a rename's halves are queued back to back); the oldest go past `limit`.
struct LibraryRenames {
    private var cookies: [UInt32] = []
    static let limit = 64

    mutating func insert(_ cookie: UInt32) {
        if cookies.count == Self.limit { cookies.removeFirst() }
        cookies.append(cookie)
    }

    /// Whether `cookie` was inserted (and not removed since); removes it.
    mutating func remove(_ cookie: UInt32) -> Bool {
        guard let i = cookies.firstIndex(of: cookie) else { return false }
        cookies.remove(at: i)
        return true
    }
}

extension Registry {
    /// Writes back this handle's leased entries if the file lost or changed them. Returns false
    /// once the handle is closed.
    func restoreOwnedIfNeeded() -> Bool {
        do throws(RegistryError) {
            if try ownedEntriesIntact() { return true }
            try transaction { _ throws(RegistryError) in }
            return true
        } catch {
            return error.code != .closed
        }
    }
}
