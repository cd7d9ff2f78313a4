import HTTPTypes
import Hummingbird
import RegistryKit

/// Applies a `ServerPolicy` to every request, in this order: one Host header, a loopback (or
/// allowed) Host, an allowed Origin, CORS preflight, then the token. Adds CORS headers to
/// allowed cross-origin answers and `X-Content-Type-Options: nosniff` to every answer, and turns
/// errors thrown by handlers into JSON answers.
///
/// The token (`AccessToken`): `Authorization: Bearer`, `?token=` or the cookie named after the
/// port in the request's Host. A `GET` of one of `cookiePaths` with `?token=` is answered with a
/// redirect to the same URL without the token and a `Set-Cookie` (HttpOnly, SameSite=Strict),
/// so the token leaves the address bar and the page's own requests carry the cookie.
public struct PolicyMiddleware<Context: RequestContext>: RouterMiddleware {
    public let policy: ServerPolicy
    public let allowedMethods: String
    public let allowedHeaders: String
    public let exposedHeaders: String?
    public let cookiePaths: Set<String>
    /// Appended to the 401 message: where the token is (e.g. the runtime file's path).
    public let tokenHint: String

    public init(policy: ServerPolicy, allowedMethods: String = "GET, HEAD, OPTIONS",
                allowedHeaders: String = "Accept, Authorization, Cache-Control, Content-Type, Last-Event-ID",
                exposedHeaders: String? = nil, cookiePaths: Set<String> = ["/"], tokenHint: String = "") {
        self.policy = policy
        self.allowedMethods = allowedMethods
        self.allowedHeaders = allowedHeaders
        self.exposedHeaders = exposedHeaders
        self.cookiePaths = cookiePaths
        self.tokenHint = tokenHint
    }

    static var hostHeader: HTTPField.Name { HTTPField.Name("Host")! }
    static var requestPrivateNetwork: HTTPField.Name { HTTPField.Name("Access-Control-Request-Private-Network")! }
    static var allowPrivateNetwork: HTTPField.Name { HTTPField.Name("Access-Control-Allow-Private-Network")! }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await decide(request, context: context, next: next)
        response.headers[.xContentTypeOptions] = "nosniff"
        return response
    }

    private func decide(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let host = request.head.authority
        // A second Host header (the first one became `authority`) is how request smuggling starts.
        guard request.headers[Self.hostHeader] == nil else {
            return PolicyResponse.error(.badRequest, "more than one Host header", code: "HTTP_BAD_REQUEST")
        }
        guard policy.access.allowsHost(host) else {
            let shown = host.map { "\"\($0.prefix(100))\"" } ?? "missing"
            return PolicyResponse.error(
                .forbidden,
                "Host \(shown) is not a loopback name (localhost, 127.0.0.1, [::1]); this server refuses other names to defeat DNS rebinding (--allow-host NAME adds one)",
                code: "HTTP_FORBIDDEN_HOST")
        }
        let origin = request.headers[.origin]
        if let origin, !policy.access.allowsOrigin(origin, host: host) {
            return PolicyResponse.error(
                .forbidden,
                "origin \"\(origin.prefix(200))\" is not allowed; only loopback origins are, unless the server is started with --allow-origin ORIGIN",
                code: "HTTP_FORBIDDEN_ORIGIN")
        }
        if request.method == .options {
            var response = Response(status: .noContent)
            response.headers[.allow] = allowedMethods
            if let origin, request.headers[.accessControlRequestMethod] != nil {
                addCORS(&response.headers, origin: origin)
                response.headers[.accessControlAllowMethods] = allowedMethods
                response.headers[.accessControlAllowHeaders] = allowedHeaders
                response.headers[.accessControlMaxAge] = "600"
                // Chrome's Private Network Access preflight, for pages on public origins that
                // --allow-origin let in.
                if request.headers[Self.requestPrivateNetwork]?.lowercased() == "true" {
                    response.headers[Self.allowPrivateNetwork] = "true"
                }
            }
            return response
        }
        var response: Response
        if let refusal = checkToken(request, host: host) {
            response = refusal
        } else {
            do {
                response = try await next(request, context)
            } catch let error as HTTPError {
                response = PolicyResponse.error(error.status, error.body ?? error.status.reasonPhrase, code: "HTTP_\(error.status.code)")
            } catch {
                context.logger.error("request failed", metadata: ["error": "\(error)", "path": "\(request.uri.path.prefix(200))"])
                response = PolicyResponse.error(.internalServerError, "internal error: \(error)", code: "HTTP_500")
            }
        }
        if let origin { addCORS(&response.headers, origin: origin) }
        return response
    }

    /// nil when the request may go on; else the answer (401, or the cookie-setting redirect).
    private func checkToken(_ request: Request, host: String?) -> Response? {
        let path = request.uri.path
        guard let token = policy.token else { return nil }
        let port = host.flatMap { AccessPolicy.splitHostPort($0)?.1 } ?? 80
        let cookieName = AccessToken.cookieName(port: port)
        let presented = AccessToken.presented(
            authorization: request.headers[.authorization], query: request.uri.query,
            cookies: request.headers[values: .cookie], cookieName: cookieName)
        let valid = presented.map { token.matches($0.0) } ?? false
        if valid, presented?.1 == .query, request.method == .get, cookiePaths.contains(path) {
            var response = Response(status: .seeOther)
            let rest = request.uri.query.flatMap(AccessToken.queryWithoutToken).map { "?" + $0 } ?? ""
            response.headers[.location] = path + rest
            response.headers[.setCookie] = "\(cookieName)=\(token.value); Path=/; HttpOnly; SameSite=Strict"
            response.headers[.cacheControl] = "no-store"
            response.headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
            return response
        }
        guard policy.needsToken(path), !valid else { return nil }
        let said = presented == nil ? "this server needs its token" : "wrong token"
        var response = PolicyResponse.error(
            .unauthorized,
            "\(said): open the URL the server printed (it ends in ?token=...), or send Authorization: Bearer <token>\(tokenHint)",
            code: "HTTP_UNAUTHORIZED")
        response.headers[.wwwAuthenticate] = "Bearer realm=\"peer-registry\""
        return response
    }

    private func addCORS(_ headers: inout HTTPFields, origin: String) {
        if policy.access.allowsAnyOrigin {
            headers[.accessControlAllowOrigin] = "*"
        } else {
            headers[.accessControlAllowOrigin] = origin
            headers[.vary] = "Origin"
        }
        if let exposedHeaders { headers[.accessControlExposeHeaders] = exposedHeaders }
    }
}

/// JSON answers of the policy layer: `{"error":"<message>","code":"<code>"}`.
public enum PolicyResponse {
    public static func error(_ status: HTTPResponse.Status, _ message: String, code: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "no-store"
        let body = JSONValue.object(JSONObject([("error", .string(message)), ("code", .string(code))])).jsonText + "\n"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }
}
