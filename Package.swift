// swift-tools-version:6.2
import PackageDescription

// RegistryKit is pure Swift on Glibc (no Foundation), so the self-contained libpeerregistry.so
// stays small. CRegistry holds only the C exports, checked against include/peer_registry.h by
// `@c @implementation`. The HTTP/SSE server and the MCP server are libraries of their own, used
// by the peer-registry CLI and tested directly.
//
// Linux only (glibc, x86_64 and arm64): the core is built on Glibc, inotify, epoll, timerfd,
// flock and /proc, with no other platform's branch. There is no `platforms:` list because
// SwiftPM has none for "Linux only" (it lists Apple platforms' minimum versions); on macOS the
// build stops at the first `import Glibc`.
let package = Package(
    name: "peer-registry",
    products: [
        .library(name: "RegistryKit", targets: ["RegistryKit"]),
        .library(name: "peerregistry", type: .dynamic, targets: ["CRegistry"]),
        .executable(name: "peer-registry", targets: ["peer-registry"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk", from: "0.12.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        // The core.
        .target(name: "CRegistryShims", path: "Sources/CRegistryShims"),
        .target(name: "RegistryKit", dependencies: ["CRegistryShims"]),
        // The C ABI.
        .target(name: "CPeerRegistryHeader", path: "Sources/CPeerRegistryHeader"),
        .target(name: "CRegistry", dependencies: ["RegistryKit", "CPeerRegistryHeader"], exclude: ["peerregistry.map"]),
        // What every server of this project applies to its clients: token auth, Host/Origin
        // rules, connection cap, timeouts, per-client byte budgets, shutdown deadline.
        .target(
            name: "RegistryServerPolicy",
            dependencies: [
                "RegistryKit",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Servers built on the core.
        .target(
            name: "RegistryHTTP",
            dependencies: ["RegistryKit", "RegistryServerPolicy", .product(name: "Hummingbird", package: "hummingbird")],
            resources: [.copy("Static")]
        ),
        .target(name: "RegistryMCP", dependencies: [
            "RegistryKit", "RegistryServerPolicy", .product(name: "MCP", package: "swift-sdk"),
            .product(name: "Hummingbird", package: "hummingbird"), .product(name: "NIOCore", package: "swift-nio"),
        ]),
        // The supervisor of stdio servers and the gateway: upstream MCP sessions (stdio
        // processes, and streamable HTTP and legacy SSE servers through AsyncHTTPClient), process
        // supervision, HTTP bridges (streamable and legacy SSE), the gateway's catalog and routing. CSupervisorShims does what Swift cannot
        // between fork and exec (PR_SET_PDEATHSIG, process groups, a long-lived forking thread).
        .target(name: "CSupervisorShims", path: "Sources/CSupervisorShims"),
        .target(
            name: "RegistryGateway",
            dependencies: [
                "RegistryKit", "CSupervisorShims", "RegistryServerPolicy", "RegistryMCP",
                .product(name: "MCP", package: "swift-sdk"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The cluster agent (docs/CLUSTER.md): etcd's v3 JSON gateway over AsyncHTTPClient.
        .target(
            name: "RegistryCluster",
            dependencies: [
                "RegistryKit",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The CLI.
        .executableTarget(
            name: "peer-registry",
            dependencies: [
                "RegistryKit", "RegistryHTTP", "RegistryMCP", "RegistryServerPolicy", "RegistryGateway", "RegistryCluster",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // A small helper process for the multi-process tests (registers, lists, dies on cue).
        .executableTarget(name: "registry-crowd-worker", dependencies: ["RegistryKit"], path: "Tests/CrowdWorker"),
        // The Swift runner of the cross-language conformance cases (tests/conformance/).
        .executableTarget(name: "registry-conformance", dependencies: ["RegistryKit"], path: "tests/conformance/swift"),
        .testTarget(name: "RegistryKitTests", dependencies: ["RegistryKit"]),
        .testTarget(name: "RegistryHTTPTests", dependencies: ["RegistryHTTP", "RegistryKit", "RegistryServerPolicy"]),
        .testTarget(name: "RegistryGatewayTests", dependencies: ["RegistryGateway", "RegistryKit"]),
        .testTarget(name: "RegistryMCPTests", dependencies: ["RegistryMCP", "RegistryKit", .product(name: "MCP", package: "swift-sdk")]),
    ]
)
