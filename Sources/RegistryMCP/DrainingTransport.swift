import Logging
import MCP
import RegistryKit

import struct Foundation.Data

/// Wraps a transport so that the end of the input does not cut off answers still being made.
///
/// The SDK's server handles each request in a task of its own and stops its message loop as soon
/// as the transport's input ends, so `printf '<request>\n' | peer-registry mcp` would exit before
/// answering. This transport ends its input only once every request received has been answered
/// (or `drainTimeout` has passed: a cancelled request gets no answer).
actor DrainingTransport: MCP.Transport {
    private let inner: any MCP.Transport
    private let drainTimeout: Duration
    private var pending: Set<String> = []

    nonisolated let logger = Logger(label: "peer-registry.mcp", factory: { _ in SwiftLogNoOpLogHandler() })

    init(_ inner: any MCP.Transport, drainTimeout: Duration = .seconds(10)) {
        self.inner = inner
        self.drainTimeout = drainTimeout
    }

    func connect() async throws { try await inner.connect() }

    func disconnect() async { await inner.disconnect() }

    func send(_ data: Data) async throws {
        for id in Self.ids(in: data, requests: false) { pending.remove(id) }
        try await inner.send(data)
    }

    func receive() -> AsyncThrowingStream<Data, Swift.Error> {
        let (stream, continuation) = AsyncThrowingStream<Data, Swift.Error>.makeStream()
        let task = Task {
            do {
                for try await data in await inner.receive() {
                    for id in Self.ids(in: data, requests: true) { pending.insert(id) }
                    continuation.yield(data)
                }
                await drain()
                continuation.finish()
            } catch {
                await drain()
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    private func drain() async {
        let deadline = ContinuousClock.now + drainTimeout
        while !pending.isEmpty, ContinuousClock.now < deadline, !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// The ids of the requests (`requests: true`) or responses in a message or batch.
    static func ids(in data: Data, requests: Bool) -> [String] {
        guard let value = try? JSONValue.parse(String(decoding: data, as: UTF8.self)) else { return [] }
        let messages: [JSONValue] = value.arrayValue ?? [value]
        return messages.compactMap { message -> String? in
            guard case .object(let o) = message, let id = o["id"], id != .null else { return nil }
            let isRequest = o["method"] != nil
            let isResponse = o["result"] != nil || o["error"] != nil
            return (requests ? isRequest : isResponse) ? id.jsonText : nil
        }
    }
}
