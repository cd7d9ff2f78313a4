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
        tools.reserveCapacity(servers.count * 2)
        prompts.reserveCapacity(servers.count)
        resources.reserveCapacity(servers.count)
        // Entries are read in place, not copied (a ServerEntry copy retains every field), and
        // a name an entry declares twice is recorded once: its index is then the table's last.
        func add(_ name: String, _ i: Int, to table: inout [String: [Int]]) {
            table[name, default: []].appendUnlessLast(i)
        }
        for i in servers.indices {
            for t in servers[i].capabilities.tools { add(t, i, to: &tools) }
            for p in servers[i].capabilities.prompts { add(p, i, to: &prompts) }
            for r in servers[i].capabilities.resources {
                add(r, i, to: &resources)
                lengths.insert(r.utf8.count)
            }
        }
        resourceLengths = lengths.sorted(by: >)
    }
}

extension Array where Element == Int {
    fileprivate mutating func appendUnlessLast(_ i: Int) {
        if last != i { append(i) }
    }
}
