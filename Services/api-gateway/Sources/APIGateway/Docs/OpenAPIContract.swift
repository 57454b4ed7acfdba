import Foundation
import Yams

/// The gateway's API contract: `Docs/openapi.yaml` (OpenAPI 3.1), compiled into the binary and served as
/// `/openapi.json`, adapted to the configuration (see the file's header): a path marked `x-served-when` appears only
/// when its setting is on, the `context` schema and example follow `ALLOWED_CONTEXTS`, and the limits named in
/// descriptions are the configured ones. The markers themselves are not served.
///
/// Tests compare its operations with the router's routes, post every request example to a running gateway, and check
/// every response they see against it.
enum OpenAPIContract {
    /// What of the configuration shapes the served document.
    struct Options: Sendable {
        var benchBaselineRoute: Bool
        var allowedContexts: Set<String>
        var maxBodyBytes: Int
        var tokenRateLimit: GatewayConfiguration.RateLimit
    }

    /// The contract could not be read (a build that embedded a broken file).
    struct InvalidContract: Error, CustomStringConvertible {
        let reason: String
        var description: String { "the embedded openapi.yaml is not a usable OpenAPI document: \(reason)" }
    }

    /// The contract as shipped, parsed.
    static func contract() throws -> [String: Any] {
        let text = String(decoding: PackageResources.openapi_yaml, as: UTF8.self)
        guard let document = try Yams.load(yaml: text) as? [String: Any] else {
            throw InvalidContract(reason: "the top level is not a mapping")
        }
        return document
    }

    /// The document this gateway serves, as JSON bytes (sorted keys).
    static func json(_ options: Options) throws -> [UInt8] {
        let document = adapt(try contract(), to: options)
        let data = try JSONSerialization.data(
            withJSONObject: document, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
        return Array(data)
    }

    /// The contract adapted to `options`.
    static func adapt(_ contract: [String: Any], to options: Options) -> [String: Any] {
        var document = contract
        if var paths = document["paths"] as? [String: Any] {
            for (path, item) in paths {
                guard let setting = (item as? [String: Any])?["x-served-when"] as? String else { continue }
                if !isOn(setting, options) { paths.removeValue(forKey: path) }
            }
            document["paths"] = paths
        }
        let contexts = options.allowedContexts.sorted()
        let texts = [
            "{MAX_BODY_BYTES}": "\(options.maxBodyBytes)",
            "{TOKEN_RATE_LIMIT_COUNT}": "\(options.tokenRateLimit.count)",
            "{TOKEN_RATE_LIMIT_SECONDS}": "\(options.tokenRateLimit.seconds)",
            "{ALLOWED_CONTEXTS}": contexts.isEmpty
                ? "none (calls go to the worker's default)" : contexts.map { "`\($0)`" }.joined(separator: ", "),
        ]
        return adaptNode(document, contexts: contexts, texts: texts) as? [String: Any] ?? document
    }

    /// The contract's own annotations, resolved here and not served.
    private static let markers: Set<String> = ["x-served-when", "x-enum-from", "x-context-from"]

    private static func isOn(_ setting: String, _ options: Options) -> Bool {
        switch setting {
        case "BENCH_BASELINE_ROUTE": options.benchBaselineRoute
        default: false
        }
    }

    /// Walks the document: fills in configured values, and drops what the configuration leaves out.
    private static func adaptNode(_ node: Any, contexts: [String], texts: [String: String]) -> Any? {
        switch node {
        case var object as [String: Any]:
            if object["x-enum-from"] as? String == "ALLOWED_CONTEXTS" {
                // No allowed context: the only acceptable value is none at all.
                object["enum"] = contexts.isEmpty ? [""] : contexts
            }
            if object["x-context-from"] as? String == "ALLOWED_CONTEXTS" {
                guard let first = contexts.first else { return nil }
                if var value = object["value"] as? [String: Any] {
                    value["context"] = first
                    object["value"] = value
                }
            }
            var adapted: [String: Any] = [:]
            for (key, value) in object where !markers.contains(key) {
                if let value = adaptNode(value, contexts: contexts, texts: texts) { adapted[key] = value }
            }
            return adapted
        case let array as [Any]:
            return array.compactMap { adaptNode($0, contexts: contexts, texts: texts) }
        case var text as String:
            for (placeholder, value) in texts where text.contains(placeholder) {
                text = text.replacingOccurrences(of: placeholder, with: value)
            }
            return text
        default:
            return node
        }
    }
}
