import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /openapi.json`, `GET /docs` (Swagger UI), `GET /redoc` (ReDoc); absent when `DOCS_ENABLED=false`.
///
/// The two UIs are static pages that load their JavaScript from a CDN and read `/openapi.json`; the server
/// itself serves only the document.
struct DocsController: Sendable {
    typealias Context = GatewayRequestContext

    let document: [UInt8]

    func addRoutes(to router: Router<Context>) {
        let document = ByteBuffer(bytes: self.document)
        router.get("openapi.json") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-cache"],
                body: .init(byteBuffer: document))
        }
        router.get("docs") { _, _ in Self.html(Self.swaggerUI) }
        router.get("redoc") { _, _ in Self.html(Self.redoc) }
    }

    static func html(_ page: String) -> Response {
        Response(
            status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: page)))
    }

    static let swaggerUI = """
        <!doctype html>
        <html lang="en">
        <head>
          <meta charset="utf-8">
          <title>Outbound dialer API</title>
          <link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
        </head>
        <body>
          <div id="swagger-ui"></div>
          <script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
          <script>
            window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
          </script>
        </body>
        </html>
        """

    static let redoc = """
        <!doctype html>
        <html lang="en">
        <head>
          <meta charset="utf-8">
          <title>Outbound dialer API</title>
        </head>
        <body>
          <redoc spec-url="/openapi.json"></redoc>
          <script src="https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js"></script>
        </body>
        </html>
        """
}
