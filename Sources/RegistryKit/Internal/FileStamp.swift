#if canImport(Glibc)
import Glibc
#endif

/// Identifies one version of the registry file as `stat` sees it. Equal stamps do not prove
/// equal contents (ext4 reuses the two inodes of a temp+rename cycle; mtime is per tick or per
/// second on many filesystems): see `Snapshot.needsContentCheck`.
struct FileStamp: Equatable, Sendable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var mtimeNanos: Int64

    init(_ st: stat) {
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
        size = Int64(st.st_size)
        mtimeNanos = Int64(st.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(st.st_mtim.tv_nsec)
    }

    /// How long after its mtime a file could still be rewritten with the same stamp: a file
    /// system whose mtimes fall on whole milliseconds (or seconds) may keep one mtime for up to
    /// 2 s (FAT) — 3 s covers that and clock steps; a nanosecond mtime still repeats within a
    /// kernel tick (coarse clock, up to 10 ms) — 50 ms covers that.
    var sameStampWindowNanos: Int64 {
        mtimeNanos % 1_000_000 == 0 ? 3_000_000_000 : 50_000_000
    }
}
