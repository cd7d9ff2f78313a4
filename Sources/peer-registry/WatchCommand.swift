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
            emit(RegistryEvent(generation: now.generation, added: now.servers), initial: true)
        }
        Output.error("watching \(registry.path) (generation \(now.generation), \(now.servers.count) live); Ctrl-C to stop")
        var seen = 0
        for try await event in changes {
            emit(event, initial: false)
            seen += 1
            if let count, seen >= count { return }
        }
    }

    /// One event: as RegistryEvent.jsonText (entries without their secrets unless asked), or as
    /// lines for a person.
    private func emit(_ event: RegistryEvent, initial: Bool) {
        // With --scope cluster a remote entry is named node/id (ids have no slash).
        func name(_ e: ServerEntry) -> String { e.clusterKey + (e.isStale ? " (stale)" : "") }
        if json {
            let shown = secrets.showSecrets ? event : RegistryEvent(
                generation: event.generation, added: EntrySecrets.redacted(event.added),
                removed: EntrySecrets.redacted(event.removed), changed: EntrySecrets.redacted(event.changed))
            Output.line(shown.jsonText)
            return
        }
        let (generation, added, removed, changed) = (event.generation, event.added, event.removed, event.changed)
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
        Output.line(lines.joined(separator: "\n"))
    }

    private static func clock() -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss.SSS"
        return formatter.string(from: Date())
    }
}
