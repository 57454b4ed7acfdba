import DevStack
import Foundation
import Webhooks

/// Subscribes `devstack up`'s local receiver through the API, as a client would: a webhook endpoint for every call
/// event of the admin's organization, and the organization's status callback secret, so that `status_callback`
/// URLs pointing at the receiver verify too.
enum DevWebhooks {
    /// How the endpoint is recognised (and replaced) on the next `up`.
    static let description = "devstack local receiver"

    static func subscribe(receiver: WebhookReceiver, url: String, apiURL: String, adminPassword: String) async throws {
        let token = try string(
            try call(
                [
                    "-X", "POST", "\(apiURL)/api/v1/auth/token", "-d", "username=admin", "--data-urlencode",
                    "password=\(adminPassword)",
                ]), "access_token")
        let auth = ["-H", "Authorization: Bearer \(token)"]
        let listed = try call(auth + ["\(apiURL)/api/v1/webhook-endpoints"])
        for endpoint in listed["webhook_endpoints"] as? [[String: Any]] ?? []
        where endpoint["description"] as? String == description {
            if let id = endpoint["id"] as? String {
                _ = try Command.run(
                    "/usr/bin/env",
                    ["curl", "-s", "-X", "DELETE"] + auth + ["\(apiURL)/api/v1/webhook-endpoints/\(id)"])
            }
        }
        let body = String(
            decoding: try JSONSerialization.data(withJSONObject: ["url": url, "description": description]),
            as: UTF8.self)
        let created = try call(
            auth + [
                "-X", "POST", "-H", "Content-Type: application/json", "-d", body,
                "\(apiURL)/api/v1/webhook-endpoints",
            ])
        let callbacks = try call(auth + ["-X", "POST", "\(apiURL)/api/v1/status-callback-secret"])
        let secrets = try [string(created, "secret"), string(callbacks, "secret")].map { text in
            guard let secret = WebhookSecret(text) else { throw DevStackError("the API returned a malformed secret") }
            return secret
        }
        receiver.setSecrets(secrets)
    }

    private static func call(_ arguments: [String]) throws -> [String: Any] {
        let result = try Command.run("/usr/bin/env", ["curl", "-s", "--max-time", "10"] + arguments)
        guard result.status == 0,
            let object = try? JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any]
        else {
            throw DevStackError("setting up the webhook receiver failed: \(result.output)")
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
