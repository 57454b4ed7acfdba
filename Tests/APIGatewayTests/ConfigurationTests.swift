import CallDomain
import CallStore
import EmbeddedKafka
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import NIOHTTP1
import ServiceSupport
import TestSupport
import Testing

@testable import APIGateway

/// Start-up configuration: every bad value stops start-up with an error naming the variable.
@Suite struct ConfigurationTests {
    static let valid: [String: String] = [
        "SECRET_KEY": TestUsers.secretKey,
        "DATABASE_URL": "postgres://gateway@127.0.0.1:5432/calls",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    ]

    static func configuration(_ changes: [String: String?]) throws -> GatewayConfiguration {
        var environment = valid
        for (key, value) in changes { environment[key] = value }
        return try GatewayConfiguration(environment: EnvironmentReader(environment))
    }

    static func refusal(_ changes: [String: String?]) -> ConfigurationError? {
        do {
            _ = try configuration(changes)
            return nil
        } catch let error as ConfigurationError {
            return error
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    @Test func defaultsMatchTheDocumentation() throws {
        let configuration = try Self.configuration([:])
        #expect(configuration.port == 8000)
        #expect(configuration.host == "0.0.0.0")
        #expect(configuration.publishTimeoutSeconds == 5)
        #expect(configuration.callTTLSeconds == 300)
        #expect(configuration.defaultTimeoutSeconds == 30)
        #expect(configuration.maxBodyBytes == 65_536)
        #expect(configuration.tokenRateLimit == .init(count: 10, seconds: 60))
        #expect(configuration.accessTokenExpireMinutes == 30)
        #expect(configuration.docsEnabled)
        #expect(!configuration.benchBaselineRoute)
        #expect(configuration.allowedOrigins.isEmpty)
        #expect(configuration.topics.originate == "calls.originate.v1")
        #expect(configuration.bcryptCost == 12)
    }

    @Test(arguments: [
        "change-me", "secret", "replace-with-at-least-32-random-bytes-of-secret",
        "change-me-change-me-change-me-change-me", "CHANGEME-please-a-very-long-placeholder-value",
        String(repeating: "x", count: 40),
    ])
    func placeholderSecretsAreRefused(secret: String) {
        let error = Self.refusal(["SECRET_KEY": secret])
        #expect(error?.variable == "SECRET_KEY")
        #expect(error?.description.contains(secret) == false, "the secret must never be echoed")
    }

    @Test func shortSecretsAreRefusedBeforeTheSignerIsBuilt() {
        let error = Self.refusal(["SECRET_KEY": "a-31-byte-secret-key-0123456789"])
        #expect(error?.variable == "SECRET_KEY")
        #expect(error?.message.contains("32") == true)
        #expect(Self.refusal(["SECRET_KEY": nil])?.variable == "SECRET_KEY")
    }

    @Test func requiredVariablesAreNamed() {
        #expect(Self.refusal(["DATABASE_URL": nil])?.variable == "DATABASE_URL")
        #expect(Self.refusal(["DATABASE_URL": "mysql://x"])?.variable == "DATABASE_URL")
        #expect(Self.refusal(["KAFKA_BOOTSTRAP_SERVERS": nil])?.variable == "KAFKA_BOOTSTRAP_SERVERS")
    }

    @Test(arguments: [
        ("PORT", "eighty"), ("PORT", "70000"), ("PUBLISH_TIMEOUT_SECONDS", "0"), ("CALL_TTL_SECONDS", "abc"),
        ("DEFAULT_TIMEOUT", "301"), ("TOKEN_RATE_LIMIT", "10"), ("TOKEN_RATE_LIMIT", "0/60"),
        ("MAX_BODY_BYTES", "12"), ("DOCS_ENABLED", "maybe"), ("ALLOWED_CONTEXTS", "good,bad context"),
        ("ALLOWED_ORIGINS", "not a url"), ("ACCESS_TOKEN_EXPIRE_MINUTES", "0"), ("BCRYPT_COST", "10"),
        ("BENCH_BASELINE_ROUTE", "sometimes"),
    ])
    func badValuesAreRefusedNamingTheVariable(variable: String, value: String) {
        #expect(Self.refusal([variable: value])?.variable == variable)
    }

    @Test func wildcardOriginWithCredentialsIsRefused() {
        let error = Self.refusal(["ALLOWED_ORIGINS": "*", "CORS_ALLOW_CREDENTIALS": "true"])
        #expect(error?.variable == "ALLOWED_ORIGINS")
        #expect(Self.refusal(["ALLOWED_ORIGINS": "https://app.example.com", "CORS_ALLOW_CREDENTIALS": "true"]) == nil)
    }

    @Test func valuesAreRead() throws {
        let configuration = try Self.configuration([
            "TOKEN_RATE_LIMIT": "3/10", "ALLOWED_CONTEXTS": "outbound, sales", "PUBLISH_TIMEOUT_SECONDS": "1.5",
            "ALLOWED_ORIGINS": "https://a.example, http://localhost:3000", "DOCS_ENABLED": "false",
            "KAFKA_TOPIC_STATUS": "status.custom",
        ])
        #expect(configuration.tokenRateLimit == .init(count: 3, seconds: 10))
        #expect(configuration.allowedContexts == ["outbound", "sales"])
        #expect(configuration.publishTimeoutSeconds == 1.5)
        #expect(configuration.allowedOrigins == ["https://a.example", "http://localhost:3000"])
        #expect(!configuration.docsEnabled)
        #expect(configuration.topics.status == "status.custom")
    }

    @Test func allowedContextsDefaultToTheDefaultContext() throws {
        #expect(try Self.configuration(["DEFAULT_CONTEXT": "from-default"]).allowedContexts == ["from-default"])
        #expect(try Self.configuration([:]).allowedContexts == ["default"])
    }
}

/// The token endpoint's rate limit, as pure logic.
@Suite struct RateLimiterTests {
    @Test func allowsTheBudgetThenRefusesWithRetryAfter() {
        let limiter = RateLimiter(count: 10, seconds: 60)
        for _ in 0..<10 { #expect(limiter.check("a", now: 100) == .allowed) }
        #expect(limiter.check("a", now: 100) == .limited(retryAfter: 6))
        #expect(limiter.check("b", now: 100) == .allowed, "another address has its own budget")
        #expect(limiter.check("a", now: 106) == .allowed, "one request's worth of budget returns every 6 s")
        #expect(limiter.check("a", now: 106) != .allowed)
        for _ in 0..<10 { #expect(limiter.check("a", now: 200) == .allowed) }
    }
}
