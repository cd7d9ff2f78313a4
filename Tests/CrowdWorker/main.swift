// registry-crowd-worker: a helper process for the multi-process tests.
//
//   registry-crowd-worker crowd <registry> <worker> <iterations>
//       registers <worker>-<i> (lease) for i in 0..<iterations, listing, resolving and setting
//       health along the way, and unregisters every odd one again. Prints "ACK <id>" after each
//       registration returns and "UNREG <id>" after each unregistration, then "DONE", and keeps
//       its leases until stdin closes.
//   registry-crowd-worker hold <registry> <entry-json>
//       registers the entry, prints "ACK <id>", and holds it until stdin closes or it is killed.
//   registry-crowd-worker hold-many <registry> <json-array-file>
//       registers every entry of the array, prints "ACK <n>", holds them until stdin closes.
//   registry-crowd-worker write-loop <registry> <id>
//       registers and unregisters <id> in a loop until killed (for crash tests).
#if canImport(Glibc)
import Glibc
#endif
import RegistryKit

/// Writes one line straight to a descriptor: unbuffered, so a SIGKILL loses nothing printed.
func emit(_ line: String, to fd: Int32 = 1) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
}

func fail(_ message: String) -> Never {
    emit("registry-crowd-worker: \(message)", to: 2)
    exit(1)
}

func waitForStdinToClose() {
    var byte: UInt8 = 0
    while read(0, &byte, 1) > 0 {}
}

let args = CommandLine.arguments
if args.count == 2, args[1] == "default-path" {
    // Opens the default registry (no path): prints where it is and what it lists.
    do {
        let registry = try Registry()
        emit(registry.path)
        emit(String(try registry.list().servers.count))
        registry.close()
    } catch {
        fail("open default: \(error)")
    }
    exit(0)
}
guard args.count >= 3 else { fail("usage: crowd|hold|hold-many|write-loop <registry> ... | default-path") }
let registry: Registry
do {
    registry = try Registry(path: args[2])
} catch {
    fail("open: \(error)")
}

switch args[1] {
case "crowd":
    guard args.count == 5, let iterations = Int(args[4]) else { fail("usage: crowd <registry> <worker> <iterations>") }
    let worker = args[3]
    for i in 0..<iterations {
        let id = "\(worker)-\(i)"
        do {
            try registry.register(ServerEntry(
                id: id, name: "crowd \(worker)", url: "http://127.0.0.1:\(20000 + i)/mcp",
                capabilities: Capabilities(tools: ["tool-\(id)", "shared-\(worker)"]), metadata: ["worker": .string(worker), "i": .int(i)]))
            emit("ACK \(id)")
            _ = try registry.list()
            _ = try registry.resolveTool("tool-\(id)")
            try registry.setHealth(id, .healthy, message: "iteration \(i)")
            if i % 2 == 1 {
                try registry.unregister(id)
                emit("UNREG \(id)")
            }
        } catch {
            fail("\(id): \(error)")
        }
    }
    emit("DONE")
    waitForStdinToClose()
    registry.close()
case "hold":
    guard args.count == 4 else { fail("usage: hold <registry> <entry-json>") }
    do {
        let stored = try registry.register(json: args[3])
        emit("ACK \(stored.id)")
    } catch {
        fail("register: \(error)")
    }
    waitForStdinToClose()
    registry.close()
case "hold-many":
    // Registers each entry of a JSON array (one lease each), prints "ACK <n>", holds them until
    // stdin closes or it is killed (the cluster agent tests: many entries, one owner to kill).
    guard args.count == 4 else { fail("usage: hold-many <registry> <json-array-file>") }
    do {
        let fd = open(args[3], O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { fail("cannot open \(args[3])") }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        close(fd)
        guard case .array(let items) = try JSONValue.parse(String(decoding: bytes, as: UTF8.self)) else { fail("not a JSON array") }
        for item in items { try registry.register(json: item.jsonText) }
        emit("ACK \(items.count)")
    } catch {
        fail("hold-many: \(error)")
    }
    waitForStdinToClose()
    registry.close()
case "write-loop":
    guard args.count == 4 else { fail("usage: write-loop <registry> <id>") }
    emit("READY")
    var i = 0
    while true {
        do {
            try registry.register(ServerEntry(id: args[3], url: "http://127.0.0.1:\(30000 + i % 1000)/mcp"))
            try registry.unregister(args[3])
        } catch {
            fail("write-loop: \(error)")
        }
        i += 1
    }
default:
    fail("unknown mode \(args[1])")
}
