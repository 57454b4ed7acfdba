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

/// Health, readiness, metrics, request ids, access logs, CORS, limits, docs switches and the bench route.
@Suite struct OperationsTests {
    @Test func healthReadyAndMetrics() async throws {
        try await GatewayHarness.run { gateway in
            let health = try await gateway.request(.get, "/health")
            #expect(health.status == .ok)
            #expect(health.json["status"] as? String == "ok")
            #expect(health.json["version"] as? String == OperationsController.version)

            try await eventually("ready") { try await gateway.request(.get, "/ready").status == .ok }
            let ready = try await gateway.request(.get, "/ready")
            #expect((ready.json["checks"] as? [String: String]) == ["postgres": "ok", "kafka": "ok"])

            let (_, token) = try await gateway.user(.operator)
            #expect(try await gateway.postCall(#"{"to":"123"}"#, token: token).status == .accepted)
            _ = try await gateway.request(.get, "/api/v1/calls/\(CallID.generate())", token: token)
            let metrics = try await gateway.request(.get, "/metrics")
            #expect(metrics.status == .ok)
            #expect(metrics.headers[.contentType]?.hasPrefix("text/plain") == true)
            let text = metrics.text
            #expect(text.contains(#"http_requests_total{route="/api/v1/calls",method="POST",status="202"} 1"#))
            #expect(text.contains(#"http_requests_total{route="/api/v1/calls/{id}",method="GET",status="404"} 1"#))
            #expect(text.contains("http_request_duration_seconds_bucket"))
            #expect(text.contains("gateway_calls_accepted_total 1"))
            #expect(text.contains(#"gateway_kafka_publish_duration_seconds_count{command="originate"} 1"#))
        }
    }

    @Test func requestIDsAreAcceptedOrReplacedEchoedAndLoggedWithoutSecrets() async throws {
        try await GatewayHarness.run { gateway in
            let (_, token) = try await gateway.user(.operator, name: "logged.user")
            let accepted = try await gateway.request(.get, "/health", headers: [.requestID: "client-req-42"])
            #expect(accepted.headers[.requestID] == "client-req-42")
            let tooLong = String(repeating: "r", count: 129)
            let replaced = try await gateway.request(.get, "/health", headers: [.requestID: tooLong])
            let generated = try #require(replaced.headers[.requestID])
            #expect(generated != tooLong && generated.count == 32)
            let spaced = try await gateway.request(.get, "/health", headers: [.requestID: "has space"])
            #expect(spaced.headers[.requestID] != "has space")

            let login = try await gateway.request(
                .post, "/api/v1/auth/token", json: #"{"username":"logged.user","password":"\#(TestUsers.password)"}"#,
                headers: [.requestID: "login-req-1"])
            let issued = try #require(login.json["access_token"] as? String)
            let problem = try await gateway.request(
                .get, "/api/v1/calls/\(CallID.generate())", token: token, headers: [.requestID: "lookup-req-1"])
            #expect(problem.json["request_id"] as? String == "lookup-req-1")
            let placed = try await gateway.request(
                .post, "/api/v1/calls", token: token, json: #"{"to":"+4930123456"}"#,
                headers: [.requestID: "call-req-1"])
            #expect(placed.status == .accepted)
            let callID = try #require(placed.json["id"] as? String)

            let records = gateway.logs.records
            let access = records.filter { $0["msg"] as? String == "request" }
            let loginLine = try #require(access.first { $0["request.id"] as? String == "login-req-1" })
            #expect(loginLine["http.status"] as? String == "200")
            #expect(loginLine["http.route"] as? String == "/api/v1/auth/token")
            #expect(loginLine["user.name"] as? String == "logged.user")
            let lookupLine = try #require(access.first { $0["request.id"] as? String == "lookup-req-1" })
            #expect(lookupLine["http.status"] as? String == "404")
            #expect(lookupLine["client.address"] is String)
            let duration = try #require(lookupLine["http.duration_ms"] as? String)
            #expect(duration.wholeMatch(of: /[0-9]+\.[0-9]{2}/) != nil, "\(duration)")
            #expect(lookupLine["call.id"] == nil)
            let timestamp = try #require(lookupLine["ts"] as? String)
            #expect(timestamp.wholeMatch(of: /[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z/) != nil)
            // One line per call request says which request became which call.
            let callLines = records.filter { $0["request.id"] as? String == "call-req-1" }
            #expect(callLines.count == 1)
            #expect(callLines.first?["call.id"] as? String == callID)
            #expect(callLines.first?["http.status"] as? String == "202")
            #expect(callLines.first?["user.name"] as? String == "logged.user")
            #expect(callLines.first?["call.replayed"] == nil)
            // Every line of a request carries its id; no line carries a credential.
            #expect(records.filter { $0["request.id"] as? String == "lookup-req-1" }.count >= 1)
            for line in gateway.logs.all {
                #expect(!line.contains(token) && !line.contains(issued), "a token was logged: \(line)")
                #expect(!line.contains(TestUsers.password), "a password was logged: \(line)")
                #expect(!line.contains("Bearer"), "an Authorization value was logged: \(line)")
            }
        }
    }

    @Test(arguments: [
        (Int64(0), "0.00"), (4_999, "0.00"), (5_000, "0.01"), (12_345_678, "12.35"), (1_000_000_000, "1000.00"),
        (99_994_999, "99.99"), (99_995_000, "100.00"),
    ])
    func accessLogDurationsHaveTwoDecimals(nanoseconds: Int64, text: String) {
        #expect(ObservationMiddleware.milliseconds(nanoseconds) == text)
    }

    @Test func unknownRoutesAndOversizedBodiesAreProblems() async throws {
        try await GatewayHarness.run(environment: ["MAX_BODY_BYTES": "1024"]) { gateway in
            let missing = try await gateway.request(.get, "/nope")
            #expect(missing.status == .notFound)
            #expect(missing.headers[.contentType] == "application/problem+json")
            #expect(missing.problemType == "https://outbound-dialer.example/problems/not-found")
            let big = try await gateway.request(
                .post, "/api/v1/auth/token", json: "{\"username\":\"\(String(repeating: "u", count: 2000))\"}")
            #expect(big.status == .contentTooLarge)
            #expect(big.problemType == "https://outbound-dialer.example/problems/payload-too-large")
        }
    }

    @Test func corsAllowsListedOriginsOnly() async throws {
        try await GatewayHarness.run(environment: ["ALLOWED_ORIGINS": "https://app.example.com"]) { gateway in
            let preflight = try await gateway.request(
                .options, "/api/v1/calls",
                headers: [.origin: "https://app.example.com", .accessControlRequestMethod: "POST"])
            #expect(preflight.status == .noContent)
            #expect(preflight.headers[.accessControlAllowOrigin] == "https://app.example.com")
            #expect(preflight.headers[.accessControlAllowHeaders]?.contains("Authorization") == true)
            #expect(preflight.headers[.accessControlAllowCredentials] == nil)
            let simple = try await gateway.request(.get, "/health", headers: [.origin: "https://app.example.com"])
            #expect(simple.headers[.accessControlAllowOrigin] == "https://app.example.com")
            #expect(simple.headers[.vary] == "Origin")
            let stranger = try await gateway.request(.get, "/health", headers: [.origin: "https://evil.example"])
            #expect(stranger.headers[.accessControlAllowOrigin] == nil)
        }
        try await GatewayHarness.run(environment: ["ALLOWED_ORIGINS": "*"]) { gateway in
            let any = try await gateway.request(.get, "/health", headers: [.origin: "https://anyone.example"])
            #expect(any.headers[.accessControlAllowOrigin] == "*")
            #expect(any.headers[.accessControlAllowCredentials] == nil)
        }
    }

    @Test func docsCanBeTurnedOffAndTheBenchRouteOn() async throws {
        try await GatewayHarness.run(environment: ["DOCS_ENABLED": "false"]) { gateway in
            for path in ["/openapi.json", "/docs", "/redoc"] {
                let response = try await gateway.request(.get, path)
                #expect(response.status == .notFound, "\(path)")
            }
            let bench = try await gateway.request(.post, "/bench/baseline/calls", json: "{}")
            #expect(bench.status == .notFound)
        }
        try await GatewayHarness.run(environment: ["BENCH_BASELINE_ROUTE": "true"]) { gateway in
            for path in ["/openapi.json", "/docs", "/redoc"] {
                #expect(try await gateway.request(.get, path).status == .ok, "\(path)")
            }
            let docs = try await gateway.request(.get, "/docs")
            #expect(docs.headers[.contentType]?.hasPrefix("text/html") == true && docs.text.contains("/openapi.json"))
            let bench = try await gateway.request(.post, "/bench/baseline/calls", json: #"{"to":"123"}"#)
            #expect(bench.status == .accepted)
            #expect(bench.json["status"] as? String == "queued")
            #expect(bench.headers[.location] != nil)
            let messages = try await gateway.messages(on: gateway.topics.originate)
            #expect(messages.isEmpty, "the baseline route never touches Kafka")
        }
    }
}
