import AsyncHTTPClient
import CallDomain
import CallMessaging
import CallStore
import EmbeddedKafka
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Kafka
import Logging
import NIOCore
import ServiceSupport
import Synchronization
import TestSupport
import Testing

@testable import APIGateway

/// One running gateway for one test: its own PostgreSQL database, its own embedded Kafka cluster (with uniquely
/// named topics), a live HTTP server on a free port, and the log lines it wrote.
struct Gateway: Sendable {
    let client: any TestClientProtocol
    let port: Int
    let store: CallStore
    let cluster: EmbeddedKafkaCluster
    let configuration: GatewayConfiguration
    let tokens: TokenService
    let logs: LogCapture
    let statusReader: KafkaFanOutReader
    /// The router's routes as `METHOD /path/{param}`.
    let routes: Set<String>
    /// Every exchange made through ``request(_:_:token:json:headers:)``, checked against the served OpenAPI
    /// document when the gateway stops.
    let exchanges: ExchangeLog

    var topics: CallTopics { configuration.topics }

    /// A Kafka configuration for the test's own clients.
    var kafka: KafkaConfiguration {
        var configuration = configuration.kafka
        configuration.clientID = "gateway-tests"
        return configuration
    }

    // MARK: - Users and tokens

    /// Creates a user (password ``TestUsers/password``) in `organization` and mints a token for it.
    func user(
        _ role: UserRole, name: String? = nil, organization: OrganizationID = .default, platformOperator: Bool = false
    ) async throws -> (user: User, token: String) {
        let user = try await store.createUser(
            username: name ?? "\(role.rawValue)-\(UInt32.random(in: 0...UInt32.max))",
            passwordHash: try await TestUsers.hash(), role: role, organization: organization,
            platformOperator: platformOperator, by: AuditActor(name: "test"))
        return (user, try await tokens.issue(for: user).token)
    }

    /// Creates an organization with a unique name.
    func organization(_ name: String = "org") async throws -> Organization {
        try await store.createOrganization(
            name: "\(name)-\(UInt32.random(in: 0...UInt32.max))", by: AuditActor(name: "test"))
    }

    // MARK: - Requests

    /// Sends a request; `json` is sent as `application/json` unless `headers` set another content type.
    func request(
        _ method: HTTPRequest.Method, _ uri: String, token: String? = nil, json: String? = nil,
        headers: HTTPFields = [:]
    ) async throws -> TestResponse {
        var headers = headers
        if let token { headers[.authorization] = "Bearer \(token)" }
        if json != nil, headers[.contentType] == nil { headers[.contentType] = "application/json" }
        let response = try await client.execute(
            uri: uri, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
        exchanges.record(method: method, uri: uri, response: response)
        return response
    }

    /// Posts a call as `token`'s user.
    func postCall(_ json: String, token: String, idempotencyKey: String? = nil) async throws -> TestResponse {
        var headers: HTTPFields = [:]
        if let idempotencyKey { headers[.idempotencyKey] = idempotencyKey }
        return try await request(.post, "/api/v1/calls", token: token, json: json, headers: headers)
    }

    // MARK: - Kafka

    /// A producer for the test's own messages, running for the duration of `body`.
    func withPublisher<Result: Sendable>(
        _ body: @Sendable (CallMessagePublisher) async throws -> Result
    ) async throws -> Result {
        let producer = try KafkaProducer(configuration: kafka, deliveryTimeout: .seconds(30), logger: TestLog.quiet)
        let publisher = CallMessagePublisher(producer: producer, topics: topics, source: "/gateway-tests")
        return try await Running.with(producer.run) { try await body(publisher) }
    }

    /// Every message on `topic` from the beginning up to a sentinel this call appends (the topic must have a
    /// single partition, so the sentinel comes after everything produced before it).
    func messages(on topic: String) async throws -> [KafkaMessage] {
        let sentinel = "sentinel-\(UUID().uuidString)"
        let producer = try KafkaProducer(configuration: kafka, deliveryTimeout: .seconds(30), logger: TestLog.quiet)
        try await Running.with(producer.run) {
            _ = try await producer.send(topic: topic, key: sentinel, value: Array("{}".utf8))
        }
        let reader = try KafkaFanOutReader(configuration: kafka, topic: topic, start: .beginning, logger: TestLog.quiet)
        return try await Running.with(reader.run) {
            var collected: [KafkaMessage] = []
            for try await message in reader.messages {
                if message.keyString == sentinel { break }
                // Sentinels of earlier reads are not messages of the system.
                if message.keyString?.hasPrefix("sentinel-") == true { continue }
                collected.append(message)
            }
            return collected
        }
    }
}

/// Starts gateways for tests.
enum GatewayHarness {
    /// Runs `body` against a fresh gateway. `environment` overrides the defaults below.
    static func run(
        environment overrides: [String: String] = [:],
        originatePartitions: Int32 = 1,
        _ body: @Sendable (Gateway) async throws -> Void
    ) async throws {
        try await TestDatabase.withStore { store, databaseURL in
            let suffix = UInt32.random(in: 0...UInt32.max)
            let topics = CallTopics(
                originate: "calls.originate.\(suffix)", control: "calls.control.\(suffix)",
                status: "calls.status.\(suffix)")
            let cluster = try EmbeddedKafkaCluster(
                brokers: 1,
                topics: [topics.originate: originatePartitions, topics.control: 1, topics.status: 3],
                logger: TestLog.quiet)
            defer { cluster.shutdown() }
            var environment = [
                "SECRET_KEY": TestUsers.secretKey,
                "DATABASE_URL": databaseURL,
                "DATABASE_MAX_CONNECTIONS": "30",
                "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrapServers,
                "KAFKA_CLIENT_ID": "gateway-\(suffix)",
                "KAFKA_PROP_TOPIC_METADATA_REFRESH_INTERVAL_MS": "1000",
                "KAFKA_PROP_RECONNECT_BACKOFF_MAX_MS": "500",
                "KAFKA_TOPIC_ORIGINATE": topics.originate,
                "KAFKA_TOPIC_CONTROL": topics.control,
                "KAFKA_TOPIC_STATUS": topics.status,
                "ALLOWED_CONTEXTS": "outbound,sales-queue",
                "HOST": "127.0.0.1",
                "PORT": "0",
                "USER_CACHE_SECONDS": "0",
                "INSTANCE_ID": "test-\(suffix)",
            ]
            environment.merge(overrides) { _, new in new }
            let configuration = try GatewayConfiguration(environment: EnvironmentReader(environment))
            let logs = LogCapture()
            trace("building the gateway")
            let built = try await buildGateway(configuration: configuration, logger: logs.logger)
            trace("built")
            let routes = Set(built.router.routes.map { "\($0.method.rawValue) \($0.path)" })
            let reader = built.statusReader
            let tokens = await TokenService(
                secretKey: configuration.secretKey, issuer: configuration.jwtIssuer,
                audience: configuration.jwtAudience, lifetimeMinutes: configuration.accessTokenExpireMinutes)
            try await built.application.test(.ahc(.http)) { client in
                trace("serving on port \(client.port ?? 0)")
                let gateway = Gateway(
                    client: client, port: client.port ?? 0, store: store, cluster: cluster,
                    configuration: configuration, tokens: tokens, logs: logs, statusReader: reader, routes: routes,
                    exchanges: ExchangeLog())
                try await body(gateway)
                trace("test body done")
                if configuration.docsEnabled {
                    let document = try await client.execute(uri: "/openapi.json", method: .get, headers: [:], body: nil)
                    let violations = try await gateway.exchanges.check(against: Data(document.body.readableBytesView))
                    #expect(violations.isEmpty, "responses that break the OpenAPI contract:\n\(violations)")
                }
            }
            trace("gateway stopped")
        }
    }
}

/// Progress lines on standard error when `GATEWAY_TEST_LOG` is set (to see where a test spends its time).
func trace(_ message: String) {
    guard ProcessInfo.processInfo.environment["GATEWAY_TEST_LOG"] != nil else { return }
    FileHandle.standardError.write(Data("[harness] \(message)\n".utf8))
}

/// Users and secrets shared by the tests.
enum TestUsers {
    /// The password of every test user.
    static let password = "correct-horse-battery-staple"
    /// A signing key of the right length that is no placeholder.
    static let secretKey = "test-signing-key-0123456789-abcdefghijklmnopqrstuvwxyz"

    private static let hashTask = Task { try await PasswordHasher(cost: 12).hash(password) }

    /// The bcrypt hash of ``password`` (computed once per test run: bcrypt at cost 12 is slow on purpose).
    static func hash() async throws -> String { try await hashTask.value }
}

/// Captures the gateway's JSON log lines.
final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])

    /// A logger writing JSON lines into this capture.
    var logger: Logger {
        Logger(label: "api-gateway") { label in
            let echo = ProcessInfo.processInfo.environment["GATEWAY_TEST_LOG"] != nil
            var handler = JSONLogHandler(label: label, service: "api-gateway") { [weak self] line in
                self?.lines.withLock { $0.append(line) }
                if echo { FileHandle.standardError.write(Data((line + "\n").utf8)) }
            }
            handler.logLevel = echo ? .debug : .info
            return handler
        }
    }

    /// Every line so far.
    var all: [String] { lines.withLock { $0 } }

    /// The lines parsed as JSON objects.
    var records: [[String: Any]] {
        all.compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
    }
}

/// Loggers for the test's own clients.
enum TestLog {
    static var quiet: Logger {
        var logger = Logger(label: "gateway-tests")
        logger.logLevel = .error
        return logger
    }
}

/// Runs a service for the duration of a body.
enum Running {
    static func with<Result>(
        _ run: @escaping @Sendable () async throws -> Void, _ body: () async throws -> Result
    ) async throws -> Result {
        let task = Task { try await run() }
        do {
            let result = try await body()
            task.cancel()
            _ = try? await task.value
            return result
        } catch {
            task.cancel()
            _ = try? await task.value
            throw error
        }
    }
}

/// Polls a condition until it holds or the time runs out (then fails the test). Waits, never asserts on time.
func eventually(
    timeout: Duration = .seconds(60), _ what: String, _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    Issue.record("timed out waiting for: \(what)")
    throw HarnessTimeout(what: what)
}

struct HarnessTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

// MARK: - Response helpers

extension TestResponse {
    /// The body as text.
    var text: String { String(buffer: body) }

    /// The body as a JSON object (empty when it is not one).
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
    }

    /// The `field`s of a problem's `errors`.
    var errorFields: [String] {
        (json["errors"] as? [[String: Any]] ?? []).compactMap { $0["field"] as? String }
    }

    /// The problem `type` URI.
    var problemType: String? { json["type"] as? String }
}

/// The HTTP exchanges of one test, and their check against the OpenAPI document (`scripts/check_responses.py`).
final class ExchangeLog: Sendable {
    private let lines = Mutex<[String]>([])

    func record(method: HTTPRequest.Method, uri: String, response: TestResponse) {
        let body = response.body.readableBytes <= 1 << 20 ? String(buffer: response.body) : nil
        var object: [String: Any] = [
            "method": method.rawValue, "path": uri, "status": Int(response.status.code),
            "content_type": response.headers[.contentType] ?? "",
        ]
        object["body"] = body.map { $0 as Any } ?? NSNull()
        guard let data = try? JSONSerialization.data(withJSONObject: object) else { return }
        let line = String(decoding: data, as: UTF8.self)
        lines.withLock { $0.append(line) }
    }

    /// The violations (one per line), or an empty string when every exchange conforms.
    func check(against document: Data) async throws -> String {
        let recorded = lines.withLock { $0 }
        guard !recorded.isEmpty else { return "" }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("contract-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let documentFile = directory.appendingPathComponent("openapi.json")
        let exchangesFile = directory.appendingPathComponent("exchanges.jsonl")
        try document.write(to: documentFile)
        try Data(recorded.joined(separator: "\n").utf8).write(to: exchangesFile)
        let (status, text) = try await Python.run([
            Repository.path("scripts/check_responses.py"), documentFile.path, exchangesFile.path,
        ])
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return status == 0 && trimmed == "ok" ? "" : trimmed
    }
}
