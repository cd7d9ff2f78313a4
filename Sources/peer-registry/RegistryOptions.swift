import ArgumentParser
import RegistryKit

/// `--registry PATH`, accepted by every subcommand.
struct RegistryOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The registry file (default: $PEER_REGISTRY_PATH, else ~/.peer-plan/servers.json).",
        valueName: "path"))
    var registry: String?

    /// Opens the registry (creating its directory, 0700, if needed).
    func open() throws(RegistryError) -> Registry {
        if let registry, registry.isEmpty { throw RegistryError(.invalid, "--registry: the path is empty") }
        return try Registry(path: registry)
    }

    /// Opens the registry for commands that only look: nothing is created (no directory, no
    /// lock file), a missing registry reads as empty.
    func openReadOnly() throws(RegistryError) -> Registry {
        if let registry, registry.isEmpty { throw RegistryError(.invalid, "--registry: the path is empty") }
        var options = Registry.Options()
        options.readOnly = true
        return try Registry(path: registry, options: options)
    }
}

/// `--compact` for commands that print one entry as JSON.
struct JSONStyleOptions: ParsableArguments {
    @Flag(name: .long, help: "Print the JSON on one line instead of indented.")
    var compact = false

    func print(_ value: JSONValue) {
        Output.line(compact ? value.jsonText : Output.pretty(value))
    }
}

/// `--show-secrets` for commands that print entries: their secret fields (`headers`, see
/// `EntrySecrets`) are left out unless it is given.
struct SecretOptions: ParsableArguments {
    @Flag(name: .customLong("show-secrets"), help: "Also print the entries' secret fields (headers); they are left out otherwise.")
    var showSecrets = false
}

/// `--scope local|cluster` for list, resolve and watch (docs/CLUSTER.md).
struct ScopeOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "local: this machine's registry (default); cluster: also the other machines' servers that `peer-registry agent` mirrors (each with its node).",
        valueName: "scope"))
    var scope: EntryScope = .local
}

extension EntryScope: ExpressibleByArgument {}
