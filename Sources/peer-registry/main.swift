import RegistryKit
// Placeholder until the CLI issue: prints the live entries of the default registry.
do {
    let registry = try Registry()
    for e in try registry.list().servers { print(e.jsonText) }
} catch {
    print("peer-registry: \(error)")
}
