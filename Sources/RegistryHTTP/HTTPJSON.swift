import Hummingbird
import RegistryKit

/// JSON responses, written with RegistryKit's own encoder (the same bytes the C ABI hands out).
enum HTTPJSON {
    static let contentType = "application/json; charset=utf-8"

    /// A JSON response; `no-store` because the registry changes at any moment.
    static func response(_ status: HTTPResponse.Status = .ok, _ text: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text + "\n")))
    }

    /// A JSON response whose bytes (newline included) are already encoded, and may be shared.
    static func response(_ status: HTTPResponse.Status = .ok, bytes: ByteBuffer) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: bytes))
    }

    /// `{"error":"<message>","code":"<code>"}`.
    static func errorBody(_ message: String, code: String) -> String {
        JSONValue.object(JSONObject([("error", .string(message)), ("code", .string(code))])).jsonText
    }

    static func error(_ status: HTTPResponse.Status, _ message: String, code: String) -> Response {
        response(status, errorBody(message, code: code))
    }

    /// A registry error as a response: 400 bad argument or limit, 404 not found, 409 exists or
    /// ambiguous, 503 when the registry cannot be read (corrupt, permissions, I/O, lock timeout).
    static func error(_ error: RegistryError) -> Response {
        Self.error(status(for: error.code), error.message, code: error.code.name)
    }

    static func status(for code: RegistryError.Code) -> HTTPResponse.Status {
        switch code {
        case .invalid, .limit: .badRequest
        case .notFound: .notFound
        case .exists, .ambiguous: .conflict
        case .corrupt, .io, .permission, .timeout, .closed: .serviceUnavailable
        }
    }
}
