/// Hash tables from capability names to the entries declaring them.
struct ResolutionIndex: Sendable {
    var tools: [String: [Int]] = [:]
    var prompts: [String: [Int]] = [:]
    var resources: [String: [Int]] = [:]
    /// The distinct lengths (in UTF-8 bytes) of declared resources, longest first: a URI is
    /// resolved by looking up its prefixes of these lengths only.
    var resourceLengths: [Int] = []

    init(_ servers: [ServerEntry]) {
        var lengths = Set<Int>()
        for (i, e) in servers.enumerated() {
            for t in Set(e.capabilities.tools) { tools[t, default: []].append(i) }
            for p in Set(e.capabilities.prompts) { prompts[p, default: []].append(i) }
            for r in Set(e.capabilities.resources) {
                resources[r, default: []].append(i)
                lengths.insert(r.utf8.count)
            }
        }
        resourceLengths = lengths.sorted(by: >)
    }
}
