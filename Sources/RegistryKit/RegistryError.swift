/// The one error type RegistryKit throws: a code that maps one-to-one onto the C ABI's
/// `PEERREG_*` result codes, and a message meant for a person (it names the file, the field,
/// the holder's pid, or how to fix a permission problem).
public struct RegistryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong; `rawValue` is the `PEERREG_*` code.
    public enum Code: Int32, Sendable, CaseIterable {
        /// Bad argument: malformed JSON, a field of the wrong type, an invalid id or URL.
        case invalid = -1
        /// No live entry with that id, or nothing resolves that name.
        case notFound = -2
        /// Another live registrant holds the id.
        case exists = -3
        /// The registry file does not parse or does not validate; the message has path and position.
        case corrupt = -4
        /// A system call failed; the message names it and errno.
        case io = -5
        /// Unsafe ownership, permissions, symlink or hard link; the message says how to fix it.
        case permission = -6
        /// The file lock was not obtained in time; the message names the holder's pid.
        case timeout = -7
        /// Several equally healthy servers declare the name; the message lists them.
        case ambiguous = -8
        /// A documented size limit was exceeded.
        case limit = -9
        /// The handle was closed (or was inherited across `fork()`).
        case closed = -10

        /// The C name of the code, e.g. `PEERREG_ENOTFOUND`.
        public var name: String { String(summary.description.prefix { $0 != ":" }) }

        /// The code's C name and what it means, as `peerreg_errstr` returns it (and the only
        /// place either is written: `name`, the CLI, the HTTP and MCP servers all derive from it).
        package var summary: StaticString {
            switch self {
            case .invalid: "PEERREG_EINVAL: invalid argument"
            case .notFound: "PEERREG_ENOTFOUND: not found"
            case .exists: "PEERREG_EEXISTS: already registered by a live process"
            case .corrupt: "PEERREG_ECORRUPT: the registry file is corrupt"
            case .io: "PEERREG_EIO: input/output error"
            case .permission: "PEERREG_EPERM: unsafe permissions or ownership"
            case .timeout: "PEERREG_ETIMEOUT: timed out"
            case .ambiguous: "PEERREG_EAMBIGUOUS: ambiguous name"
            case .limit: "PEERREG_ELIMIT: size limit exceeded"
            case .closed: "PEERREG_ECLOSED: handle closed"
            }
        }
    }

    public var code: Code
    public var message: String
    /// For `.io` errors: the system call that failed (`open`, `write`, `fsync`, `rename`,
    /// `flock`, ...), as swift-system's `Errno` would name it. Nil otherwise.
    public var syscall: String?
    /// For `.io` errors: the errno the call failed with (e.g. `ENOSPC` = 28). Nil otherwise.
    public var errnoCode: Int32?

    public init(_ code: Code, _ message: String, syscall: String? = nil, errnoCode: Int32? = nil) {
        self.code = code
        self.message = message
        self.syscall = syscall
        self.errnoCode = errnoCode
    }

    public var description: String { "\(code.name): \(message)" }
}
