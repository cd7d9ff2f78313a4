#if canImport(Glibc)
import Glibc
#endif

/// The durable replace of the registry file and the move-aside of a corrupt one.
extension RegistryStore {
    /// Replaces the file atomically and durably: fixed temp name (writers hold the lock, so any
    /// temp file found is a crashed writer's and is removed), O_EXCL|O_NOFOLLOW, 0600, write,
    /// fsync, rename, fsync of the directory. Returns the new file's stamp. On failure the old
    /// file is untouched and no temp file is left behind.
    func replace(with bytes: [UInt8]) throws(RegistryError) -> FileStamp {
        let tempPath = directory + "/" + tempName
        if !Sys.unlinkAt(dirFD, tempName, path: tempPath) && errno != ENOENT { throw Sys.ioError(.unlink, tempPath) }
        let fd = Sys.openAt(dirFD, tempName, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600, path: tempPath)
        guard fd >= 0 else { throw Sys.ioError(.open, tempPath) }
        CrashPoint.afterTempCreate.reached()
        do throws(RegistryError) {
            do throws(RegistryError) {
                // Closed before the rename, not after: closing a written descriptor whose file
                // is by then named servers.json would report IN_CLOSE_WRITE on servers.json to
                // every process's anti-entropy thread, which cannot tell it from a bypassing
                // writer's and would re-read the whole file after every library write.
                try Sys.writeAll(fd, bytes, path: tempPath)
                CrashPoint.afterWrite.reached()
                try Sys.fsyncOrThrow(fd, tempPath)
                CrashPoint.afterFsync.reached()
            } catch {
                Sys.closeFD(fd)
                throw error
            }
            Sys.closeFD(fd)
            try Sys.renameAt(dirFD, tempName, fileName, path: tempPath)
        } catch {
            Sys.unlinkAt(dirFD, tempName, path: tempPath)
            throw error
        }
        CrashPoint.afterRename.reached()
        // The new file is in place; if this fsync fails it is visible but maybe not durable —
        // the caller reports the write as failed, which it may or may not survive a power cut.
        try Sys.fsyncOrThrow(dirFD, directory)
        CrashPoint.afterDirFsync.reached()
        guard let stamp = try currentStamp() else { throw RegistryError(.io, "\(filePath) vanished right after it was written") }
        return stamp
    }

    /// Moves a corrupt file aside as `servers.json.corrupt-<timestamp>`; returns the new path.
    func moveAside() throws(RegistryError) -> String {
        let aside = fileName + ".corrupt-" + Timestamp.now().replacingColons
        try Sys.renameAt(dirFD, fileName, aside, path: filePath)
        try Sys.fsyncOrThrow(dirFD, directory)
        return directory + "/" + aside
    }
}
