/// peer-registry's version, as the repository's `VERSION` file says (`scripts/version.sh`
/// writes it here and into every other copy, and `make test-version` checks that they agree).
/// The C ABI reports it (`peerreg_version`), the CLI prints it, the servers and the prober
/// announce it. `package`: shared by this package's modules, not RegistryKit's public API.
package enum PeerRegistryVersion {
    package static let string: StaticString = "0.2.0"
    /// major * 1000000 + minor * 1000 + patch, as PEERREG_VERSION_NUMBER.
    package static let number: Int32 = 2000
    package static var text: String { string.description }
}
