// libFuzzer target (a): the registry file decoder — RegistryDocument.decode, i.e. the strict
// JSON parser plus every entry validator — and the JSON parser/writer round trip.
// Invariants: FuzzChecks.document (Checks.swift).
@_cdecl("peerreg_fuzz_parser")
public func fuzzParser(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzChecks.document(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}
