import ArgumentParser
import Foundation
import RegistryKit

struct RegisterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "register",
        abstract: "Register a server from flags or a JSON file; prints the stored entry.",
        discussion: """
            How the registry knows the server is still there: --pid PID (while that process \
            runs), --ttl SECONDS (while someone runs `peer-registry heartbeat ID` more often \
            than that), or --static (until `unregister`). Without one of them the entry is \
            static. The `lease` mode of the library is refused: a lease lives as long as the \
            process that holds it, and this command exits at once, so the entry would be dead \
            on arrival.

            An id that is already registered is refused (exit 3) unless --replace is given.
            """)

    @OptionGroup var options: RegistryOptions
    @OptionGroup var style: JSONStyleOptions

    @Option(help: ArgumentHelp("The entry as a JSON object (the format of servers.json entries); - reads stdin.", valueName: "path"))
    var file: String?

    @Option(help: "The server's id: 1-64 of A-Z a-z 0-9 _ -, starting with a letter or digit.")
    var id: String?

    @Option(help: "Where to reach it (required unless --transport stdio).")
    var url: String?

    @Option(help: "A display name.")
    var name: String?

    @Option(help: ArgumentHelp("http, sse, ws or stdio (default: from the URL's scheme).", valueName: "transport"))
    var transport: String?

    @Option(name: .customLong("tool"), help: ArgumentHelp("A tool it offers (repeatable).", valueName: "name"))
    var tools: [String] = []

    @Option(name: .customLong("resource"), help: ArgumentHelp("A resource URI or URI prefix it serves (repeatable).", valueName: "uri"))
    var resources: [String] = []

    @Option(name: .customLong("prompt"), help: ArgumentHelp("A prompt it offers (repeatable).", valueName: "name"))
    var prompts: [String] = []

    @Option(help: ArgumentHelp("Anything to publish with it, as JSON.", valueName: "json"))
    var metadata: String?

    @Option(help: ArgumentHelp("Liveness pid: the entry lives while this process runs.", valueName: "pid"))
    var pid: Int32?

    @Option(help: ArgumentHelp("Liveness ttl: the entry lives this long after each heartbeat.", valueName: "seconds"))
    var ttl: Int?

    @Flag(name: .customLong("static"), help: "Liveness none: the entry stays until unregistered (the default).")
    var isStatic = false

    @Flag(help: "Replace an entry that already has this id.")
    var replace = false

    func validate() throws {
        if [pid != nil, ttl != nil, isStatic].filter({ $0 }).count > 1 {
            throw ValidationError("choose one of --pid, --ttl and --static")
        }
        let describesEntry = id != nil || url != nil || name != nil || transport != nil || !tools.isEmpty
            || !resources.isEmpty || !prompts.isEmpty || metadata != nil
        if file != nil, describesEntry {
            throw ValidationError("--file gives the whole entry: put --id, --url, --name, --transport, --tool, --resource, --prompt and --metadata in the file instead")
        }
        if file == nil, id == nil { throw ValidationError("missing --id (or --file)") }
        if let transport, Transport(rawValue: transport.lowercased()) == nil {
            throw ValidationError("--transport \(transport): use http, sse, ws or stdio")
        }
        if let ttl, !(1...86_400).contains(ttl) { throw ValidationError("--ttl \(ttl): use 1 to 86400 seconds") }
        if let pid, pid < 1 { throw ValidationError("--pid \(pid): not a process id") }
    }

    func run() throws {
        var object = try file.map(Self.readObject) ?? entryFromFlags()
        switch (pid, ttl, isStatic) {
        case (let pid?, _, _):
            object["liveness"] = "pid"
            object["pid"] = .int(pid)
        case (_, let ttl?, _):
            object["liveness"] = "ttl"
            object["ttlSeconds"] = .int(ttl)
        case (_, _, true):
            object["liveness"] = "none"
        default:
            if object["liveness"] == nil { object["liveness"] = "none" }
        }
        if object["liveness"] == .string("lease") {
            throw UsageError("lease liveness lasts only as long as the process that holds the lease, and this command exits at once: use --pid PID, --ttl SECONDS or --static (or let the server register itself through the library)")
        }
        let entry = try ServerEntry(jsonText: JSONValue.object(object).jsonText)
        let registry = try options.open()
        // Without --replace, "already registered" is decided under the write lock (no race
        // between looking and registering).
        let stored: ServerEntry
        do throws(RegistryError) {
            stored = try registry.register(entry, onlyIfAbsent: !replace)
        } catch {
            guard error.code == .exists, !replace else { throw error }
            throw RegistryError(.exists, "\(error.message); pass --replace to replace it, or unregister it first")
        }
        style.print(.object(stored.jsonObject))
    }

    private func entryFromFlags() throws(RegistryError) -> JSONObject {
        var object = JSONObject()
        object["id"] = id.map { .string($0) }
        object["name"] = name.map { .string($0) }
        object["url"] = url.map { .string($0) }
        object["transport"] = transport.map { .string($0.lowercased()) }
        var capabilities = JSONObject()
        if !tools.isEmpty { capabilities["tools"] = .array(tools.map { .string($0) }) }
        if !resources.isEmpty { capabilities["resources"] = .array(resources.map { .string($0) }) }
        if !prompts.isEmpty { capabilities["prompts"] = .array(prompts.map { .string($0) }) }
        if !capabilities.isEmpty { object["capabilities"] = .object(capabilities) }
        if let metadata {
            do throws(RegistryError) {
                object["metadata"] = try JSONValue.parse(metadata)
            } catch {
                throw RegistryError(error.code, "--metadata: \(error.message)")
            }
        }
        return object
    }

    /// The JSON object in `path` (`-`: stdin).
    static func readObject(_ path: String) throws -> JSONObject {
        let data: Data?
        let limit = RegistryLimits.default.maxEntryBytes
        // At most one byte past the limit: `yes | peer-registry register --file -` (or a
        // --file /dev/zero) must not read forever.
        if let handle = path == "-" ? FileHandle.standardInput : FileHandle(forReadingAtPath: path) {
            var collected = Data()
            while collected.count <= limit {
                let chunk: Data?
                do {
                    chunk = try handle.read(upToCount: min(1 << 16, limit + 1 - collected.count))
                } catch {
                    throw RegistryError(.io, "--file \(path): cannot read it (\(error.localizedDescription))")
                }
                guard let chunk, !chunk.isEmpty else { break }
                collected.append(chunk)
            }
            data = collected
        } else {
            data = nil
        }
        guard let data else { throw RegistryError(.io, "--file \(path): cannot read it") }
        guard data.count <= limit else {
            let size = "more than \(limit) bytes"
            throw RegistryError(.limit, "--file \(path): \(size), over the entry limit of \(limit)")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw RegistryError(.invalid, "--file \(path): not UTF-8") }
        let value: JSONValue
        do throws(RegistryError) {
            value = try JSONValue.parse(text)
        } catch {
            throw RegistryError(error.code, "--file \(path): \(error.message)")
        }
        guard case .object(let object) = value else { throw RegistryError(.invalid, "--file \(path): the entry must be a JSON object") }
        return object
    }
}

struct UnregisterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unregister",
        abstract: "Remove a server's entry, whatever its liveness (exit 2 when there is none).")

    @OptionGroup var options: RegistryOptions

    @Argument(help: "The server's id.")
    var id: String

    func run() throws {
        try options.open().unregister(id)
    }
}

struct HealthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health",
        abstract: "Record a server's health: HEALTHY, DEGRADED, DOWN or UNKNOWN (DOWN servers never resolve).")

    @OptionGroup var options: RegistryOptions

    @Argument(help: "The server's id.")
    var id: String

    @Argument(help: "HEALTHY, DEGRADED, DOWN or UNKNOWN (any case).")
    var status: String

    @Argument(help: "A message to show with it.")
    var message: String?

    func validate() throws {
        if HealthStatus(name: status) == nil { throw ValidationError("status \"\(status)\": use HEALTHY, DEGRADED, DOWN or UNKNOWN") }
    }

    func run() throws {
        guard let status = HealthStatus(name: status) else { throw UsageError("bad status") }
        try options.open().setHealth(id, status, message: message)
    }
}

struct HeartbeatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "heartbeat",
        abstract: "Keep a --ttl entry alive for another ttl (exit 2 once it has expired).")

    @OptionGroup var options: RegistryOptions

    @Argument(help: "The server's id.")
    var id: String

    func run() throws {
        try options.open().heartbeat(id)
    }
}

struct PruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Remove dead entries and unused lease files now (every write does this anyway).")

    @OptionGroup var options: RegistryOptions

    @Flag(help: "Print {\"removed\":N}.")
    var json = false

    func run() throws {
        let removed = try options.open().prune()
        Output.line(json ? "{\"removed\":\(removed)}" : "removed \(removed) dead \(removed == 1 ? "entry" : "entries")")
    }
}

struct RepairCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repair",
        abstract: "Move an unreadable registry aside (servers.json.corrupt-<time>) so it can be used again.",
        discussion: "Nothing is deleted. A readable registry is left alone.")

    @OptionGroup var options: RegistryOptions

    @Flag(help: "Print {\"movedTo\":PATH} (null when nothing was wrong).")
    var json = false

    func run() throws {
        let aside = try options.open().repair()
        if json {
            Output.line(JSONValue.object(JSONObject([("movedTo", aside.map { .string($0) } ?? .null)])).jsonText)
        } else if let aside {
            Output.line("moved the unreadable registry to \(aside); the registry is empty now")
        } else {
            Output.line("the registry is readable: nothing to repair")
        }
    }
}
