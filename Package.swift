// swift-tools-version:6.2
import PackageDescription

// RegistryKit is pure Swift on Glibc (no Foundation), so the self-contained libpeerregistry.so
// stays small. CRegistry holds only the C exports, checked against include/peer_registry.h by
// `@c @implementation`. The CLI and its HTTP/MCP dependencies live in their own targets.
let package = Package(
    name: "peer-registry",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "RegistryKit", targets: ["RegistryKit"]),
        .library(name: "peerregistry", type: .dynamic, targets: ["CRegistry"]),
        .executable(name: "peer-registry", targets: ["peer-registry"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .target(name: "CRegistryShims", path: "Sources/CRegistryShims"),
        .target(name: "RegistryKit", dependencies: ["CRegistryShims"]),
        .target(name: "CPeerRegistryHeader", path: "Sources/CPeerRegistryHeader"),
        .target(name: "CRegistry", dependencies: ["RegistryKit", "CPeerRegistryHeader"]),
        .executableTarget(
            name: "peer-registry",
            dependencies: ["RegistryKit", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // A small helper process for the multi-process tests (registers, lists, dies on cue).
        .executableTarget(name: "registry-crowd-worker", dependencies: ["RegistryKit"], path: "Tests/CrowdWorker"),
        .testTarget(name: "RegistryKitTests", dependencies: ["RegistryKit"]),
    ]
)
