#if canImport(Glibc)
import Glibc
#endif

/// Reading the registry file: checked opens, snapshots, the torn-read retry.
extension RegistryStore {
    /// The stamp of the file now, or nil when it does not exist. One `fstatat`.
    func currentStamp() throws(RegistryError) -> FileStamp? {
        guard dirFD >= 0 else { return nil }
        guard let st = Sys.statAt(dirFD, fileName, path: filePath) else {
            if errno == ENOENT { return nil }
            throw Sys.ioError(.stat, filePath)
        }
        return FileStamp(st)
    }

    /// Opens the registry file for reading, checked. A writer may rename a new file over it
    /// between our open and our fstat: the inode we hold then has no links left — not a hard-link
    /// problem, just an old version — so open again. Returns nil when there is no file.
    func openForReading() throws(RegistryError) -> (Int32, stat)? {
        guard dirFD >= 0 else { return nil }
        for _ in 0..<64 {
            let fd = Sys.openAt(dirFD, fileName, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, path: filePath)
            guard fd >= 0 else {
                if errno == ENOENT { return nil }
                if errno == ELOOP { throw PathSafety.symlinkError(filePath) }
                throw Sys.ioError(.open, filePath)
            }
            let st: stat
            do throws(RegistryError) {
                st = try Sys.fstatOrThrow(fd, filePath)
                if st.st_nlink == 0 {
                    Sys.closeFD(fd)
                    continue
                }
                try PathSafety.checkFile(st, path: filePath)
            } catch {
                Sys.closeFD(fd)
                throw error
            }
            return (fd, st)
        }
        throw RegistryError(.io, "\(filePath) was replaced 64 times while being opened; too busy to read")
    }

    /// The file's bytes and stamp now (nil when there is no file), and the wall-clock time taken
    /// just before they were read.
    func readBytes() throws(RegistryError) -> (bytes: [UInt8], stamp: FileStamp, readAt: Int64)? {
        guard let (fd, st) = try openForReading() else { return nil }
        defer { Sys.closeFD(fd) }
        let readAt = Sys.realtimeNanos()
        guard Int(st.st_size) <= limits.maxFileBytes else {
            throw RegistryError(.limit, "\(filePath) is \(st.st_size) bytes, over the limit of \(limits.maxFileBytes); run `peer-registry repair`")
        }
        let bytes = try Sys.readAll(fd, path: filePath, sizeHint: Int(st.st_size), limit: limits.maxFileBytes)
        return (bytes, FileStamp(st), readAt)
    }

    /// How long a read keeps retrying a file that does not parse while it may still be being
    /// rewritten in place (an older tool's plain `writeFile`: truncate, then write).
    static let tornReadRetryMicros: Int64 = 1_000_000

    /// The file as it is now, as a snapshot; `cached` is returned unchanged when the file is
    /// provably the one it was read from: same stamp and either outside the window in which a
    /// rewrite could keep the stamp, or the same bytes (read again to check). Unchanged entries
    /// of `cached` are reused, not parsed.
    ///
    /// A file that does not parse is read again for up to `tornReadRetryMicros` while it keeps
    /// changing or was modified in the last seconds (a torn read of a file still being
    /// rewritten); one that stays unparseable is `.corrupt`.
    func load(cached: Snapshot) throws(RegistryError) -> Snapshot {
        let stamp = try currentStamp()
        guard let stamp else { return cached.stamp == nil ? cached : .empty }
        if stamp == cached.stamp, !cached.needsContentCheck { return cached }
        let deadline = Sys.monotonicMicros() + RegistryStore.tornReadRetryMicros
        var lastBytes: [UInt8]? = nil
        var unchangedSince = Sys.monotonicMicros()
        while true {
            guard let read = try readBytes() else { return .empty }
            if cached.stamp != nil, Self.sameBytes(read.bytes, cached.bytes) {
                if read.stamp == cached.stamp {
                    cached.confirm(at: read.readAt)
                    return cached
                }
                let same = Snapshot(document: cached.document, stamp: read.stamp, bytes: read.bytes, confirmedAt: read.readAt)
                same.inherit(from: cached, sameEntries: true)
                return same
            }
            do throws(RegistryError) {
                let document = try RegistryDocument.decode(read.bytes, path: filePath, limits: limits, previous: cached.document)
                let fresh = Snapshot(document: document, stamp: read.stamp, bytes: read.bytes, confirmedAt: read.readAt)
                fresh.inherit(from: cached, sameEntries: false)
                return fresh
            } catch {
                guard error.code == .corrupt else { throw error }
                // Not modified in the last 2 s: nobody is writing it; corrupt. Otherwise wait
                // while it keeps changing, and give up once it stayed the same for 200 ms (a
                // writer descheduled between its two writes on a loaded machine: 50 ms was not
                // enough under a parallel test run on two cores).
                let now = Sys.monotonicMicros()
                if read.bytes != lastBytes { unchangedSince = now }
                let idle = read.readAt - read.stamp.mtimeNanos > 2_000_000_000
                if idle || now - unchangedSince >= 200_000 || now >= deadline { throw error }
                lastBytes = read.bytes
                Sys.sleepMicros(2000)
            }
        }
    }

    /// `a == b` with one memcmp (Array's `==` compares element by element).
    static func sameBytes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBufferPointer { x in
            b.withUnsafeBufferPointer { y in x.count == 0 || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0 }
        }
    }

    /// The file's bytes for `repair` (nil when there is none), at most the size limit.
    func rawBytes() throws(RegistryError) -> [UInt8]? {
        guard let (fd, st) = try openForReading() else { return nil }
        defer { Sys.closeFD(fd) }
        let size = min(Int(st.st_size), limits.maxFileBytes)
        return Sys.pread(fd, count: size, offset: 0, path: filePath)
    }
}
