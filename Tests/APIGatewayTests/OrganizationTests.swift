import CallDomain
import CallStore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Kafka
import NIOHTTP1
import PostgresNIO
import TestSupport
import Testing

@testable import APIGateway

/// Organizations, API keys, scopes and the audit log, through the HTTP API.
@Suite(.timeLimit(.minutes(4)))
struct OrganizationTests {
    @Test("another organization's calls, users, keys, audit entries and events are not found, never forbidden")
    func isolationAcrossEveryEndpoint() async throws {
        try await GatewayHarness.run { gateway in
            let acme = try await gateway.organization("acme")
            let (acmeAdmin, acmeToken) = try await gateway.user(.admin, organization: acme.id)
            let (_, intruder) = try await gateway.user(.admin)  // an admin of the default organization
            _ = try await gateway.statusReader.waitUntilReady()
            let history = HistorySimulator(gateway: gateway)
            let acmeCall = CallID.generate()
            let ownCall = CallID.generate()
            let number = "15550100777"

            // Acme's resources: a call, a key, audit entries.
            let created = try await gateway.request(
                .post, "/api/v1/api-keys", token: acmeToken, json: #"{"name":"crm","scopes":["calls:read"]}"#)
            #expect(created.status == .created)
            let acmeKeyID = try #require(created.json["id"] as? String)

            try await gateway.withPublisher { publisher in
                try await history.record(
                    callID: acmeCall, to: number, statuses: [.dispatched], publish: publisher, organization: acme.id)
                try await history.record(callID: ownCall, to: number, statuses: [.dispatched], publish: publisher)

                // Every endpoint that names a resource answers 404 to the other organization, as for an unknown id.
                let named: [(HTTPRequest.Method, String, String?)] = [
                    (.get, "/api/v1/calls/\(acmeCall)", nil),
                    (.post, "/api/v1/calls/\(acmeCall)/hangup", nil),
                    (.patch, "/api/v1/users/\(acmeAdmin.id.uuidString.lowercased())", #"{"disabled":true}"#),
                    (.patch, "/api/v1/users/\(acmeAdmin.id.uuidString.lowercased())", #"{"role":"viewer"}"#),
                    (.delete, "/api/v1/users/\(acmeAdmin.id.uuidString.lowercased())", nil),
                    (.delete, "/api/v1/api-keys/\(acmeKeyID)", nil),
                ]
                for (method, path, json) in named {
                    let response = try await gateway.request(method, path, token: intruder, json: json)
                    #expect(response.status == .notFound, "\(method) \(path)")
                    #expect(!response.text.contains(number) && !response.text.contains("acme"), "\(method) \(path)")
                }
                let stream = try await SSEConnection.open(
                    port: gateway.port, path: "/api/v1/calls/\(acmeCall)/events", token: intruder)
                #expect(stream.status == .notFound)
                await stream.close()

                // Lists and filters hold only the caller's own.
                for query in ["", "?to=\(number)", "?status=dispatched", "?limit=200"] {
                    let list = try await gateway.request(.get, "/api/v1/calls\(query)", token: intruder)
                    let ids = (list.json["calls"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
                    #expect(ids == [ownCall.description], "GET /api/v1/calls\(query)")
                }
                let users = try await gateway.request(.get, "/api/v1/users", token: intruder)
                let names = (users.json["users"] as? [[String: Any]] ?? []).compactMap { $0["username"] as? String }
                #expect(!names.contains(acmeAdmin.username))
                let keys = try await gateway.request(.get, "/api/v1/api-keys", token: intruder)
                #expect((keys.json["api_keys"] as? [[String: Any]])?.isEmpty == true)
                let audit = try await gateway.request(.get, "/api/v1/audit-events", token: intruder)
                let targets = (audit.json["events"] as? [[String: Any]] ?? []).compactMap { $0["target_id"] as? String }
                #expect(!targets.contains(acmeKeyID) && !targets.contains(acmeAdmin.id.uuidString.lowercased()))

                // The all-calls stream carries only the caller's organization's events.
                let intruderStream = try await SSEConnection.open(
                    port: gateway.port, path: "/api/v1/events", token: intruder)
                let acmeStream = try await SSEConnection.open(
                    port: gateway.port, path: "/api/v1/events", token: acmeToken)
                try await history.record(
                    callID: acmeCall, statuses: [.initiated], publish: publisher, organization: acme.id)
                try await history.record(callID: ownCall, statuses: [.initiated], publish: publisher)
                let intruderFrame = try #require(try await intruderStream.next())
                #expect(try EventsTests.event(intruderFrame).callID == ownCall)
                let acmeFrame = try #require(try await acmeStream.next())
                #expect(try EventsTests.event(acmeFrame).callID == acmeCall)
                #expect(try EventsTests.event(acmeFrame).organizationID == acme.id)
                await intruderStream.close()
                await acmeStream.close()
            }

            // Acme's own admin still sees everything of Acme, untouched by the attempts.
            let own = try await gateway.request(.get, "/api/v1/calls/\(acmeCall)", token: acmeToken)
            #expect(own.status == .ok)
            let acmeKeys = try await gateway.request(.get, "/api/v1/api-keys", token: acmeToken)
            let acmeKey = try #require((acmeKeys.json["api_keys"] as? [[String: Any]])?.first)
            #expect(acmeKey["revoked_at"] is NSNull)
            #expect(try await gateway.store.user(id: acmeAdmin.id)?.disabled == false)
        }
    }

    @Test("an API key authenticates directly, holds only its scopes, is shown once and stops working when revoked")
    func apiKeyLifecycle() async throws {
        try await GatewayHarness.run { gateway in
            let (_, admin) = try await gateway.user(.admin)
            let created = try await gateway.request(
                .post, "/api/v1/api-keys", token: admin,
                json: #"{"name":"reporting","scopes":["calls:read"],"expires_at":"2099-01-01T00:00:00Z"}"#)
            #expect(created.status == .created)
            #expect(created.headers[.cacheControl] == "no-store")
            let key = try #require(created.json["key"] as? String)
            let id = try #require(created.json["id"] as? String)
            #expect(key.hasPrefix("dk_"))
            #expect(key.hasPrefix(try #require(created.json["prefix"] as? String)))
            // Only the hash is stored.
            let stored = try #require(try await gateway.store.apiKeys(in: .default).first)
            #expect(stored.keyHash.count == 32)
            #expect(stored.lastUsedAt == nil)

            let read = try await gateway.request(.get, "/api/v1/calls", token: key)
            #expect(read.status == .ok)
            let write = try await gateway.postCall(#"{"to":"15550100001"}"#, token: key)
            #expect(write.status == .forbidden)
            #expect(write.text.contains("calls:write"))
            let users = try await gateway.request(.get, "/api/v1/users", token: key)
            #expect(users.status == .forbidden)
            #expect(try await gateway.store.apiKeys(in: .default).first?.lastUsedAt != nil)

            // The list never shows the secret.
            let list = try await gateway.request(.get, "/api/v1/api-keys", token: admin)
            #expect(!list.text.contains(key))
            #expect((list.json["api_keys"] as? [[String: Any]])?.first?["key"] == nil)

            // A tampered key (same lookup id, other secret) and an unknown one are refused alike.
            let tampered = String(key.dropLast()) + (key.hasSuffix("A") ? "B" : "A")
            #expect(try await gateway.request(.get, "/api/v1/calls", token: tampered).status == .unauthorized)
            #expect(try await gateway.request(.get, "/api/v1/calls", token: "dk_nonsense").status == .unauthorized)

            // Revocation applies to the very next request.
            #expect(try await gateway.request(.delete, "/api/v1/api-keys/\(id)", token: admin).status == .noContent)
            let afterRevoke = try await gateway.request(.get, "/api/v1/calls", token: key)
            #expect(afterRevoke.status == .unauthorized)
            #expect(afterRevoke.headers[.wwwAuthenticate] != nil)
        }
    }

    @Test("a key places calls with calls:write, in its organization; an expired key is refused")
    func keyPlacesCallsInItsOrganization() async throws {
        try await GatewayHarness.run { gateway in
            let acme = try await gateway.organization("acme")
            let (_, admin) = try await gateway.user(.admin, organization: acme.id)
            let created = try await gateway.request(
                .post, "/api/v1/api-keys", token: admin, json: #"{"name":"dialer","scopes":["calls:write"]}"#)
            let key = try #require(created.json["key"] as? String)
            let accepted = try await gateway.postCall(#"{"to":"15550100001"}"#, token: key)
            #expect(accepted.status == .accepted)
            let messages = try await gateway.messages(on: gateway.topics.originate)
            let command = try WireCoding.decode(
                OriginateCommand.self, from: Array(try #require(messages.last).value))
            #expect(command.organizationID == acme.id)
            #expect(command.requestedBy == "api-key:dialer")
            // Reading needs calls:read, which this key lacks.
            #expect(try await gateway.request(.get, "/api/v1/calls", token: key).status == .forbidden)

            // A key past its expiry is refused (its expiry is set in the past behind the API's back).
            try await gateway.store.client.query("UPDATE api_keys SET expires_at = now() - interval '1 second'")
            #expect(try await gateway.request(.get, "/api/v1/calls", token: key).status == .unauthorized)

            // A key cannot be given scopes its creator lacks, nor unknown ones.
            let (_, operatorToken) = try await gateway.user(.operator, organization: acme.id)
            let denied = try await gateway.request(
                .post, "/api/v1/api-keys", token: operatorToken, json: #"{"name":"x","scopes":["calls:read"]}"#)
            #expect(denied.status == .forbidden)
            let invalid = try await gateway.request(
                .post, "/api/v1/api-keys", token: admin,
                json: #"{"name":"x","scopes":["calls:everything"],"expires_at":"2001-01-01T00:00:00Z"}"#)
            #expect(invalid.status == .unprocessableContent)
            #expect(Set(invalid.errorFields) == ["scopes", "expires_at"])
        }
    }

    @Test("platform operators create organizations; an organization's admin does not; names are unique")
    func organizationsAreCreatedByPlatformOperators() async throws {
        try await GatewayHarness.run { gateway in
            let (_, platform) = try await gateway.user(.admin, platformOperator: true)
            let (_, admin) = try await gateway.user(.admin)
            let name = "bpo-client-\(UInt32.random(in: 0...UInt32.max))"
            let created = try await gateway.request(
                .post, "/api/v1/organizations", token: platform, json: #"{"name":"\#(name)"}"#)
            #expect(created.status == .created)
            #expect(created.json["name"] as? String == name)
            let again = try await gateway.request(
                .post, "/api/v1/organizations", token: platform, json: #"{"name":"\#(name)"}"#)
            #expect(again.status == .conflict)
            #expect(again.problemType == "https://outbound-dialer.example/problems/organization-name-taken")
            let refused = try await gateway.request(
                .post, "/api/v1/organizations", token: admin, json: #"{"name":"other"}"#)
            #expect(refused.status == .forbidden)
            #expect(try await gateway.request(.get, "/api/v1/organizations", token: admin).status == .forbidden)
            let list = try await gateway.request(.get, "/api/v1/organizations", token: platform)
            let names = (list.json["organizations"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
            #expect(names.contains(name) && names.contains("default"))
            let invalid = try await gateway.request(
                .post, "/api/v1/organizations", token: platform, json: #"{"name":"no spaces please"}"#)
            #expect(invalid.status == .unprocessableContent)
        }
    }

    @Test("user, role and key changes are in the organization's audit log with actor and request id")
    func auditLogRecordsSecurityChanges() async throws {
        try await GatewayHarness.run { gateway in
            let (admin, adminToken) = try await gateway.user(.admin)
            let created = try await gateway.request(
                .post, "/api/v1/users", token: adminToken, json: #"{"username":"audited-user","role":"viewer"}"#,
                headers: [HTTPField.Name("X-Request-ID")!: "req-audit-1"])
            let userID = try #require(created.json["id"] as? String)
            let promoted = try await gateway.request(
                .patch, "/api/v1/users/\(userID)", token: adminToken, json: #"{"role":"operator"}"#)
            #expect(promoted.json["role"] as? String == "operator")
            let key = try await gateway.request(
                .post, "/api/v1/api-keys", token: adminToken, json: #"{"name":"k","scopes":["calls:read"]}"#)
            let keyID = try #require(key.json["id"] as? String)
            _ = try await gateway.request(.delete, "/api/v1/api-keys/\(keyID)", token: adminToken)
            _ = try await gateway.request(.delete, "/api/v1/users/\(userID)", token: adminToken)

            let audit = try await gateway.request(.get, "/api/v1/audit-events?limit=5", token: adminToken)
            #expect(audit.status == .ok)
            let events = audit.json["events"] as? [[String: Any]] ?? []
            #expect(
                events.compactMap { $0["action"] as? String } == [
                    "user.deleted", "api_key.revoked", "api_key.created", "user.role_changed", "user.created",
                ])
            #expect(events.allSatisfy { $0["actor"] as? String == admin.username })
            let creation = try #require(events.last)
            #expect(creation["request_id"] as? String == "req-audit-1")
            #expect((creation["detail"] as? [String: String])?["role"] == "viewer")
            let change = try #require(events.first { $0["action"] as? String == "user.role_changed" })
            #expect(
                change["detail"] as? [String: String] == [
                    "username": "audited-user", "from": "viewer", "to": "operator",
                ])
            // Paging backwards reaches the older entries.
            let next = try #require(audit.json["next_before"] as? Int)
            let older = try await gateway.request(.get, "/api/v1/audit-events?before=\(next)", token: adminToken)
            #expect(!(older.json["events"] as? [[String: Any]] ?? []).isEmpty)

            let (_, viewer) = try await gateway.user(.viewer)
            #expect(try await gateway.request(.get, "/api/v1/audit-events", token: viewer).status == .forbidden)
        }
    }

    @Test("a role change applies to the user's next request")
    func roleChangeAppliesAtOnce() async throws {
        try await GatewayHarness.run(environment: ["USER_CACHE_SECONDS": "0"]) { gateway in
            let (admin, adminToken) = try await gateway.user(.admin)
            let (viewer, viewerToken) = try await gateway.user(.viewer)
            let call = #"{"to":"15550100001"}"#
            #expect(try await gateway.postCall(call, token: viewerToken).status == .forbidden)
            let promoted = try await gateway.request(
                .patch, "/api/v1/users/\(viewer.id.uuidString.lowercased())", token: adminToken,
                json: #"{"role":"operator"}"#)
            #expect(promoted.status == .ok)
            #expect(try await gateway.postCall(call, token: viewerToken).status == .accepted)
            let selfDemotion = try await gateway.request(
                .patch, "/api/v1/users/\(admin.id.uuidString.lowercased())", token: adminToken,
                json: #"{"role":"viewer"}"#)
            #expect(selfDemotion.status == .conflict)
        }
    }

    @Test("a platform operator sets limits; at max_live_calls new calls get 429 organization-call-limit")
    func liveCallLimitIsAnsweredClearly() async throws {
        try await GatewayHarness.run { gateway in
            let (_, platform) = try await gateway.user(.admin, platformOperator: true)
            let acme = try await gateway.organization("acme")
            let (_, acmeAdmin) = try await gateway.user(.admin, organization: acme.id)
            let (_, acmeOperator) = try await gateway.user(.operator, organization: acme.id)
            let path = "/api/v1/organizations/\(acme.id)"

            let refused = try await gateway.request(.patch, path, token: acmeAdmin, json: #"{"max_live_calls":1}"#)
            #expect(refused.status == .forbidden, "an organization's admin does not set its own limits")
            let set = try await gateway.request(
                .patch, path, token: platform, json: #"{"max_live_calls":1,"max_calls_per_second":2.5}"#)
            #expect(set.status == .ok)
            #expect(set.json["max_live_calls"] as? Int == 1)
            #expect(set.json["max_calls_per_second"] as? Double == 2.5)
            let invalid = try await gateway.request(
                .patch, path, token: platform, json: #"{"max_live_calls":0,"max_calls_per_second":"fast"}"#)
            #expect(invalid.status == .unprocessableContent)
            #expect(Set(invalid.errorFields) == ["max_live_calls", "max_calls_per_second"])
            // Members see their organization's limits; another organization's admin does not even see it exists.
            let own = try await gateway.request(.get, path, token: acmeOperator)
            #expect(own.status == .ok)
            #expect(own.json["max_live_calls"] as? Int == 1)
            let (_, stranger) = try await gateway.user(.admin)
            #expect(try await gateway.request(.get, path, token: stranger).status == .notFound)

            // Under the limit a call is accepted; with one call live, the next is refused at once.
            let call = #"{"to":"15550100001"}"#
            #expect(try await gateway.postCall(call, token: acmeOperator).status == .accepted)
            try await HistorySimulator(gateway: gateway).record(
                callID: .generate(), statuses: [.dispatched, .answered], organization: acme.id)
            try await Task.sleep(for: .milliseconds(300))  // past the gateway's cached count
            let atLimit = try await gateway.postCall(call, token: acmeOperator)
            #expect(atLimit.status == .tooManyRequests)
            #expect(atLimit.problemType == "https://outbound-dialer.example/problems/organization-call-limit")
            #expect(atLimit.headers[.retryAfter] != nil)
            // Other organizations are not affected.
            let (_, defaultOperator) = try await gateway.user(.operator)
            #expect(try await gateway.postCall(call, token: defaultOperator).status == .accepted)
            // Removing the limit (null) lets calls in again.
            let cleared = try await gateway.request(.patch, path, token: platform, json: #"{"max_live_calls":null}"#)
            #expect(cleared.json["max_live_calls"] is NSNull)
            #expect(cleared.json["max_calls_per_second"] as? Double == 2.5, "a field left out keeps its value")
            try await Task.sleep(for: .milliseconds(2100))  // past the gateway's cached limits
            #expect(try await gateway.postCall(call, token: acmeOperator).status == .accepted)
            let audit = try await gateway.request(.get, "/api/v1/audit-events", token: acmeAdmin)
            let actions = (audit.json["events"] as? [[String: Any]] ?? []).compactMap { $0["action"] as? String }
            #expect(actions.filter { $0 == "organization.limits_changed" }.count == 2)
        }
    }
}
