#if canImport(Glibc)
import Glibc
#endif

/// What the registry refuses to trust (docs/FORMAT.md, "Safety"), checked with `fstat` on
/// descriptors it has opened, never by path: another user's files, group/other-writable ones,
/// symbolic links, extra hard links.
enum PathSafety {
    static func symlinkError(_ path: String) -> RegistryError {
        RegistryError(.permission, "\(path) is a symbolic link; the registry refuses to follow it. Remove it (rm \(path)) and try again")
    }

    /// Creates `dir` and any missing parents with mode 0700, and makes each creation durable
    /// (the parent directory is fsynced), so the first registration's file cannot vanish with
    /// its directory on a power cut.
    static func makeDirectories(_ dir: String) throws(RegistryError) {
        if Sys.statPath(dir) != nil { return }
        guard errno == ENOENT else { throw Sys.ioError(.stat, dir) }
        let parent: String
        if let slash = dir.lastIndex(of: "/") {
            parent = slash == dir.startIndex ? "/" : String(dir[..<slash])
            if slash != dir.startIndex { try makeDirectories(parent) }
        } else {
            parent = "."
        }
        if !Sys.makeDirectory(dir, mode: 0o700) {
            guard errno == EEXIST else { throw Sys.ioError(.mkdir, dir) }
            return
        }
        try Sys.fsyncDirectory(parent)
    }

    static func checkDirectory(_ st: stat, path: String) throws(RegistryError) {
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw RegistryError(.permission, "\(path) is not a directory") }
        guard st.st_uid == geteuid() else {
            throw RegistryError(.permission, "\(path) is owned by uid \(st.st_uid), not by you (uid \(geteuid())); use a registry directory you own (set PEER_REGISTRY_PATH)")
        }
        guard st.st_mode & 0o022 == 0 else {
            let mode = String(st.st_mode & 0o777, radix: 8)
            throw RegistryError(.permission, "\(path) is writable by group or others (mode \(mode)); fix it with: chmod 700 \(path)")
        }
    }

    static func checkFile(_ st: stat, path: String) throws(RegistryError) {
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw RegistryError(.permission, "\(path) is not a regular file") }
        guard st.st_uid == geteuid() else {
            throw RegistryError(.permission, "\(path) is owned by uid \(st.st_uid), not by you (uid \(geteuid())); remove it or use another registry")
        }
        guard st.st_nlink == 1 else {
            throw RegistryError(.permission, "\(path) has \(st.st_nlink) hard links; the registry refuses a file linked elsewhere. Remove the other links")
        }
        guard st.st_mode & 0o022 == 0 else {
            let mode = String(st.st_mode & 0o777, radix: 8)
            throw RegistryError(.permission, "\(path) is writable by group or others (mode \(mode)); fix it with: chmod 600 \(path)")
        }
    }
}
