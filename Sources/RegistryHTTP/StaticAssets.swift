import Foundation
import HTTPTypes
import Hummingbird

/// The status page's files (Sources/RegistryHTTP/Static), read once at start.
///
/// Found next to the executable (`peer-registry_RegistryHTTP.resources/Static`, where SwiftPM
/// copies them), else in the source tree this was built from. SwiftPM's `Bundle.module` is not
/// used: it stops the process when the bundle is missing, and a server should say so instead.
struct StaticAssets: Sendable {
    struct Asset: Sendable {
        var bytes: ByteBuffer
        var contentType: String
    }

    /// URL path → file; only these names are served (no path from a request reaches the disk).
    static let files: [(path: String, file: String, type: String)] = [
        ("/", "index.html", "text/html; charset=utf-8"),
        ("/status.js", "status.js", "text/javascript; charset=utf-8"),
        ("/status.css", "status.css", "text/css; charset=utf-8"),
    ]

    let assets: [String: Asset]
    /// Where the files were read from (nil: not found; the page says how to fix that).
    let directory: String?

    init(directory explicit: String? = nil) {
        let dir = explicit ?? Self.candidateDirectories().first { FileManager.default.fileExists(atPath: $0 + "/index.html") }
        var assets: [String: Asset] = [:]
        if let dir {
            for f in Self.files {
                if let data = FileManager.default.contents(atPath: dir + "/" + f.file) {
                    assets[f.path] = Asset(bytes: ByteBuffer(bytes: data), contentType: f.type)
                }
            }
        }
        if assets["/"] == nil {
            let page = """
                <!doctype html><meta charset="utf-8"><title>peer-registry</title>
                <p>The status page's files were not found (looked in: \(Self.candidateDirectories().joined(separator: ", "))).
                The API works: <a href="/servers">/servers</a>, <a href="/events">/events</a>, <a href="/healthz">/healthz</a>.</p>
                """
            assets["/"] = Asset(bytes: ByteBuffer(string: page), contentType: "text/html; charset=utf-8")
        }
        self.assets = assets
        self.directory = dir
    }

    static func candidateDirectories() -> [String] {
        var dirs: [String] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            let binDir = (exe as NSString).deletingLastPathComponent
            dirs.append(binDir + "/peer-registry_RegistryHTTP.resources/Static")
            dirs.append(binDir + "/peer-registry_RegistryHTTP.resources")
        }
        dirs.append((String(#filePath) as NSString).deletingLastPathComponent + "/Static")
        return dirs
    }

    /// The response for `path`, or nil when it is not one of the files.
    func response(for path: String) -> Response? {
        guard let asset = assets[path] else { return nil }
        var headers = HTTPFields()
        headers[.contentType] = asset.contentType
        headers[.cacheControl] = "no-cache"
        // The page shows data any local process wrote: no inline script, nothing from elsewhere.
        headers[.contentSecurityPolicy] = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: asset.bytes))
    }
}
