/// Who may talk to a server of this project and how much a client may cost it: the one place
/// where `serve`, `mcp --http`, the supervisor's bridges and the gateway get their rules
/// (docs/CLI.md, "Who may ask" and "Limits").
///
/// - `access`: which `Host` names are answered and which browser origins may read the answers
///   (loopback only unless widened).
/// - `token`: the secret every request must show (`AccessToken`); nil only where the embedding
///   program has its own authentication (tests, an in-process server). `publicPaths` (a page
///   shell that holds no data) and `openPaths` (data the operator chose to open, such as
///   `serve --open-legacy-registry`'s `/registry`) are answered without it.
/// - `limits`: connection cap, timeouts, per-client byte budget, shutdown deadline.
///
/// Use it with Hummingbird through `PolicyMiddleware` (Host, Origin, token, CORS) and
/// `PolicedServer` (connection guard and shutdown deadline).
public struct ServerPolicy: Sendable {
    public var access: AccessPolicy
    public var token: AccessToken?
    public var limits: ServerLimits
    /// Paths answered without the token (exact matches), e.g. the status page's static files.
    public var publicPaths: Set<String>
    /// Paths holding data that are answered without the token because the operator said so.
    public var openPaths: Set<String>

    public init(access: AccessPolicy = AccessPolicy(), token: AccessToken?, limits: ServerLimits = ServerLimits(),
                publicPaths: Set<String> = [], openPaths: Set<String> = []) {
        self.access = access
        self.token = token
        self.limits = limits
        self.publicPaths = publicPaths
        self.openPaths = openPaths
    }

    /// Refuses combinations that would let any web page read what the server holds: the origin
    /// `null` (sandboxed iframes and file:// pages of every site send it) or `*` on a path that
    /// needs no token.
    /// - Throws: `PolicyError` saying which option to drop.
    public func validate() throws(PolicyError) {
        let wide = access.allowedOrigins.filter { $0 == "null" || $0 == "*" }
        if let first = wide.first, token == nil || !openPaths.isEmpty {
            let open = token == nil ? "the server asks for no token" : "\(openPaths.sorted().joined(separator: ", ")) answer without the token"
            throw PolicyError("--allow-origin \(first) lets every web site's pages in (a sandboxed iframe's origin is null), and \(open): drop --allow-origin \(first) or the option that opens those paths")
        }
    }

    /// Whether `path` needs the token.
    public func needsToken(_ path: String) -> Bool {
        token != nil && !publicPaths.contains(path) && !openPaths.contains(path)
    }
}
