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
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE)
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
                    if !relevant { relevant = namesFile(buffer, count: n) }
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
    /// Whether the inotify events in `buffer[0..<count]` include one naming the registry file
    /// (or an overflow, after which anything may have happened).
    fileprivate func namesFile(_ buffer: [UInt8], count: Int) -> Bool {
        let header = MemoryLayout<inotify_event>.size
        var offset = 0
        let target = Array(fileName.utf8)
        while offset + header <= count {
            let (mask, length) = buffer.withUnsafeBytes { raw -> (UInt32, Int) in
                let ev = raw.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                return (ev.mask, Int(ev.len))
            }
            if mask & UInt32(IN_Q_OVERFLOW) != 0 { return true }
            if length > 0, offset + header + length <= count,
               buffer[(offset + header)..<(offset + header + length)].prefix(while: { $0 != 0 }).elementsEqual(target) {
                return true
            }
            offset += header + length
        }
        return false
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
