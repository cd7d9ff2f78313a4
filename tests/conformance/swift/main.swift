// registry-conformance: the Swift runner of tests/conformance/cases.json
// (tests/conformance/README.md), every step through RegistryKit's public API.
// Usage: registry-conformance cases.json
import Foundation
import RegistryKit

struct Mismatch: Error { let what: String }

/// Generous limits for reading the cases file itself (one case nests deeper than a registry may).
let caseLimits: RegistryLimits = {
    var l = RegistryLimits()
    l.maxDepth = 64
    l.maxStringBytes = 1 << 20
    return l
}()

let pid = JSONValue.int(getpid())
let tempRoot = FileManager.default.temporaryDirectory.appendingPathComponent("peerreg-conformance-\(getpid())").path
let clockFile = tempRoot + "/clock"

func substitute(_ v: JSONValue) -> JSONValue {
    switch v {
    case .string("$pid"): return pid
    case .array(let a): return .array(a.map(substitute))
    case .object(let o): return .object(JSONObject(o.members.map { ($0.key, substitute($0.value)) }))
    default: return v
    }
}

func matches(_ expected: JSONValue, _ actual: JSONValue?) -> Bool {
    switch expected {
    case .object(let e):
        guard case .object(let a)? = actual else { return false }
        return e.members.allSatisfy { m in
            if m.value == .null { return a[m.key] == nil || a[m.key] == .null }
            return matches(m.value, a[m.key])
        }
    case .array(let e):
        guard case .array(let a)? = actual, a.count == e.count else { return false }
        return zip(e, a).allSatisfy { matches($0, $1) }
    case .number:
        guard let actual, let x = actual.doubleValue else { return false }
        return expected.doubleValue == x
    default:
        return expected == actual
    }
}

func check(_ ok: Bool, _ what: @autoclosure () -> String) throws(Mismatch) {
    if !ok { throw Mismatch(what: what()) }
}

enum Outcome {
    case value(JSONValue?)
    case failed(RegistryError)
    case runnerError(String)
}

/// A step's failure: the library's error, or the runner's own (never dressed as a library code).
enum StepError: Error {
    case registry(RegistryError)
    case runner(String)
}

/// `body`'s result, its RegistryError as a StepError.
func library<T>(_ body: () throws(RegistryError) -> T) throws(StepError) -> T {
    do throws(RegistryError) { return try body() } catch { throw .registry(error) }
}

final class CaseRun {
    let path: String
    var handles: [String: Registry] = [:]
    var mark: Int64 = 0

    init(_ c: JSONObject, index: Int) throws {
        let dir = tempRoot + "/case-\(index)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        path = dir + "/servers.json"
        if let file = c["file"] {
            let text = file.stringValue ?? substitute(file).jsonText
            guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
                throw Mismatch(what: "cannot write \(path)")
            }
        }
        handles["a"] = try Registry(path: path)
    }

    func close() { handles.values.forEach { $0.close() } }

    func run(_ s: JSONObject) throws(StepError) -> JSONValue? {
        let name = s["handle"]?.stringValue ?? "a"
        let op = s["op"]?.stringValue ?? ""
        if op == "open" {
            handles[name] = try library { () throws(RegistryError) in try Registry(path: path) }
            return nil
        }
        guard let reg = handles[name] else { throw .runner("no handle \(name)") }
        let id = s["id"]?.stringValue ?? ""
        switch op {
        case "register":
            if let text = s["json"]?.stringValue { return .object(try library { () throws(RegistryError) in try reg.register(json: text) }.jsonObject) }
            let stored = try library { () throws(RegistryError) in
                try reg.register(try ServerEntry(jsonText: (s["entry"] ?? .null).jsonText))
            }
            return .object(stored.jsonObject)
        case "get":
            return .object(try library { () throws(RegistryError) in try reg.get(id) }.jsonObject)
        case "list":
            let text = s["filter_json"]?.stringValue ?? s["filter"]?.jsonText
            let listing = try library { () throws(RegistryError) in
                try reg.list(try text.map { (t) throws(RegistryError) in try ServerFilter(jsonText: t) } ?? ServerFilter())
            }
            return .object(JSONObject([("generation", .int(listing.generation)),
                                       ("servers", .array(listing.servers.map { .object($0.jsonObject) }))]))
        case "resolve":
            let kinds: [String: CapabilityKind] = ["tool": .tool, "resource": .resource, "prompt": .prompt]
            guard let kind = kinds[s["kind"]?.stringValue ?? ""] else { throw .runner("unknown kind") }
            return .object(try library { () throws(RegistryError) in try reg.resolve(kind, s["name"]?.stringValue ?? "") }.jsonObject)
        case "set_health":
            guard let status = HealthStatus(name: s["status"]?.stringValue ?? "") else { throw .runner("unknown status") }
            try library { () throws(RegistryError) in try reg.setHealth(id, status, message: s["message"]?.stringValue) }
        case "heartbeat":
            try library { () throws(RegistryError) in try reg.heartbeat(id) }
        case "unregister":
            try library { () throws(RegistryError) in try reg.unregister(id) }
        case "prune":
            return .int(try library { () throws(RegistryError) in try reg.prune() })
        case "clock":
            let text = String(s["ms"]?.int64Value ?? 0)
            guard FileManager.default.createFile(atPath: clockFile + ".tmp", contents: Data(text.utf8)),
                  rename(clockFile + ".tmp", clockFile) == 0 else { throw .runner("cannot set the clock") }
        case "close":
            reg.close()
        case "mark":
            mark = try library { () throws(RegistryError) in try reg.list() }.generation
        case "read_file":
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw .runner("cannot read \(path)") }
            return .string(text)
        default:
            throw .runner("unknown op \(op)")
        }
        return nil
    }

    func verify(_ s: JSONObject, _ result: JSONValue?) throws(Mismatch) {
        let op = s["op"]?.stringValue ?? ""
        if let expect = s["expect"], op != "read_file" {
            try check(matches(substitute(expect), result), "expected \(expect.jsonText), got \(result?.jsonText ?? "nothing")")
        }
        switch op {
        case "list":
            let servers = result?.objectValue?["servers"]?.arrayValue ?? []
            if let ids = s["ids"] {
                let got = JSONValue.array(servers.map { $0.objectValue?["id"] ?? .null })
                try check(got == ids, "expected ids \(ids.jsonText), got \(got.jsonText)")
            }
            if let want = s["generation_since_mark"]?.int64Value {
                let delta = (result?.objectValue?["generation"]?.int64Value ?? 0) - mark
                try check(delta == want, "expected generation mark+\(want), got mark+\(delta)")
            }
        case "resolve":
            if let id = s["id"] {
                try check(result?.objectValue?["id"] == id, "expected \(id.jsonText), got \(result?.objectValue?["id"]?.jsonText ?? "nothing")")
            }
        case "prune":
            if let removed = s["removed"] { try check(matches(removed, result), "expected \(removed.jsonText) removed, got \(result?.jsonText ?? "")") }
        case "read_file":
            let text = result?.stringValue ?? ""
            if let want = s["text"] { try check(.string(text) == want, "expected the file \(want.jsonText), got \(text)") }
            if let expect = s["expect"] {
                try check(matches(substitute(expect), try? JSONValue.parse(text)), "expected file \(expect.jsonText), got \(text)")
            }
        default:
            break
        }
    }
}

func runCase(_ c: JSONObject, index: Int) throws -> (outcomes: [String], failure: String?) {
    unlink(clockFile)
    let run = try CaseRun(c, index: index)
    defer { run.close() }
    var outcomes: [String] = []
    var failure: String?
    for (i, stepValue) in (c["steps"]?.arrayValue ?? []).enumerated() {
        let s = stepValue.objectValue ?? JSONObject()
        let outcome: Outcome
        do throws(StepError) {
            outcome = .value(try run.run(s))
        } catch {
            switch error {
            case .registry(let e): outcome = .failed(e)
            case .runner(let why): outcome = .runnerError(why)
            }
        }
        do throws(Mismatch) {
            switch outcome {
            case .failed(let error):
                outcomes.append(error.code.name)
                try check(s["error"]?.stringValue == error.code.name,
                          "expected \(s["error"]?.stringValue ?? "success"), got \(error.code.name): \(error.message)")
                for word in s["message_contains"]?.arrayValue ?? [] {
                    let w = word.stringValue ?? ""
                    try check(error.message.contains(w), "message \"\(error.message)\" does not name \"\(w)\"")
                }
            case .runnerError(let why):
                outcomes.append("runner-error")
                throw Mismatch(what: why)
            case .value(let result):
                outcomes.append("ok")
                try check(s["error"] == nil, "expected \(s["error"]?.stringValue ?? ""), got success")
                try run.verify(s, result)
            }
        } catch {
            failure = failure ?? "step \(i + 1) (\(s["op"]?.stringValue ?? "")): \(error.what)"
        }
    }
    return (outcomes, failure)
}

setenv("PEER_REGISTRY_TEST_CLOCK_FILE", clockFile, 1)  // before the library first reads the time
guard CommandLine.arguments.count == 2,
      let text = try? String(contentsOfFile: CommandLine.arguments[1], encoding: .utf8),
      let cases = (try? JSONValue.parse(text, limits: caseLimits))?.objectValue?["cases"]?.arrayValue
else {
    FileHandle.standardError.write(Data("usage: registry-conformance cases.json\n".utf8))
    exit(2)
}
var failed = 0
do {
    try FileManager.default.createDirectory(atPath: tempRoot, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    for (index, value) in cases.enumerated() {
        let c = value.objectValue ?? JSONObject()
        let (outcomes, failure) = try runCase(c, index: index)
        if failure != nil { failed += 1 }
        print("\(c["name"]?.stringValue ?? "?"): \(outcomes.joined(separator: " ")) => \(failure.map { "FAIL " + $0 } ?? "pass")")
    }
} catch {
    print("registry-conformance: \(error)")
    exit(1)
}
print("\(cases.count) cases, \(failed) failed")
try? FileManager.default.removeItem(atPath: tempRoot)
exit(failed == 0 ? 0 : 1)
