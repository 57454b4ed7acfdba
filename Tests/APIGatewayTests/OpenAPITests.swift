import CallDomain
import CallStore
import EmbeddedKafka
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import NIOHTTP1
import TestSupport
import Testing

@testable import APIGateway

/// The served OpenAPI document describes the real server: the same routes, valid OpenAPI 3.1, and examples
/// that the server accepts.
@Suite struct OpenAPITests {
    /// `METHOD /path` of every operation in the document.
    static func operations(_ document: [String: Any]) -> Set<String> {
        var operations: Set<String> = []
        for (path, item) in document["paths"] as? [String: Any] ?? [:] {
            for method in (item as? [String: Any] ?? [:]).keys {
                operations.insert("\(method.uppercased()) \(path)")
            }
        }
        return operations
    }

    @Test(arguments: [false, true])
    func theDocumentEqualsTheRoutesAndValidates(bench: Bool) async throws {
        try await GatewayHarness.run(environment: ["BENCH_BASELINE_ROUTE": bench ? "true" : "false"]) { gateway in
            let response = try await gateway.request(.get, "/openapi.json")
            #expect(response.status == .ok)
            let document = response.json
            #expect(document["openapi"] as? String == "3.1.0")
            let documented = Self.operations(document)
            #expect(
                documented == gateway.routes,
                """
                only in the document: \(documented.subtracting(gateway.routes).sorted())
                only in the router: \(gateway.routes.subtracting(documented).sorted())
                """)
            #expect(gateway.routes.contains("POST /bench/baseline/calls") == bench)

            let file = FileManager.default.temporaryDirectory.appendingPathComponent("openapi-\(UUID()).json")
            try Data(response.body.readableBytesView).write(to: file)
            defer { try? FileManager.default.removeItem(at: file) }
            let (status, output) = try await Python.run([Repository.path("scripts/check_openapi.py"), file.path])
            #expect(status == 0, "openapi-spec-validator: \(output)")
            #expect(output.trimmingCharacters(in: .whitespacesAndNewlines) == "ok")
        }
    }

    @Test func everyRequestExampleIsAcceptedByTheServer() async throws {
        try await GatewayHarness.run(environment: ["BENCH_BASELINE_ROUTE": "true"]) { gateway in
            _ = try await gateway.user(.operator, name: "operator1")
            let (_, adminToken) = try await gateway.user(.admin, platformOperator: true)
            let (_, operatorToken) = try await gateway.user(.operator)
            let (target, _) = try await gateway.user(.viewer)
            let document = try await gateway.request(.get, "/openapi.json").json
            var posted = 0
            for (path, item) in document["paths"] as? [String: Any] ?? [:] {
                for (method, operation) in item as? [String: Any] ?? [:] {
                    let operation = operation as? [String: Any] ?? [:]
                    let content = (operation["requestBody"] as? [String: Any])?["content"] as? [String: Any] ?? [:]
                    for (media, mediaObject) in content {
                        let examples = (mediaObject as? [String: Any])?["examples"] as? [String: Any] ?? [:]
                        for (name, example) in examples {
                            let value = (example as? [String: Any])?["value"] ?? [:]
                            let body: String
                            if media == "application/x-www-form-urlencoded" {
                                let fields = (value as? [String: String] ?? [:]).sorted { $0.key < $1.key }
                                body = fields.map { field in
                                    let encoded = field.value.addingPercentEncoding(
                                        withAllowedCharacters: .alphanumerics)
                                    return "\(field.key)=\(encoded ?? "")"
                                }.joined(separator: "&")
                            } else {
                                body = String(
                                    decoding: try JSONSerialization.data(withJSONObject: value), as: UTF8.self)
                            }
                            let id =
                                path.hasPrefix("/api/v1/organizations/")
                                ? OrganizationID.default.description : target.id.uuidString.lowercased()
                            let uri = path.replacingOccurrences(of: "{id}", with: id)
                            var headers: HTTPFields = [.contentType: media]
                            let security = operation["security"] as? [[String: Any]] ?? []
                            if !security.isEmpty {
                                let token = path.hasPrefix("/api/v1/calls") ? operatorToken : adminToken
                                headers[.authorization] = "Bearer \(token)"
                            }
                            let response = try await gateway.request(
                                HTTPRequest.Method(method.uppercased())!, uri, headers: headers, body: body)
                            #expect(
                                (200..<300).contains(Int(response.status.code)),
                                "\(method.uppercased()) \(path) \(name) (\(media)): \(response.status) \(response.text)"
                            )
                            posted += 1
                        }
                    }
                }
            }
            #expect(posted >= 9, "the document has examples for tokens, calls, users and the bench route")
        }
    }
}
