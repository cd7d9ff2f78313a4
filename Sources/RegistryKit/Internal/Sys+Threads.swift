extension Sys {
    /// `body` on a new detached thread (`startThread`, the one thread launcher), or on the
    /// calling thread when none can be started: for work that must happen either way and ends
    /// by its own deadline (an async probe, a name lookup).
    static func runOnThreadOrInline(_ what: String, _ body: @escaping @Sendable () -> Void) {
        do throws(RegistryError) { try startThread(what, body) } catch { body() }
    }
}
