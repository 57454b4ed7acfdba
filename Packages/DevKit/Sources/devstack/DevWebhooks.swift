import DevStack
import Foundation
import NIOHTTP1
import Webhooks

/// Subscribes `devstack up`'s local receiver through the API, as a client would: a webhook endpoint for every call
/// event of the admin's organization, and the organization's status callback secret, so that `status_callback`
/// URLs pointing at the receiver verify too.
enum DevWebhooks {
    /// How the endpoint is recognised (and replaced) on the next `up`.
    static let description = "devstack local receiver"

    static func subscribe(receiver: WebhookReceiver, url: String, apiURL: String, adminPassword: String) async throws {
        // Form encoding: everything but unreserved characters percent-encoded ('+' would read as a space).
        let unreserved = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        let password = adminPassword.addingPercentEncoding(withAllowedCharacters: unreserved) ?? ""
        let login = try await object(
            .POST, "\(apiURL)/api/v1/auth/token", body: "username=admin&password=\(password)",
            contentType: "application/x-www-form-urlencoded")
        let token = try string(login, "access_token")
        let listed = try await object(.GET, "\(apiURL)/api/v1/webhook-endpoints", token: token)
        for endpoint in listed["webhook_endpoints"] as? [[String: Any]] ?? []
        where endpoint["description"] as? String == description {
            if let id = endpoint["id"] as? String {
                _ = try await ControlHTTP.request(.DELETE, "\(apiURL)/api/v1/webhook-endpoints/\(id)", token: token)
            }
        }
        let body = String(
            decoding: try JSONSerialization.data(withJSONObject: ["url": url, "description": description]),
            as: UTF8.self)
        let created = try await object(
            .POST, "\(apiURL)/api/v1/webhook-endpoints", token: token, body: body, contentType: "application/json")
        let callbacks = try await object(.POST, "\(apiURL)/api/v1/status-callback-secret", token: token)
        let secrets = try [string(created, "secret"), string(callbacks, "secret")].map { text in
            guard let secret = WebhookSecret(text) else { throw DevStackError("the API returned a malformed secret") }
            return secret
        }
        receiver.setSecrets(secrets)
    }

    /// A setup call whose answer must be a 2xx JSON object.
    private static func object(
        _ method: HTTPMethod, _ url: String, token: String? = nil, body: String? = nil, contentType: String? = nil
    ) async throws -> [String: Any] {
        let answer = try await ControlHTTP.json(url, method: method, token: token, body: body, contentType: contentType)
        guard let object = answer as? [String: Any] else {
            throw DevStackError("setting up the webhook receiver failed: \(method) \(url) answered \(answer)")
        }
        return object
    }

    private static func string(_ object: [String: Any], _ key: String) throws -> String {
        guard let value = object[key] as? String else {
            throw DevStackError("setting up the webhook receiver failed: no \(key) in \(object)")
        }
        return value
    }
}
