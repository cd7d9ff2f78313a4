// libFuzzer target (c): the C ABI's JSON and string inputs, through the exported functions
// (Sources/CRegistry/Exports.swift compiled in, called as a C caller would).
//
// Input: byte 0 picks the call, byte 1 a parameter (resolve kind, health status), the rest
// is the argument as a NUL-terminated C string (cut at the first NUL, as C would see it):
//   0 register(entry_json)   1 list(filter_json)   2 get(id)      3 unregister(id)
//   4 resolve(kind, name)    5 set_health(id "fz-live", status, message)
//   6 heartbeat(id)          7 register(entry_json), then get/list/resolve around it
// Invariants, for every call: the result is a PEERREG_* code from the set that call may
// return for bad input (never EIO, ECORRUPT, ETIMEOUT: the file stays valid); *err is set
// exactly on failure, with the same code and a non-empty UTF-8 message; out pointers are
// NULL on failure and valid JSON on success; a failed call changes nothing on disk (the
// file's inode, size and mtime are unchanged). The registry lives on /dev/shm (tmpfs), so
// fsync is cheap; successful registrations are unregistered again so the state stays small.
#if canImport(Glibc)
import Glibc
#endif
import CPeerRegistryHeader

private final class FuzzRegistry: @unchecked Sendable {
    let dir: String
    let path: String
    let handle: OpaquePointer
    var iterations = 0

    init() {
        let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
        dir = "\(base)/peerreg-fuzz-\(getpid())"
        path = dir + "/servers.json"
        var h: OpaquePointer? = nil
        var err: OpaquePointer? = nil
        let rc = peerreg_open(&h, path, &err)
        guard rc == 0, let h else {
            errPrint("cabi fuzz: cannot open \(path): \(String(cString: peerreg_error_message(err)))")
            exit(2)
        }
        handle = h
        FuzzRegistry.current = dir
        atexit { FuzzRegistry.cleanup() }
        baseline()
    }

    nonisolated(unsafe) static var current: String?

    static func cleanup() {
        guard let dir = current else { return }
        _ = dir.withCString { d in system("rm -rf '\(String(cString: d))'") }
    }

    /// The entry every run can rely on: "fz-live", liveness none, with a tool, resource, prompt.
    func baseline() {
        let entry = #"{"id":"fz-live","url":"http://127.0.0.1:1/mcp","liveness":"none","capabilities":{"tools":["t"],"resources":["resource://fz/"],"prompts":["p"]}}"#
        var err: OpaquePointer? = nil
        let rc = peerreg_register(handle, entry, nil, &err)
        if rc != 0 {
            errPrint("cabi fuzz: baseline register failed: \(String(cString: peerreg_error_message(err)))")
            abort()
        }
    }

    func stamp() -> [Int64] {
        var st = stat()
        guard stat(path, &st) == 0 else { return [-1] }
        return [Int64(st.st_ino), Int64(st.st_size), Int64(st.st_mtim.tv_sec), Int64(st.st_mtim.tv_nsec)]
    }
}

nonisolated(unsafe) private var fuzzRegistry: FuzzRegistry?

// The header's named enums import as Swift structs (peerreg_code); the functions return Int32.
private let EINVAL_ = PEERREG_EINVAL.rawValue, ENOTFOUND_ = PEERREG_ENOTFOUND.rawValue, ELIMIT_ = PEERREG_ELIMIT.rawValue
private let EAMBIGUOUS_ = PEERREG_EAMBIGUOUS.rawValue, EEXISTS_ = PEERREG_EEXISTS.rawValue

/// Checks one call's result, error and output; returns the output as a Swift string (nil on failure).
private func checkCall(_ name: String, _ rc: Int32, _ err: OpaquePointer?, _ out: UnsafeMutablePointer<CChar>?,
                       allowed: Set<Int32>, input: [UInt8]) -> String? {
    if rc != 0 && !allowed.contains(rc) {
        fuzzFail("\(name) returned \(rc) (\(String(cString: peerreg_errstr(rc)))): \(String(cString: peerreg_error_message(err)))", input)
    }
    if rc == 0 {
        if err != nil { fuzzFail("\(name): error set on success", input) }
    } else {
        guard let err else { fuzzFail("\(name): no error object on failure", input) }
        if peerreg_error_code(err) != rc { fuzzFail("\(name): error code \(peerreg_error_code(err)) != result \(rc)", input) }
        guard let m = peerreg_error_message(err) else { fuzzFail("\(name): NULL message", input) }
        let len = strlen(m)
        if len == 0 { fuzzFail("\(name): empty error message", input) }
        let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(m).assumingMemoryBound(to: UInt8.self), count: len)
        if String(validating: bytes, as: UTF8.self) == nil { fuzzFail("\(name): error message is not UTF-8", input) }
        if out != nil { fuzzFail("\(name): out pointer set on failure", input) }
    }
    peerreg_error_free(err)
    guard rc == 0, let out else { return nil }
    let s = String(cString: out)
    peerreg_free(out)
    if (try? JSONValue.parse(s)) == nil { fuzzFail("\(name): output is not JSON: \(s.prefix(200))", input) }
    return s
}

private func idOf(_ entryJSON: String) -> String? {
    guard case .object(let o)? = try? JSONValue.parse(entryJSON) else { return nil }
    return o["id"]?.stringValue
}

@_cdecl("peerreg_fuzz_cabi")
public func fuzzCABI(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if fuzzRegistry == nil { fuzzRegistry = FuzzRegistry() }
    guard let fr = fuzzRegistry, input.count >= 1 else { return 0 }
    let reg = fr.handle
    let op = input[0] % 8
    let param = input.count > 1 ? input[1] : 0
    // The argument as C sees it: up to the first NUL.
    var arg = Array(input.dropFirst(op == 4 || op == 5 ? 2 : 1).prefix { $0 != 0 })
    arg.append(0)
    let before = fr.stamp()
    var err: OpaquePointer? = nil
    var out: UnsafeMutablePointer<CChar>? = nil
    var failed = false
    var registeredID: String? = nil

    arg.withUnsafeBufferPointer { raw in
        let cstr = UnsafeRawPointer(raw.baseAddress!).assumingMemoryBound(to: CChar.self)
        switch op {
        case 0, 7:
            let rc = peerreg_register(reg, cstr, &out, &err)
            failed = rc != 0
            if let stored = checkCall("register", rc, err, out, allowed: [EINVAL_, ELIMIT_, EEXISTS_], input: input) {
                guard let id = idOf(stored) else { fuzzFail("register: stored entry has no id: \(stored.prefix(200))", input) }
                registeredID = id
                var e2: OpaquePointer? = nil, o2: UnsafeMutablePointer<CChar>? = nil
                let rc2 = peerreg_get(reg, id, &o2, &e2)
                // A pid entry whose process just exited, or a ttl entry, may be gone already; a
                // lease or none entry must be there.
                _ = checkCall("get after register", rc2, e2, o2, allowed: [ENOTFOUND_], input: input)
                if op == 7 {
                    var e3: OpaquePointer? = nil, o3: UnsafeMutablePointer<CChar>? = nil
                    let rc3 = peerreg_list(reg, nil, &o3, &e3)
                    guard let listing = checkCall("list after register", rc3, e3, o3, allowed: [], input: input) else { return }
                    _ = listing
                    for kind in Int32(1)...3 {
                        var e4: OpaquePointer? = nil, o4: UnsafeMutablePointer<CChar>? = nil
                        let name = kind == 2 ? "resource://fz/x" : (kind == 1 ? "t" : "p")
                        let rc4 = peerreg_resolve(reg, kind, name, &o4, &e4)
                        _ = checkCall("resolve after register", rc4, e4, o4, allowed: [ENOTFOUND_, EAMBIGUOUS_], input: input)
                    }
                }
            }
        case 1:
            let rc = peerreg_list(reg, cstr, &out, &err)
            failed = rc != 0
            _ = checkCall("list", rc, err, out, allowed: [EINVAL_, ELIMIT_], input: input)
        case 2:
            let rc = peerreg_get(reg, cstr, &out, &err)
            failed = rc != 0
            _ = checkCall("get", rc, err, out, allowed: [EINVAL_, ELIMIT_, ENOTFOUND_], input: input)
        case 3:
            // Never remove the baseline through this path (it is re-created below if needed).
            let rc = peerreg_unregister(reg, cstr, &err)
            failed = rc != 0
            _ = checkCall("unregister", rc, err, nil, allowed: [EINVAL_, ELIMIT_, ENOTFOUND_], input: input)
            if rc == 0 { fr.baseline() }
        case 4:
            let kind = Int32(param % 5)  // 0 and 4 are invalid kinds
            let rc = peerreg_resolve(reg, kind, cstr, &out, &err)
            failed = rc != 0
            _ = checkCall("resolve", rc, err, out, allowed: [EINVAL_, ELIMIT_, ENOTFOUND_, EAMBIGUOUS_], input: input)
        case 5:
            let status = Int32(param % 6) - 1  // -1 and 4 are invalid
            let rc = peerreg_set_health(reg, "fz-live", status, param & 0x80 != 0 ? nil : cstr, &err)
            failed = rc != 0
            _ = checkCall("set_health", rc, err, nil, allowed: [EINVAL_, ELIMIT_], input: input)
        default:
            let rc = peerreg_heartbeat(reg, cstr, &err)
            failed = rc != 0
            _ = checkCall("heartbeat", rc, err, nil, allowed: [EINVAL_, ELIMIT_, ENOTFOUND_], input: input)
        }
    }
    if failed, fr.stamp() != before { fuzzFail("a failed call changed the registry file", input) }
    if let id = registeredID {
        var e: OpaquePointer? = nil
        let rc = peerreg_unregister(reg, id, &e)
        peerreg_error_free(e)
        if rc != 0 && rc != ENOTFOUND_ { fuzzFail("unregister of a registered id failed: \(rc)", input) }
        if id == "fz-live" || rc == 0 { fr.baseline() }
    }
    fr.iterations += 1
    return 0
}
