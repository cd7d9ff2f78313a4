import ArgumentParser
import RegistryKit
import RegistryServerPolicy
#if canImport(Glibc)
import Glibc
#endif

/// `peer-registry`: the registry from the command line, and the browser-facing server.
/// Exit codes (docs/CLI.md): 0 ok; 1-10 the registry error codes (`PEERREG_E*` negated);
/// 64 usage; 70 unexpected failure.
struct PeerRegistry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peer-registry",
        abstract: "See, change and serve the local MCP server registry.",
        discussion: """
            The registry is $PEER_REGISTRY_PATH, else ~/.peer-plan/servers.json; every subcommand \
            takes --registry PATH instead. Machine output goes to stdout, errors to stderr as \
            "peer-registry: <message>". Exit codes: 0 ok, 1 invalid argument, 2 not found, \
            3 exists, 4 corrupt registry, 5 I/O, 6 permission, 7 lock timeout, 8 ambiguous, \
            9 limit, 10 closed, 64 usage, 70 unexpected (docs/CLI.md).
            """,
        version: PeerRegistryVersion.text,
        subcommands: [
            ListCommand.self, GetCommand.self, ResolveCommand.self, RegisterCommand.self,
            UnregisterCommand.self, HealthCommand.self, HeartbeatCommand.self, PruneCommand.self,
            RepairCommand.self, WatchCommand.self, ServeCommand.self, MCPCommand.self, SuperviseCommand.self,
            AgentCommand.self,
            GatewayCommand.self,
        ]
    )
}

/// The exit status a script can rely on (docs/CLI.md).
enum ExitStatus {
    static let ok: Int32 = 0
    /// EX_USAGE: the command line is wrong.
    static let usage: Int32 = 64
    /// EX_SOFTWARE: an error nobody expected (a bug; the message says what).
    static let unexpected: Int32 = 70

    /// 1 (PEERREG_EINVAL) ... 10 (PEERREG_ECLOSED): the C code, negated.
    static func forRegistryError(_ code: RegistryError.Code) -> Int32 { -code.rawValue }
}

/// A mistake on the command line found after parsing (exit 64).
struct UsageError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

@main
enum Main {
    static func main() async {
        // Swift decodes argv with U+FFFD for invalid bytes: an id or path would silently become
        // another one. Refuse it, as the C ABI does.
        for i in 1..<Int(CommandLine.argc) {
            guard let raw = CommandLine.unsafeArgv[i], String(validatingCString: raw) != nil else {
                Output.error("argument \(i) is not valid UTF-8")
                exit(ExitStatus.usage)
            }
        }
        let command: any ParsableCommand
        do {
            command = try PeerRegistry.parseAsRoot()
        } catch {
            exit(reportParseError(error))
        }
        do {
            var command = command
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            exit(ExitStatus.ok)
        } catch {
            exit(report(error))
        }
    }

    /// Errors of a command that parsed: registry errors map to their code.
    static func report(_ error: any Error) -> Int32 {
        switch error {
        case let error as RegistryError:
            Output.error(error.message)
            return ExitStatus.forRegistryError(error.code)
        case let error as UsageError:
            Output.error(error.description)
            return ExitStatus.usage
        case let error as PolicyError:
            Output.error(error.message)
            return ExitStatus.usage
        case let error as ValidationError:
            Output.error(error.message)
            return ExitStatus.usage
        case let error as ExitCode:
            return error.rawValue
        case is CleanExit:
            return reportParseError(error)
        default:
            // ArgumentParser's own errors (help asked for through the `help` subcommand, say)
            // have their own exit codes; anything else is unexpected.
            if PeerRegistry.exitCode(for: error) != .failure { return reportParseError(error) }
            Output.error("unexpected error: \(error)")
            return ExitStatus.unexpected
        }
    }

    /// Help, version and usage errors, formatted by ArgumentParser (with the subcommand's usage).
    static func reportParseError(_ error: any Error) -> Int32 {
        let code = PeerRegistry.exitCode(for: error).rawValue
        var message = PeerRegistry.fullMessage(for: error)
        if code == ExitStatus.ok {
            if !message.isEmpty { Output.line(message) }
            return code
        }
        if message.hasPrefix("Error: ") { message.removeFirst("Error: ".count) }
        Output.error(message)
        return code == 1 ? ExitStatus.usage : code
    }
}
