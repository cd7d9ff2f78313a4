// libFuzzer target (b): the entry validator — ServerEntry(jsonText:) as register uses it,
// ServerEntry(json:source:) for file and input entries, and the list filter parser.
// Invariants: FuzzChecks.entry (Checks.swift).
@_cdecl("peerreg_fuzz_entry")
public func fuzzEntry(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzChecks.entry(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}
