import CallDomain
import CallStore
import Foundation
import Kafka
import ServiceSupport
import Webhooks

/// Everything a webhook dispatcher process needs, read once at start-up from the environment; a wrong value stops
/// the start with a message naming the variable.
public struct DispatcherConfiguration: Sendable {
    /// This process (`DISPATCHER_ID`, default `<hostname>-<pid>`), recorded on every attempt and lease.
    public var dispatcherID: String
    /// Kafka connection settings (`KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_CLIENT_ID`, `KAFKA_PROP_*`).
    public var kafka: KafkaConfiguration
    /// Topic names; the dispatcher reads `KAFKA_TOPIC_STATUS`.
    public var topics: CallTopics
    /// The dispatchers' consumer group (`KAFKA_WEBHOOK_GROUP`, default `webhook-dispatchers`).
    public var groupID: String
    /// PostgreSQL (`DATABASE_URL`).
    public var databaseURL: String
    /// Pool size of the PostgreSQL client (`DATABASE_MAX_CONNECTIONS`).
    public var databaseMaxConnections: Int
    /// The bound of one PostgreSQL operation (`DATABASE_TIMEOUT_SECONDS`).
    public var databaseTimeout: Duration
    /// Whether endpoints may be private addresses and plain http (`WEBHOOK_ALLOW_PRIVATE_TARGETS`, development).
    public var targetPolicy: WebhookTargetPolicy
    /// The bound of one attempt (`WEBHOOK_TIMEOUT_SECONDS`, default 15).
    public var attemptTimeout: Duration
    /// Attempts in flight in this process (`WEBHOOK_MAX_IN_FLIGHT`, default 256).
    public var maxInFlight: Int
    /// Attempts in flight to one endpoint in this process (`WEBHOOK_ENDPOINT_CONCURRENCY`, default 8): a slow
    /// endpoint holds at most this many of the process's slots.
    public var endpointConcurrency: Int
    /// How often an idle dispatcher looks for due deliveries of other dispatchers' events
    /// (`WEBHOOK_POLL_INTERVAL_MS`, default 100).
    public var pollInterval: Duration
    /// Status events fanned out per transaction at most (`WEBHOOK_FANOUT_BATCH`, default 500).
    public var fanOutBatchSize: Int
    /// How long finished deliveries (and their attempts) stay visible in the delivery log before they are deleted
    /// (`WEBHOOK_RETENTION_DAYS`, default 30).
    public var retention: Duration
    /// Address of the operations HTTP server (`DISPATCHER_HOST`, default `0.0.0.0`).
    public var host: String
    /// Its port (`DISPATCHER_PORT`, default 8082; 0 picks a free one).
    public var port: Int

    /// Creates a configuration; ``fromEnvironment(_:)`` is the usual way.
    public init(
        dispatcherID: String, kafka: KafkaConfiguration, topics: CallTopics = .defaults,
        groupID: String = "webhook-dispatchers", databaseURL: String, databaseMaxConnections: Int = 10,
        databaseTimeout: Duration = .seconds(5), targetPolicy: WebhookTargetPolicy = .production,
        attemptTimeout: Duration = .seconds(15), maxInFlight: Int = 256, endpointConcurrency: Int = 8,
        pollInterval: Duration = .milliseconds(100), fanOutBatchSize: Int = 500,
        retention: Duration = .seconds(30 * 86_400),
        host: String = "127.0.0.1", port: Int = 0
    ) {
        self.dispatcherID = dispatcherID
        self.kafka = kafka
        self.topics = topics
        self.groupID = groupID
        self.databaseURL = databaseURL
        self.databaseMaxConnections = databaseMaxConnections
        self.databaseTimeout = databaseTimeout
        self.targetPolicy = targetPolicy
        self.attemptTimeout = attemptTimeout
        self.maxInFlight = maxInFlight
        self.endpointConcurrency = endpointConcurrency
        self.pollInterval = pollInterval
        self.fanOutBatchSize = fanOutBatchSize
        self.retention = retention
        self.host = host
        self.port = port
    }

    /// Reads and validates the environment.
    public static func fromEnvironment(
        _ environment: EnvironmentReader = EnvironmentReader()
    ) throws
        -> DispatcherConfiguration
    {
        let kafka = try environment.kafkaConfiguration()
        let databaseURL = try environment.databaseURL()
        let dispatcherID = try environment.processID("DISPATCHER_ID", fallbackPrefix: "dispatcher")
        func seconds(_ name: String, _ fallback: Double, _ range: ClosedRange<Double>) throws -> Duration {
            .milliseconds(Int64(try environment.double(name, default: fallback, range: range) * 1000))
        }
        let allowPrivate = try environment.bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", default: false)
        return DispatcherConfiguration(
            dispatcherID: dispatcherID,
            kafka: kafka,
            topics: CallTopics.fromEnvironment(environment.values),
            groupID: environment.string("KAFKA_WEBHOOK_GROUP", default: "webhook-dispatchers"),
            databaseURL: databaseURL,
            databaseMaxConnections: try environment.int("DATABASE_MAX_CONNECTIONS", default: 10, range: 2...200),
            databaseTimeout: try seconds("DATABASE_TIMEOUT_SECONDS", 5, 0.1...600),
            targetPolicy: allowPrivate ? .allowPrivate : .production,
            attemptTimeout: try seconds("WEBHOOK_TIMEOUT_SECONDS", 15, 1...60),
            maxInFlight: try environment.int("WEBHOOK_MAX_IN_FLIGHT", default: 256, range: 1...10_000),
            endpointConcurrency: try environment.int("WEBHOOK_ENDPOINT_CONCURRENCY", default: 8, range: 1...1000),
            pollInterval: .milliseconds(
                Int64(try environment.int("WEBHOOK_POLL_INTERVAL_MS", default: 100, range: 10...60_000))),
            fanOutBatchSize: try environment.int("WEBHOOK_FANOUT_BATCH", default: 500, range: 1...10_000),
            retention: .seconds(86_400 * (try environment.int("WEBHOOK_RETENTION_DAYS", default: 30, range: 1...3650))),
            host: environment.string("DISPATCHER_HOST", default: "0.0.0.0"),
            port: try environment.int("DISPATCHER_PORT", default: 8082, range: 0...65_535)
        )
    }
}

/// The dispatcher's notion of now: the wall clock in production; tests inject one they move by hand, to run
/// through the retry schedule without waiting hours.
public protocol WebhookClock: Sendable {
    /// The current instant.
    func now() -> Date
}

/// The system's wall clock.
public struct SystemWebhookClock: WebhookClock {
    /// Creates the clock.
    public init() {}

    public func now() -> Date { Date() }
}
