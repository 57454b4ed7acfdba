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

/// Tokens, roles and user administration, against a running gateway.
@Suite struct AuthTests {
    // MARK: - Token endpoint

    @Test func passwordGrantWorksAsFormAndAsJSON() async throws {
        try await GatewayHarness.run { gateway in
            let (user, _) = try await gateway.user(.operator, name: "op.form")
            let form = try await gateway.request(
                .post, "/api/v1/auth/token",
                headers: [.contentType: "application/x-www-form-urlencoded"],
                body: "grant_type=password&username=op.form&password=\(TestUsers.password)")
            #expect(form.status == .ok)
            #expect(form.json["token_type"] as? String == "bearer")
            #expect(form.json["expires_in"] as? Int == 30 * 60)
            #expect(form.headers[.cacheControl] == "no-store")
            let token = try #require(form.json["access_token"] as? String)
            let calls = try await gateway.request(.get, "/api/v1/calls", token: token)
            #expect(calls.status == .ok)

            let json = try await gateway.request(
                .post, "/api/v1/auth/token", json: #"{"username":"op.form","password":"\#(TestUsers.password)"}"#)
            #expect(json.status == .ok)

            // The token carries the claims the design names.
            let payload = try #require(
                TokenService.base64URLDecode(token.split(separator: ".")[1]).flatMap {
                    try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any]
                })
            #expect(payload["sub"] as? String == user.id.uuidString.lowercased())
            #expect(payload["role"] as? String == "operator")
            #expect(payload["iss"] as? String == gateway.configuration.jwtIssuer)
            #expect(payload["jti"] is String)
            #expect(payload["iat"] != nil && payload["exp"] != nil && payload["aud"] != nil)
        }
    }

    @Test func wrongPasswordUnknownAndDisabledUsersGetTheSame401() async throws {
        try await GatewayHarness.run { gateway in
            let (disabled, _) = try await gateway.user(.viewer, name: "gone.user")
            _ = try await gateway.store.updateUser(
                id: disabled.id, in: .default, disabled: true, role: nil, by: AuditActor(name: "test"))
            _ = try await gateway.user(.viewer, name: "real.user")
            let attempts = [
                #"{"username":"real.user","password":"wrong-password"}"#,
                #"{"username":"nobody","password":"\#(TestUsers.password)"}"#,
                #"{"username":"gone.user","password":"\#(TestUsers.password)"}"#,
            ]
            var bodies: Set<String> = []
            for attempt in attempts {
                let response = try await gateway.request(.post, "/api/v1/auth/token", json: attempt)
                #expect(response.status == .unauthorized)
                #expect(response.headers[.contentType] == "application/problem+json")
                #expect(response.problemType == "https://outbound-dialer.example/problems/invalid-credentials")
                var json = response.json
                json["request_id"] = nil
                bodies.insert("\(json.sorted { $0.key < $1.key })")
            }
            #expect(bodies.count == 1, "the three refusals must be indistinguishable")
        }
    }

    @Test func tokenRequestsAreRateLimitedPerAddress() async throws {
        try await GatewayHarness.run(environment: ["TOKEN_RATE_LIMIT": "3/60"]) { gateway in
            for _ in 0..<3 {
                let response = try await gateway.request(
                    .post, "/api/v1/auth/token", json: #"{"username":"x","password":"y"}"#)
                #expect(response.status == .unauthorized)
            }
            let limited = try await gateway.request(
                .post, "/api/v1/auth/token", json: #"{"username":"x","password":"y"}"#)
            #expect(limited.status == .tooManyRequests)
            #expect(limited.problemType == "https://outbound-dialer.example/problems/rate-limited")
            let retryAfter = try #require(limited.headers[.retryAfter].flatMap(Int.init))
            #expect((1...60).contains(retryAfter))
        }
    }

    @Test func tokenRequestsWithBadInputAreClientErrors() async throws {
        try await GatewayHarness.run { gateway in
            let text = try await gateway.request(
                .post, "/api/v1/auth/token", headers: [.contentType: "text/plain"], body: "username=a")
            #expect(text.status == .unsupportedMediaType)
            let missing = try await gateway.request(.post, "/api/v1/auth/token", json: #"{"username":"a"}"#)
            #expect(missing.status == .unprocessableContent)
            #expect(missing.errorFields == ["password"])
            let broken = try await gateway.request(.post, "/api/v1/auth/token", json: #"{"username":"#)
            #expect(broken.status == .badRequest)
            let grant = try await gateway.request(
                .post, "/api/v1/auth/token", headers: [.contentType: "application/x-www-form-urlencoded"],
                body: "grant_type=client_credentials&username=a&password=b")
            #expect(grant.status == .unprocessableContent)
            #expect(grant.errorFields == ["grant_type"])
        }
    }

    // MARK: - Bearer tokens

    @Test func everyBadTokenIsRefused() async throws {
        try await GatewayHarness.run { gateway in
            let (user, good) = try await gateway.user(.admin)
            let configuration = gateway.configuration
            let otherKey = await TokenService(
                secretKey: .init(bytes: Array("another-signing-key-0123456789-abcdefghijklmnop".utf8)),
                issuer: configuration.jwtIssuer, audience: configuration.jwtAudience, lifetimeMinutes: 30)
            let otherIssuer = await TokenService(
                secretKey: configuration.secretKey, issuer: "someone-else", audience: configuration.jwtAudience,
                lifetimeMinutes: 30)
            let otherAudience = await TokenService(
                secretKey: configuration.secretKey, issuer: configuration.jwtIssuer, audience: "another-api",
                lifetimeMinutes: 30)
            let parts = good.split(separator: ".").map(String.init)
            let noneHeader = Data(#"{"alg":"none","typ":"JWT"}"#.utf8).base64EncodedString()
                .replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_")
            let hs512Header = Data(#"{"alg":"HS512","typ":"JWT"}"#.utf8).base64EncodedString()
                .replacingOccurrences(of: "=", with: "")
            let tamperedPayload = Data(#"{"sub":"\#(user.id.uuidString.lowercased())","role":"admin"}"#.utf8)
                .base64EncodedString().replacingOccurrences(of: "=", with: "")

            let cases: [(String, HTTPFields)] = [
                ("no token", [:]),
                ("another scheme", [.authorization: "Basic YWRtaW46YWRtaW4="]),
                ("malformed", [.authorization: "Bearer not-a-jwt"]),
                ("empty bearer", [.authorization: "Bearer "]),
                ("wrong signature", [.authorization: "Bearer \(try await otherKey.issue(for: user).token)"]),
                ("alg none", [.authorization: "Bearer \(noneHeader).\(parts[1])."]),
                ("alg none with signature", [.authorization: "Bearer \(noneHeader).\(parts[1]).\(parts[2])"]),
                ("another alg header", [.authorization: "Bearer \(hs512Header).\(parts[1]).\(parts[2])"]),
                ("tampered payload", [.authorization: "Bearer \(parts[0]).\(tamperedPayload).\(parts[2])"]),
                (
                    "expired",
                    [.authorization: "Bearer \(try await gateway.tokens.issue(for: user, now: Date() - 7200).token)"]
                ),
                ("wrong issuer", [.authorization: "Bearer \(try await otherIssuer.issue(for: user).token)"]),
                ("wrong audience", [.authorization: "Bearer \(try await otherAudience.issue(for: user).token)"]),
            ]
            for (name, headers) in cases {
                let response = try await gateway.request(.get, "/api/v1/users", headers: headers)
                #expect(response.status == .unauthorized, "\(name)")
                #expect(response.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true, "\(name)")
                #expect(response.problemType == "https://outbound-dialer.example/problems/unauthenticated", "\(name)")
            }
            let fine = try await gateway.request(.get, "/api/v1/users", token: good)
            #expect(fine.status == .ok)
        }
    }

    @Test func aRememberedTokenIsRefusedOnceExpiredAndOnlyItsExactBytesAreRemembered() async throws {
        try await GatewayHarness.run { gateway in
            let (user, _) = try await gateway.user(.operator)
            let tokens = await TokenService(
                secretKey: .init(bytes: Array("a-signing-key-for-the-token-cache-test-0123456789".utf8)),
                issuer: "dialer", audience: "dialer-api", lifetimeMinutes: 1)
            // Issued 58 s ago with a one-minute lifetime: it expires 2 s from now.
            let (token, _) = try await tokens.issue(for: user, now: Date() - 58)
            let expiry = Date() + 2
            #expect(try await tokens.verify(token).userID == user.id)
            #expect(tokens.verified.count == 1)
            #expect(try await tokens.verify(token).userID == user.id)

            // A one-character change of the signature is another token: verified in full, and refused.
            var tampered = Array(token.utf8)
            let index = tampered.count - 2
            tampered[index] = tampered[index] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            await #expect(throws: TokenRejection.badSignature) {
                try await tokens.verify(String(decoding: tampered, as: UTF8.self))
            }

            try await Task.sleep(for: .milliseconds(Int64(max(0, expiry.timeIntervalSinceNow) * 1000) + 1_100))
            await #expect(throws: TokenRejection.expired) { try await tokens.verify(token) }
            #expect(tokens.verified.count == 0)
        }
    }

    @Test func theExpiringCacheDropsExpiredEntriesFirstAndEverythingOnlyWhenAllAreLive() {
        let cache = ExpiringCache<String, Int, Int>(capacity: 2)
        cache.insert(1, for: "old", until: 10, now: 0)
        cache.insert(2, for: "live", until: 100, now: 0)
        cache.insert(2, for: "live", until: 100, now: 0)  // replacing a key evicts nothing
        #expect(cache.count == 2)
        cache.insert(3, for: "new", until: 100, now: 50)  // full: the expired "old" goes
        #expect(cache.value(for: "live", now: 50) == 2)
        #expect(cache.value(for: "new", now: 50) == 3)
        #expect(cache.value(for: "old", now: 5) == nil)
        cache.insert(4, for: "third", until: 100, now: 60)  // full of live entries: all go
        #expect(cache.count == 1)
        #expect(cache.value(for: "third", now: 60) == 4)
        #expect(cache.value(for: "third", now: 100) == nil, "the deadline itself is expired")
        #expect(cache.count == 0)
        cache.insert(5, for: "gone", until: 100, now: 0)
        cache.remove("gone")
        #expect(cache.value(for: "gone", now: 0) == nil)
    }

    @Test func disabledAndDeletedUsersAreRefusedOnTheNextRequest() async throws {
        try await GatewayHarness.run { gateway in
            let (admin, adminToken) = try await gateway.user(.admin)
            let (viewer, viewerToken) = try await gateway.user(.viewer)
            #expect(try await gateway.request(.get, "/api/v1/calls", token: viewerToken).status == .ok)

            let disable = try await gateway.request(
                .patch, "/api/v1/users/\(viewer.id)", token: adminToken, json: #"{"disabled":true}"#)
            #expect(disable.status == .ok)
            #expect(disable.json["disabled"] as? Bool == true)
            #expect(try await gateway.request(.get, "/api/v1/calls", token: viewerToken).status == .unauthorized)

            let enable = try await gateway.request(
                .patch, "/api/v1/users/\(viewer.id)", token: adminToken, json: #"{"disabled":false}"#)
            #expect(enable.status == .ok)
            #expect(try await gateway.request(.get, "/api/v1/calls", token: viewerToken).status == .ok)

            #expect(
                try await gateway.request(.delete, "/api/v1/users/\(viewer.id)", token: adminToken).status == .noContent
            )
            #expect(try await gateway.request(.get, "/api/v1/calls", token: viewerToken).status == .unauthorized)

            // A user disabled directly in the database is refused too.
            let (_, otherToken) = try await gateway.user(.operator)
            let other = try #require(try await gateway.store.users(in: .default).first { $0.role == .operator })
            _ = try await gateway.store.updateUser(
                id: other.id, in: .default, disabled: true, role: nil, by: AuditActor(name: "test"))
            #expect(try await gateway.request(.get, "/api/v1/calls", token: otherToken).status == .unauthorized)

            // Admins cannot lock themselves out.
            let selfDisable = try await gateway.request(
                .patch, "/api/v1/users/\(admin.id)", token: adminToken, json: #"{"disabled":true}"#)
            #expect(selfDisable.status == .conflict)
        }
    }

    // MARK: - Roles

    /// Every authenticated endpoint with every role: viewers read, operators also place and hang up calls,
    /// admins also manage users. A forbidden request is a 403 before anything else happens.
    @Test func roleMatrix() async throws {
        try await GatewayHarness.run { gateway in
            var tokens: [UserRole: String] = [:]
            for role in UserRole.allCases { tokens[role] = try await gateway.user(role).token }
            let unknownCall = CallID.generate()
            let unknownUser = UUID()
            struct Endpoint {
                var method: HTTPRequest.Method
                var path: String
                var json: String?
                var minimum: UserRole
                /// What an allowed caller gets with this input.
                var allowedStatus: HTTPResponse.Status
            }
            let endpoints = [
                Endpoint(method: .get, path: "/api/v1/calls", minimum: .viewer, allowedStatus: .ok),
                Endpoint(
                    method: .get, path: "/api/v1/calls/\(unknownCall)", minimum: .viewer, allowedStatus: .notFound),
                Endpoint(
                    method: .post, path: "/api/v1/calls", json: #"{"to":"123","unknown_field":1}"#, minimum: .operator,
                    allowedStatus: .unprocessableContent),
                Endpoint(
                    method: .post, path: "/api/v1/calls/\(unknownCall)/hangup", minimum: .operator,
                    allowedStatus: .notFound),
                Endpoint(method: .get, path: "/api/v1/users", minimum: .admin, allowedStatus: .ok),
                Endpoint(
                    method: .post, path: "/api/v1/users", json: #"{"username":"x"}"#, minimum: .admin,
                    allowedStatus: .unprocessableContent),
                Endpoint(
                    method: .patch, path: "/api/v1/users/\(unknownUser)", json: #"{"disabled":true}"#, minimum: .admin,
                    allowedStatus: .notFound),
                Endpoint(
                    method: .delete, path: "/api/v1/users/\(unknownUser)", minimum: .admin, allowedStatus: .notFound),
                Endpoint(method: .get, path: "/api/v1/api-keys", minimum: .admin, allowedStatus: .ok),
                Endpoint(
                    method: .post, path: "/api/v1/api-keys", json: #"{"name":"x"}"#, minimum: .admin,
                    allowedStatus: .unprocessableContent),
                Endpoint(
                    method: .delete, path: "/api/v1/api-keys/\(unknownUser)", minimum: .admin,
                    allowedStatus: .notFound),
                Endpoint(method: .get, path: "/api/v1/audit-events", minimum: .admin, allowedStatus: .ok),
            ]
            for endpoint in endpoints {
                let anonymous = try await gateway.request(endpoint.method, endpoint.path, json: endpoint.json)
                #expect(anonymous.status == .unauthorized, "\(endpoint.method) \(endpoint.path) without a token")
                for role in UserRole.allCases {
                    let response = try await gateway.request(
                        endpoint.method, endpoint.path, token: tokens[role], json: endpoint.json)
                    let expected: HTTPResponse.Status =
                        role.includes(endpoint.minimum) ? endpoint.allowedStatus : .forbidden
                    #expect(response.status == expected, "\(endpoint.method) \(endpoint.path) as \(role)")
                    if expected == .forbidden {
                        #expect(response.problemType == "https://outbound-dialer.example/problems/forbidden")
                    }
                }
            }
            // The event streams: viewers may open them; without a token they are refused.
            for path in ["/api/v1/events", "/api/v1/calls/\(unknownCall)/events"] {
                let anonymous = try await SSEConnection.open(port: gateway.port, path: path, token: nil)
                #expect(anonymous.status == .unauthorized)
                await anonymous.close()
                let viewer = try await SSEConnection.open(port: gateway.port, path: path, token: tokens[.viewer])
                #expect(viewer.status == .ok)
                await viewer.close()
            }
        }
    }

    // MARK: - Users

    @Test func adminsCreateAndListUsers() async throws {
        try await GatewayHarness.run { gateway in
            let (_, adminToken) = try await gateway.user(.admin, name: "root.admin")
            let created = try await gateway.request(
                .post, "/api/v1/users", token: adminToken,
                json: #"{"username":"jane.doe","password":"a-long-passphrase-1","role":"viewer"}"#)
            #expect(created.status == .created)
            #expect(created.json["role"] as? String == "viewer")
            #expect(created.json["generated_password"] == nil)
            #expect(created.json["password_hash"] == nil && !created.text.contains("$2"))
            #expect(created.headers[.location]?.hasPrefix("/api/v1/users/") == true)

            let generated = try await gateway.request(
                .post, "/api/v1/users", token: adminToken, json: #"{"username":"ops.bot","role":"operator"}"#)
            #expect(generated.status == .created)
            let password = try #require(generated.json["generated_password"] as? String)
            let login = try await gateway.request(
                .post, "/api/v1/auth/token", json: #"{"username":"ops.bot","password":"\#(password)"}"#)
            #expect(login.status == .ok)

            let duplicate = try await gateway.request(
                .post, "/api/v1/users", token: adminToken, json: #"{"username":"jane.doe","role":"viewer"}"#)
            #expect(duplicate.status == .conflict)
            #expect(duplicate.problemType == "https://outbound-dialer.example/problems/username-taken")

            let invalid = try await gateway.request(
                .post, "/api/v1/users", token: adminToken,
                json: #"{"username":"bad name","password":"short","role":"boss","extra":true}"#)
            #expect(invalid.status == .unprocessableContent)
            #expect(Set(invalid.errorFields) == ["username", "password", "role", "extra"])

            let list = try await gateway.request(.get, "/api/v1/users", token: adminToken)
            let names = (list.json["users"] as? [[String: Any]] ?? []).compactMap { $0["username"] as? String }
            #expect(names == ["jane.doe", "ops.bot", "root.admin"])
        }
    }
}

extension Gateway {
    /// Sends a raw body with the given headers.
    func request(
        _ method: HTTPRequest.Method, _ uri: String, headers: HTTPFields, body: String
    ) async throws -> TestResponse {
        try await client.execute(uri: uri, method: method, headers: headers, body: ByteBuffer(string: body))
    }
}
