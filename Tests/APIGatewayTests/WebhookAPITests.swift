import CallDomain
import CallMessaging
import CallStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import TestSupport
import Testing
import Webhooks

@testable import APIGateway

/// Webhook endpoints, secrets, the delivery log and per-call status callbacks, through the HTTP API (every answer
/// is checked against the OpenAPI contract when the gateway stops).
@Suite(.timeLimit(.minutes(4)))
struct WebhookAPITests {
    @Test("an admin creates, lists, changes, rotates and deletes endpoints; the secret is shown only when made")
    func endpointLifecycle() async throws {
        try await GatewayHarness.run { gateway in
            let (_, admin) = try await gateway.user(.admin)
            let created = try await gateway.request(
                .post, "/api/v1/webhook-endpoints", token: admin,
                json: #"{"url":"https://hooks.example.com/calls","description":"crm","event_types":["call.completed"]}"#
            )
            #expect(created.status == .created)
            #expect(created.headers[.cacheControl] == "no-store")
            let id = try #require(created.json["id"] as? String)
            let secret = try #require(created.json["secret"] as? String)
            #expect(WebhookSecret(secret) != nil && secret.hasPrefix("whsec_"))
            #expect(created.json["event_types"] as? [String] == ["call.completed"])
            #expect((created.json["circuit"] as? [String: Any])?["state"] as? String == "closed")

            let listed = try await gateway.request(.get, "/api/v1/webhook-endpoints", token: admin)
            let endpoints = try #require(listed.json["webhook_endpoints"] as? [[String: Any]])
            #expect(endpoints.map { $0["id"] as? String } == [id])
            #expect(endpoints.first?["secret"] == nil, "a list never shows a secret")

            let changed = try await gateway.request(
                .patch, "/api/v1/webhook-endpoints/\(id)", token: admin, json: #"{"enabled":false,"event_types":[]}"#)
            #expect(changed.status == .ok)
            #expect(changed.json["enabled"] as? Bool == false)
            #expect((changed.json["disabled_reason"] as? String)?.contains("disabled by") == true)
            #expect(changed.json["event_types"] as? [String] == [])

            let rotated = try await gateway.request(
                .post, "/api/v1/webhook-endpoints/\(id)/rotate-secret", token: admin)
            #expect(rotated.status == .ok)
            let newSecret = try #require(rotated.json["secret"] as? String)
            #expect(newSecret != secret && WebhookSecret(newSecret) != nil)
            #expect(rotated.json["previous_secrets_expire_at"] is String)

            let audit = try await gateway.request(.get, "/api/v1/audit-events", token: admin)
            let actions = (audit.json["events"] as? [[String: Any]] ?? []).compactMap { $0["action"] as? String }
            #expect(
                Set(actions).isSuperset(
                    of: ["webhook_endpoint.created", "webhook_endpoint.updated", "webhook_secret.rotated"]))

            #expect(
                try await gateway.request(.delete, "/api/v1/webhook-endpoints/\(id)", token: admin).status == .noContent
            )
            #expect(
                try await gateway.request(.get, "/api/v1/webhook-endpoints/\(id)", token: admin).status == .notFound)
        }
    }

    @Test("URLs are checked: https only, no private or metadata address, no credentials (production policy)")
    func urlPolicy() async throws {
        try await GatewayHarness.run { gateway in
            let (_, admin) = try await gateway.user(.admin)
            for url in [
                "http://hooks.example.com/x", "https://127.0.0.1/x", "https://169.254.169.254/latest/meta-data",
                "https://[::1]/x", "https://localhost/x", "https://user:pw@hooks.example.com/x", "not a url",
                "https://10.0.0.5/x",
            ] {
                let response = try await gateway.request(
                    .post, "/api/v1/webhook-endpoints", token: admin, json: #"{"url":"\#(url)"}"#)
                #expect(response.status == .unprocessableContent, "\(url)")
                #expect(response.text.contains("url"), "\(url)")
            }
            let unknownType = try await gateway.request(
                .post, "/api/v1/webhook-endpoints", token: admin,
                json: #"{"url":"https://hooks.example.com/x","event_types":["call.queued"]}"#)
            #expect(unknownType.status == .unprocessableContent)
        }
    }

    @Test("with private targets allowed (development), a loopback http receiver is accepted")
    func developmentPolicy() async throws {
        try await GatewayHarness.run(environment: ["WEBHOOK_ALLOW_PRIVATE_TARGETS": "true"]) { gateway in
            let (_, admin) = try await gateway.user(.admin)
            let response = try await gateway.request(
                .post, "/api/v1/webhook-endpoints", token: admin, json: #"{"url":"http://127.0.0.1:9000/hooks"}"#)
            #expect(response.status == .created)
        }
    }

    @Test("webhooks need the webhooks scope; another organization's endpoints and deliveries are not found")
    func scopesAndIsolation() async throws {
        try await GatewayHarness.run { gateway in
            let (_, admin) = try await gateway.user(.admin)
            let (_, operatorToken) = try await gateway.user(.operator)
            let other = try await gateway.organization("other")
            let (_, otherAdmin) = try await gateway.user(.admin, organization: other.id)
            let created = try await gateway.request(
                .post, "/api/v1/webhook-endpoints", token: admin, json: #"{"url":"https://hooks.example.com/x"}"#)
            let id = try #require(created.json["id"] as? String)
            let forbidden = try await gateway.request(.get, "/api/v1/webhook-endpoints", token: operatorToken)
            #expect(forbidden.status == .forbidden)
            #expect(forbidden.text.contains("webhooks"))
            #expect(
                try await gateway.request(.post, "/api/v1/status-callback-secret", token: operatorToken).status
                    == .forbidden)
            for (method, path) in [
                (HTTPRequest.Method.get, "/api/v1/webhook-endpoints/\(id)"),
                (.patch, "/api/v1/webhook-endpoints/\(id)"), (.delete, "/api/v1/webhook-endpoints/\(id)"),
                (.post, "/api/v1/webhook-endpoints/\(id)/rotate-secret"),
                (.post, "/api/v1/webhook-endpoints/\(id)/test"),
                (.get, "/api/v1/webhook-endpoints/\(id)/deliveries"),
            ] {
                let response = try await gateway.request(
                    method, path, token: otherAdmin, json: method == .patch ? #"{"enabled":false}"# : nil)
                #expect(response.status == .notFound, "\(method) \(path)")
            }
            let otherList = try await gateway.request(.get, "/api/v1/webhook-endpoints", token: otherAdmin)
            #expect((otherList.json["webhook_endpoints"] as? [[String: Any]])?.isEmpty == true)
        }
    }

    @Test("a test message is queued for the endpoint, shown in its log, and can be sent again")
    func testMessageAndRedelivery() async throws {
        try await GatewayHarness.run { gateway in
            let (_, admin) = try await gateway.user(.admin)
            let created = try await gateway.request(
                .post, "/api/v1/webhook-endpoints", token: admin, json: #"{"url":"https://hooks.example.com/x"}"#)
            let id = try #require(created.json["id"] as? String)
            let test = try await gateway.request(.post, "/api/v1/webhook-endpoints/\(id)/test", token: admin)
            #expect(test.status == .accepted)
            #expect(test.json["event_type"] as? String == "webhook.test")
            #expect(test.json["state"] as? String == "pending")
            let deliveryID = try #require(test.json["id"] as? String)
            let log = try await gateway.request(
                .get, "/api/v1/webhook-endpoints/\(id)/deliveries?limit=10", token: admin)
            #expect((log.json["deliveries"] as? [[String: Any]])?.map { $0["id"] as? String } == [deliveryID])
            let detail = try await gateway.request(.get, "/api/v1/webhook-deliveries/\(deliveryID)", token: admin)
            #expect(detail.status == .ok)
            let payload = try #require(detail.json["payload"] as? String)
            let body = try #require(try JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any])
            #expect(body["type"] as? String == "webhook.test")
            #expect((detail.json["attempts"] as? [Any])?.isEmpty == true)
            let again = try await gateway.request(
                .post, "/api/v1/webhook-deliveries/\(deliveryID)/redeliver", token: admin)
            #expect(again.status == .accepted)
            let bad = try await gateway.request(
                .get, "/api/v1/webhook-endpoints/\(id)/deliveries?limit=0&before=x", token: admin)
            #expect(bad.status == .unprocessableContent)
        }
    }

    @Test("a call's status_callback needs the organization's callback secret, a valid URL and known statuses")
    func statusCallbacks() async throws {
        try await GatewayHarness.run { gateway in
            let (_, admin) = try await gateway.user(.admin)
            let body =
                #"{"to":"+15550100","status_callback":"https://crm.example.com/status","status_callback_events":["answered","completed"]}"#
            let noSecret = try await gateway.request(.post, "/api/v1/calls", token: admin, json: body)
            #expect(noSecret.status == .unprocessableContent)
            #expect(noSecret.text.contains("status-callback-secret"))

            let secret = try await gateway.request(.post, "/api/v1/status-callback-secret", token: admin)
            #expect(secret.status == .ok)
            #expect(WebhookSecret(try #require(secret.json["secret"] as? String)) != nil)

            let accepted = try await gateway.request(.post, "/api/v1/calls", token: admin, json: body)
            #expect(accepted.status == .accepted)
            let callID = try #require(accepted.json["id"] as? String)
            // The command carries the callback to the dialer.
            let messages = try await gateway.messages(on: gateway.topics.originate)
            let commands = try messages.map { try CallMessageDecoder.originate($0).0 }
            let command = try #require(commands.first { $0.callID.description == callID })
            #expect(command.statusCallback?.url == "https://crm.example.com/status")
            #expect(command.statusCallback?.events == [.answered, .completed])

            for (json, field) in [
                (#"{"to":"+15550100","status_callback":"http://crm.example.com/x"}"#, "status_callback"),
                (#"{"to":"+15550100","status_callback":"https://192.168.1.10/x"}"#, "status_callback"),
                (
                    #"{"to":"+15550100","status_callback":"https://crm.example.com/x","status_callback_events":["queued"]}"#,
                    "status_callback_events"
                ),
                (#"{"to":"+15550100","status_callback_events":["completed"]}"#, "status_callback_events"),
            ] {
                let response = try await gateway.request(.post, "/api/v1/calls", token: admin, json: json)
                #expect(response.status == .unprocessableContent, "\(json)")
                #expect(response.text.contains(field), "\(json)")
            }
        }
    }
}
