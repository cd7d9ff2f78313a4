// The C ABI: one thin export per function of include/peer_registry.h, checked against the
// header by `@c @implementation`. Each export checks its arguments, calls RegistryKit, and maps
// every error to a code; nothing here may trap (a trap would kill the host process).
import CPeerRegistryHeader
import RegistryKit
#if canImport(Glibc)
import Glibc
#endif

public typealias CString = UnsafePointer<CChar>
public typealias OutString = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
public typealias OutError = UnsafeMutablePointer<OpaquePointer?>

// MARK: - Helpers

/// An error object: a malloc'd block holding the code, then the NUL-terminated message.
private let messageOffset = 8

private func makeError(_ error: RegistryError) -> OpaquePointer? {
    var message = Array(error.message.utf8)
    message.removeAll { $0 == 0 }
    guard let block = malloc(messageOffset + message.count + 1) else { return nil }
    block.storeBytes(of: error.code.rawValue, as: Int32.self)
    message.withUnsafeBytes { raw in
        if let src = raw.baseAddress { memcpy(block + messageOffset, src, raw.count) }
    }
    block.storeBytes(of: 0, toByteOffset: messageOffset + message.count, as: UInt8.self)
    return OpaquePointer(block)
}

/// Runs `body`, clearing `*err` first and filling it on failure.
private func call(_ err: OutError?, _ body: () throws(RegistryError) -> Void) -> Int32 {
    err?.pointee = nil
    do throws(RegistryError) {
        try body()
        return RegistryError.Code.ok
    } catch {
        err?.pointee = makeError(error)
        return error.code.rawValue
    }
}

extension RegistryError.Code {
    static let ok: Int32 = 0
}

/// A borrowed C string as Swift: NULL, over-long or invalid UTF-8 input is an error, not a guess.
private func string(_ p: CString?, _ what: String, limit: Int = RegistryLimits.default.maxFileBytes) throws(RegistryError) -> String {
    guard let p else { throw RegistryError(.invalid, "\(what) is NULL") }
    let length = strnlen(p, limit + 1)
    guard length <= limit else { throw RegistryError(.limit, "\(what) is longer than \(limit) bytes") }
    guard let s = String(validatingCString: p) else { throw RegistryError(.invalid, "\(what) is not valid UTF-8") }
    return s
}

/// A malloc'd copy of `s` for the caller to free with peerreg_free.
/// `bytes` (UTF-8 without NUL) as a NUL-terminated malloc'd string: one copy.
private func output(_ bytes: [UInt8], into out: OutString) throws(RegistryError) {
    guard let copy = malloc(bytes.count + 1)?.assumingMemoryBound(to: CChar.self) else {
        throw RegistryError(.io, "out of memory copying a \(bytes.count)-byte result")
    }
    bytes.withUnsafeBytes { raw in
        if let base = raw.baseAddress { memcpy(copy, base, raw.count) }
    }
    copy[bytes.count] = 0
    out.pointee = copy
}

private func output(_ s: String, into out: OutString) throws(RegistryError) {
    guard let copy = strdup(s) else { throw RegistryError(.io, "out of memory copying a \(s.utf8.count)-byte result") }
    out.pointee = copy
}

private func registry(_ reg: OpaquePointer?) throws(RegistryError) -> Registry {
    guard reg != nil else { throw RegistryError(.invalid, "the registry handle is NULL") }
    guard let r = Handles.registries.lookup(reg) else { throw RegistryError(.closed, "the registry handle is closed (or was never opened)") }
    return r
}

private func requireOut<T>(_ out: UnsafeMutablePointer<T>?, _ name: String) throws(RegistryError) -> UnsafeMutablePointer<T> {
    guard let out else { throw RegistryError(.invalid, "\(name) is NULL") }
    return out
}

// MARK: - Version and errors

@c @implementation public func peerreg_version() -> UnsafePointer<CChar>? {
    UnsafeRawPointer(PeerRegistryVersion.string.utf8Start).assumingMemoryBound(to: CChar.self)
}

@c @implementation public func peerreg_version_number() -> Int32 { PeerRegistryVersion.number }

@c @implementation public func peerreg_errstr(_ code: Int32) -> UnsafePointer<CChar>? {
    let s: StaticString = code == 0 ? "PEERREG_OK: success" : RegistryError.Code(rawValue: code)?.summary ?? "PEERREG_UNKNOWN_CODE"
    return UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)
}

// MARK: - Open and close

@c @implementation public func peerreg_open(_ out: UnsafeMutablePointer<OpaquePointer?>?, _ path: CString?, _ err: OutError?) -> Int32 {
    out?.pointee = nil
    return call(err) { () throws(RegistryError) in
        let out = try requireOut(out, "out")
        let p: String? = path == nil ? nil : try string(path, "path", limit: 4096)
        let r = try Registry(path: p)
        out.pointee = Handles.registries.insert(r)
    }
}

@c @implementation public func peerreg_close(_ reg: OpaquePointer?) {
    Handles.registries.remove(reg)?.close()
}

// MARK: - Writing

@c @implementation public func peerreg_register(_ reg: OpaquePointer?, _ entryJSON: CString?, _ out: OutString?, _ err: OutError?) -> Int32 {
    out?.pointee = nil
    return call(err) { () throws(RegistryError) in
        let r = try registry(reg)
        let stored = try r.register(json: try string(entryJSON, "entry_json"))
        if let out { try output(stored.jsonText, into: out) }
    }
}

@c @implementation public func peerreg_unregister(_ reg: OpaquePointer?, _ id: CString?, _ err: OutError?) -> Int32 {
    call(err) { () throws(RegistryError) in try registry(reg).unregister(try string(id, "id", limit: 4096)) }
}

@c @implementation public func peerreg_set_health(_ reg: OpaquePointer?, _ id: CString?, _ status: Int32, _ message: CString?, _ err: OutError?) -> Int32 {
    call(err) { () throws(RegistryError) in
        let r = try registry(reg)
        guard let health = HealthStatus(rawValue: status) else {
            throw RegistryError(.invalid, "status \(status) is not one of PEERREG_UNKNOWN (0), PEERREG_HEALTHY (1), PEERREG_DEGRADED (2), PEERREG_DOWN (3)")
        }
        let text: String? = message == nil ? nil : try string(message, "message")
        try r.setHealth(try string(id, "id", limit: 4096), health, message: text)
    }
}

@c @implementation public func peerreg_heartbeat(_ reg: OpaquePointer?, _ id: CString?, _ err: OutError?) -> Int32 {
    call(err) { () throws(RegistryError) in try registry(reg).heartbeat(try string(id, "id", limit: 4096)) }
}

@c @implementation public func peerreg_prune(_ reg: OpaquePointer?, _ removed: UnsafeMutablePointer<Int32>?, _ err: OutError?) -> Int32 {
    removed?.pointee = 0
    return call(err) { () throws(RegistryError) in
        let n = try registry(reg).prune()
        removed?.pointee = Int32(clamping: n)
    }
}

@c @implementation public func peerreg_probe(_ reg: OpaquePointer?, _ id: CString?, _ timeoutMs: Int32, _ out: OutString?, _ err: OutError?) -> Int32 {
    out?.pointee = nil
    return call(err) { () throws(RegistryError) in
        let r = try registry(reg)
        let policy = timeoutMs > 0 ? ProbePolicy(timeout: .milliseconds(Int(timeoutMs))) : ProbePolicy()
        let entry = try r.probeSync(try string(id, "id", limit: 4096), policy: policy)
        if let out { try output(entry.jsonText, into: out) }
    }
}

// MARK: - Reading

@c @implementation public func peerreg_get(_ reg: OpaquePointer?, _ id: CString?, _ out: OutString?, _ err: OutError?) -> Int32 {
    out?.pointee = nil
    return call(err) { () throws(RegistryError) in
        let out = try requireOut(out, "out_entry_json")
        let entry = try registry(reg).get(try string(id, "id", limit: 4096))
        try output(entry.jsonText, into: out)
    }
}

@c @implementation public func peerreg_list(_ reg: OpaquePointer?, _ filterJSON: CString?, _ out: OutString?, _ err: OutError?) -> Int32 {
    out?.pointee = nil
    return call(err) { () throws(RegistryError) in
        let out = try requireOut(out, "out_json")
        let r = try registry(reg)
        let filter = filterJSON == nil ? ServerFilter() : try ServerFilter(jsonText: try string(filterJSON, "filter_json", limit: 65536))
        try output(try r.listJSON(filter), into: out)
    }
}

@c @implementation public func peerreg_resolve(_ reg: OpaquePointer?, _ kind: Int32, _ name: CString?, _ out: OutString?, _ err: OutError?) -> Int32 {
    out?.pointee = nil
    return call(err) { () throws(RegistryError) in
        let out = try requireOut(out, "out_entry_json")
        let r = try registry(reg)
        guard let k = CapabilityKind(rawValue: kind) else {
            throw RegistryError(.invalid, "kind \(kind) is not one of PEERREG_TOOL (1), PEERREG_RESOURCE (2), PEERREG_PROMPT (3)")
        }
        try output(try r.resolve(k, try string(name, "name", limit: 4096)).jsonText, into: out)
    }
}

/// The same as `peerreg_resolve` with a scope (`PEERREG_SCOPE_CLUSTER`: other machines' entries too).
@c @implementation public func peerreg_resolve_scoped(_ reg: OpaquePointer?, _ kind: Int32, _ name: CString?, _ scope: Int32, _ out: OutString?, _ err: OutError?) -> Int32 {
    out?.pointee = nil
    return call(err) { () throws(RegistryError) in
        let out = try requireOut(out, "out_entry_json")
        let r = try registry(reg)
        guard let k = CapabilityKind(rawValue: kind) else {
            throw RegistryError(.invalid, "kind \(kind) is not one of PEERREG_TOOL (1), PEERREG_RESOURCE (2), PEERREG_PROMPT (3)")
        }
        let s: EntryScope
        switch scope {
        case 0: s = .local
        case 1: s = .cluster
        default: throw RegistryError(.invalid, "scope \(scope) is not one of PEERREG_SCOPE_LOCAL (0), PEERREG_SCOPE_CLUSTER (1)")
        }
        try output(try r.resolve(k, try string(name, "name", limit: 4096), scope: s).jsonText, into: out)
    }
}

// MARK: - Watching

@c @implementation public func peerreg_watch_open_filtered(_ out: UnsafeMutablePointer<OpaquePointer?>?, _ reg: OpaquePointer?, _ filterJSON: CString?, _ err: OutError?) -> Int32 {
    out?.pointee = nil
    return call(err) { () throws(RegistryError) in
        let out = try requireOut(out, "out")
        let r = try registry(reg)
        let filter = filterJSON == nil ? ServerFilter() : try ServerFilter(jsonText: try string(filterJSON, "filter_json", limit: 65536))
        let watch = try RegistryWatch(r, filter: filter)
        out.pointee = Handles.watches.insert(watch)
    }
}

@c @implementation public func peerreg_watch_open(_ out: UnsafeMutablePointer<OpaquePointer?>?, _ reg: OpaquePointer?, _ err: OutError?) -> Int32 {
    out?.pointee = nil
    return call(err) { () throws(RegistryError) in
        let out = try requireOut(out, "out")
        let watch = try RegistryWatch(try registry(reg))
        out.pointee = Handles.watches.insert(watch)
    }
}

@c @implementation public func peerreg_watch_fd(_ w: OpaquePointer?) -> Int32 {
    Handles.watches.lookup(w)?.fileDescriptor ?? -1
}

@c @implementation public func peerreg_watch_next(_ w: OpaquePointer?, _ timeoutMs: Int32, _ out: OutString?, _ err: OutError?) -> Int32 {
    out?.pointee = nil
    return call(err) { () throws(RegistryError) in
        let out = try requireOut(out, "out_event_json")
        guard w != nil else { throw RegistryError(.invalid, "the watch handle is NULL") }
        guard let watch = Handles.watches.lookup(w) else { throw RegistryError(.closed, "the watch handle is closed") }
        // The watch serves one `next` at a time; a close from another thread wakes it (ECLOSED).
        let event = try watch.next(timeoutMilliseconds: Int(timeoutMs))
        guard let event else { throw RegistryError(.timeout, "no change within \(timeoutMs) ms") }
        try output(event.jsonText, into: out)
    }
}

@c @implementation public func peerreg_watch_close(_ w: OpaquePointer?) {
    Handles.watches.remove(w)?.close()
}

// MARK: - Memory and errors

@c @implementation public func peerreg_free(_ p: UnsafeMutableRawPointer?) {
    free(p)
}

@c @implementation public func peerreg_error_code(_ e: OpaquePointer?) -> Int32 {
    guard let e else { return 0 }
    return UnsafeRawPointer(e).load(as: Int32.self)
}

@c @implementation public func peerreg_error_message(_ e: OpaquePointer?) -> UnsafePointer<CChar>? {
    let empty: StaticString = ""
    guard let e else { return UnsafeRawPointer(empty.utf8Start).assumingMemoryBound(to: CChar.self) }
    return (UnsafeRawPointer(e) + messageOffset).assumingMemoryBound(to: CChar.self)
}

@c @implementation public func peerreg_error_free(_ e: OpaquePointer?) {
    free(UnsafeMutableRawPointer(e))
}
