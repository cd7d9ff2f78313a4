import ArgumentParser
import Foundation
import RegistryKit
import RegistryServerPolicy

struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Print each change to the registry as it happens, until interrupted.",
        discussion: """
            One line per change: `+ id` added, `- id` removed, `~ id` changed, with the file \
            generation. With --json, one JSON object per line: \
            {"generation":N,"added":[...],"removed":[...],"changed":[...]}. Registrations, \
            unregistrations, health changes and deaths (a lease owner exiting, a ttl expiring, a \
            pid ending) all show up.
            """)

    @OptionGroup var options: RegistryOptions

    @Flag(help: "One JSON object per event instead of readable lines.")
    var json = false

    @Flag(help: "First print the live servers as they are now (as one event with all of them added).")
    var initial = false

    @Option(help: ArgumentHelp("Exit after this many events (the --initial one not counted).", valueName: "n"))
    var count: Int?

    @OptionGroup var scope: ScopeOptions

    @OptionGroup var secrets: SecretOptions

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count \(count): use 1 or more") }
    }

    func run() async throws {
        let registry = try options.open()
        // Watch first, then read: a change in between shows up in both, never in neither.
        let filter = ServerFilter(scope: scope.scope)
        let changes = try registry.changes(filter)
        let now = try registry.list(filter)
        if initial {
            emit(generation: now.generation, added: now.servers, removed: [], changed: [], initial: true)
        }
        Output.note("watching \(registry.path) (generation \(now.generation), \(now.servers.count) live); Ctrl-C to stop")
        var seen = 0
        for try await event in changes {
            emit(generation: event.generation, added: event.added, removed: event.removed, changed: event.changed, initial: false)
            seen += 1
            if let count, seen >= count { return }
        }
    }

    /// One event (RegistryEvent has no public initializer, so the parts are passed as they are;
    /// the JSON is RegistryEvent.jsonText's shape).
    private func emit(generation: Int64, added: [ServerEntry], removed: [ServerEntry], changed: [ServerEntry], initial: Bool) {
        // With --scope cluster a remote entry is named node/id (ids have no slash).
        func name(_ e: ServerEntry) -> String { e.clusterKey + (e.isStale ? " (stale)" : "") }
        if json {
            let show = secrets.showSecrets
            func list(_ entries: [ServerEntry]) -> JSONValue { .array(entries.map { .object($0.printedJSON(showSecrets: show)) }) }
            Output.lineFlushed(JSONValue.object(JSONObject([
                ("generation", .int(generation)), ("added", list(added)), ("removed", list(removed)), ("changed", list(changed)),
            ])).jsonText)
            return
        }
        let time = Self.clock()
        var lines: [String] = []
        if initial, added.isEmpty { lines.append("\(time)  gen \(generation)  (no live servers)") }
        // Everything but the id (validated) comes from other processes: shown escaped, so it
        // cannot move the cursor, forge a line or reverse the text after it.
        for e in added {
            lines.append("\(time)  gen \(generation)  \(initial ? "=" : "+") \(name(e))  \(Output.printable(e.url ?? "-"))  \(e.healthLabel)  \(e.livenessLabel)")
        }
        for e in changed {
            let message = e.health.message.map { " \"\(Output.printable($0))\"" } ?? ""
            lines.append("\(time)  gen \(generation)  ~ \(name(e))  \(Output.printable(e.url ?? "-"))  \(e.healthLabel)\(message)")
        }
        for e in removed {
            lines.append("\(time)  gen \(generation)  - \(name(e))")
        }
        Output.lineFlushed(lines.joined(separator: "\n"))
    }

    private static func clock() -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss.SSS"
        return formatter.string(from: Date())
    }
}
