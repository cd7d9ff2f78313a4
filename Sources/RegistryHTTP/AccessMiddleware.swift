import HTTPTypes
import Hummingbird

/// Applies the `AccessPolicy` to every request (Host check, then Origin check), answers CORS
/// preflight requests, adds the CORS headers to allowed cross-origin responses, and turns every
/// error into a JSON answer.
struct AccessMiddleware<Context: RequestContext>: RouterMiddleware {
    let policy: AccessPolicy

    static var hostHeader: HTTPField.Name { HTTPField.Name("Host")! }
    static var allowedMethods: String { "GET, HEAD, OPTIONS" }
    static var allowedHeaders: String { "Accept, Cache-Control, Content-Type, Last-Event-ID" }
    static var requestPrivateNetwork: HTTPField.Name { HTTPField.Name("Access-Control-Request-Private-Network")! }
    static var allowPrivateNetwork: HTTPField.Name { HTTPField.Name("Access-Control-Allow-Private-Network")! }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await decide(request, context: context, next: next)
        response.headers[.xContentTypeOptions] = "nosniff"
        return response
    }

    private func decide(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let host = request.head.authority
        // A second Host header (the first one became `authority`) is how request smuggling starts.
        guard request.headers[Self.hostHeader] == nil else {
            return HTTPJSON.error(.badRequest, "more than one Host header", code: "HTTP_BAD_REQUEST")
        }
        guard policy.allowsHost(host) else {
            let shown = host.map { "\"\($0.prefix(100))\"" } ?? "missing"
            return HTTPJSON.error(
                .forbidden,
                "Host \(shown) is not a loopback name (localhost, 127.0.0.1, [::1]); the registry server refuses other names to defeat DNS rebinding (serve --allow-host NAME adds one)",
                code: "HTTP_FORBIDDEN_HOST")
        }
        let origin = request.headers[.origin]
        if let origin, !policy.allowsOrigin(origin, host: host) {
            return HTTPJSON.error(
                .forbidden,
                "origin \"\(origin.prefix(200))\" is not allowed; only loopback origins are, unless the server is started with --allow-origin ORIGIN",
                code: "HTTP_FORBIDDEN_ORIGIN")
        }
        if request.method == .options {
            var response = Response(status: .noContent)
            response.headers[.allow] = Self.allowedMethods
            if let origin, request.headers[.accessControlRequestMethod] != nil {
                addCORS(&response.headers, origin: origin)
                response.headers[.accessControlAllowMethods] = Self.allowedMethods
                response.headers[.accessControlAllowHeaders] = Self.allowedHeaders
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
        do {
            response = try await next(request, context)
        } catch let error as HTTPError {
            response = HTTPJSON.error(error.status, error.body ?? error.status.reasonPhrase, code: "HTTP_\(error.status.code)")
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            response = HTTPJSON.error(.internalServerError, "internal error: \(error)", code: "HTTP_500")
        }
        if let origin { addCORS(&response.headers, origin: origin) }
        return response
    }

    private func addCORS(_ headers: inout HTTPFields, origin: String) {
        if policy.allowsAnyOrigin {
            headers[.accessControlAllowOrigin] = "*"
        } else {
            headers[.accessControlAllowOrigin] = origin
            headers[.vary] = "Origin"
        }
    }
}
