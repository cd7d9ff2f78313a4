import RegistryKit
#if canImport(Glibc)
import Glibc
#endif

/// A running server's runtime file: `<registry directory>/runtime/<name>.json`, mode 0600 in a
/// 0700 directory, holding `{"url":...,"port":N,"pid":N,"token":...}` so that programs of the
/// same user can find a server and its token (as Jupyter's `jpserver-<pid>.json`), and no other
/// user can. Removed when the server stops (`remove()`); a stale one (its pid gone) is
/// overwritten by the next server of that name.
public struct RuntimeFile: Sendable {
    /// The file's path.
    public let path: String

    /// The directory runtime files go in, beside `servers.json`.
    public static func directory(forRegistryAt registryPath: String) -> String {
        let dir = registryPath.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return (dir.isEmpty ? "." : dir) + "/runtime"
    }

    /// Writes `<runtime dir>/<name>.json` with `fields` (plus `pid`): a temp file created 0600
    /// with `O_EXCL|O_NOFOLLOW`, then renamed over the old one.
    /// - Parameter name: `serve-3001`, `mcp-4000`, ...: `[A-Za-z0-9._-]`, no leading dot.
    /// - Throws: `PolicyError` when the directory cannot be made private or the file written.
    public static func write(registryPath: String, name: String, fields: [(String, JSONValue)]) throws(PolicyError) -> RuntimeFile {
        guard !name.isEmpty, !name.hasPrefix("."), name.utf8.allSatisfy(AccessToken.isTokenByte) else {
            throw PolicyError("runtime file name \"\(name.prefix(80))\": use A-Z a-z 0-9 . _ -")
        }
        var object = JSONObject(fields)
        object["pid"] = .int(Int64(getpid()))
        let path = try writePrivate(registryPath: registryPath, fileName: name + ".json", contents: JSONValue.object(object).jsonText + "\n", replace: true)
        return RuntimeFile(path: path)
    }

    /// The runtime directory, made (0700) if needed and checked to be this user's alone.
    static func privateDirectory(registryPath: String) throws(PolicyError) -> String {
        let dir = directory(forRegistryAt: registryPath)
        if mkdir(dir, 0o700) != 0, errno != EEXIST {
            throw PolicyError("cannot create \(dir): \(String(cString: strerror(errno)))")
        }
        var st = stat()
        guard lstat(dir, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == geteuid() else {
            throw PolicyError("\(dir) is not a directory of this user: remove it")
        }
        if st.st_mode & 0o077 != 0, chmod(dir, 0o700) != 0 {
            throw PolicyError("cannot make \(dir) private (chmod 700): \(String(cString: strerror(errno)))")
        }
        return dir
    }

    /// Writes `contents` to `<runtime dir>/<fileName>` through a 0600 temp file; with `replace`
    /// false, an existing file is left as it is (link, not rename). Returns the path.
    @discardableResult
    static func writePrivate(registryPath: String, fileName: String, contents: String, replace: Bool) throws(PolicyError) -> String {
        let dir = try privateDirectory(registryPath: registryPath)
        let path = dir + "/" + fileName
        let temp = dir + "/." + fileName + ".\(getpid()).tmp"
        let bytes = Array(contents.utf8)
        unlink(temp)
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw PolicyError("cannot create \(temp): \(String(cString: strerror(errno)))") }
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else {
                let message = String(cString: strerror(errno))
                close(fd)
                unlink(temp)
                throw PolicyError("cannot write \(temp): \(message)")
            }
            written += n
        }
        close(fd)
        let moved = replace ? rename(temp, path) : link(temp, path)
        let failure = errno
        if !replace || moved != 0 { unlink(temp) }
        if moved != 0, !(failure == EEXIST && !replace) {
            throw PolicyError("cannot create \(path): \(String(cString: strerror(failure)))")
        }
        return path
    }

    /// The contents of `path` when it exists; checks (on the open descriptor) that it is a
    /// regular file of this user that no one else may read or write.
    /// - Throws: `PolicyError` when it exists but is not private, or cannot be read.
    static func readPrivate(_ path: String) throws(PolicyError) -> String? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw PolicyError("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_uid == geteuid(), st.st_mode & 0o077 == 0 else {
            throw PolicyError("\(path) must be a file of this user with mode 0600: delete it and a new one is made")
        }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n >= 0 else { throw PolicyError("cannot read \(path): \(String(cString: strerror(errno)))") }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }

    /// Deletes the file (when it is still this process's).
    public func remove() {
        unlink(path)
    }
}
