import CallDomain
import CallStore
import Foundation
import Kafka
import ServiceSupport

/// Everything a campaign scheduler needs, read from the environment.
public struct SchedulerConfiguration: Sendable {
    /// This scheduler's identity on campaign leases (`SCHEDULER_ID`, default `<hostname>-<pid>`).
    public var schedulerID: String
    /// Kafka connection settings (`KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_CLIENT_ID`, `KAFKA_PROP_*`).
    public var kafka: KafkaConfiguration
    /// The topics (`KAFKA_TOPIC_ORIGINATE`, `KAFKA_TOPIC_STATUS`, ...).
    public var topics: CallTopics
    /// The consumer group reading call ends (`KAFKA_CAMPAIGN_GROUP`, default `campaign-schedulers`).
    public var groupID: String
    /// PostgreSQL (`DATABASE_URL`).
    public var databaseURL: String
    /// Pool size (`DATABASE_MAX_CONNECTIONS`, default 10).
    public var databaseMaxConnections: Int
    /// Bound of one PostgreSQL operation (`DATABASE_TIMEOUT_SECONDS`, default 5).
    public var databaseTimeout: Duration
    /// How long a campaign stays leased without renewal (`CAMPAIGN_LEASE_SECONDS`, default 10): a dead scheduler's
    /// campaigns pass to another within this.
    public var lease: Duration
    /// How often leases are renewed and free campaigns looked for (`CAMPAIGN_RENEW_MS`, default 2000).
    public var renewInterval: Duration
    /// How often each held campaign dispatches its due contacts (`CAMPAIGN_TICK_MS`, default 50).
    public var tick: Duration
    /// Most campaigns one scheduler holds (`CAMPAIGN_MAX_HELD`, default 100).
    public var maxCampaigns: Int
    /// How long an originate command stays valid for the workers (`CAMPAIGN_COMMAND_TTL_SECONDS`, default 300): one
    /// not picked up in time ends `expired` and is retried as the campaign's rules say.
    public var commandTTL: Duration
    /// Call ends applied per transaction at most (`CAMPAIGN_OUTCOME_BATCH`, default 500).
    public var outcomeBatchSize: Int
    /// Address of the operations HTTP server (`SCHEDULER_HOST`, default `0.0.0.0`).
    public var host: String
    /// Its port (`SCHEDULER_PORT`, default 8083; 0 picks a free one).
    public var port: Int

    /// Creates a configuration; ``fromEnvironment(_:)`` is the usual way.
    public init(
        schedulerID: String, kafka: KafkaConfiguration, topics: CallTopics = .defaults,
        groupID: String = "campaign-schedulers", databaseURL: String, databaseMaxConnections: Int = 10,
        databaseTimeout: Duration = .seconds(5), lease: Duration = .seconds(10),
        renewInterval: Duration = .seconds(2), tick: Duration = .milliseconds(50), maxCampaigns: Int = 100,
        commandTTL: Duration = .seconds(300), outcomeBatchSize: Int = 500, host: String = "127.0.0.1", port: Int = 0
    ) {
        self.schedulerID = schedulerID
        self.kafka = kafka
        self.topics = topics
        self.groupID = groupID
        self.databaseURL = databaseURL
        self.databaseMaxConnections = databaseMaxConnections
        self.databaseTimeout = databaseTimeout
        self.lease = lease
        self.renewInterval = renewInterval
        self.tick = tick
        self.maxCampaigns = maxCampaigns
        self.commandTTL = commandTTL
        self.outcomeBatchSize = outcomeBatchSize
        self.host = host
        self.port = port
    }

    /// Reads and validates the environment.
    ///
    /// - Throws: `ConfigurationError` naming the variable at fault.
    public static func fromEnvironment(
        _ environment: EnvironmentReader = EnvironmentReader()
    ) throws
        -> SchedulerConfiguration
    {
        let kafka = try environment.kafkaConfiguration()
        let databaseURL = try environment.databaseURL()
        let schedulerID = try environment.processID("SCHEDULER_ID", fallbackPrefix: "scheduler")
        let lease = Duration.seconds(try environment.int("CAMPAIGN_LEASE_SECONDS", default: 10, range: 2...300))
        let renew = Duration.milliseconds(try environment.int("CAMPAIGN_RENEW_MS", default: 2000, range: 100...60_000))
        guard renew * 2 < lease else {
            throw ConfigurationError(
                variable: "CAMPAIGN_RENEW_MS", message: "must be under half of CAMPAIGN_LEASE_SECONDS")
        }
        return SchedulerConfiguration(
            schedulerID: schedulerID,
            kafka: kafka,
            topics: CallTopics.fromEnvironment(environment.values),
            groupID: environment.string("KAFKA_CAMPAIGN_GROUP", default: "campaign-schedulers"),
            databaseURL: databaseURL,
            databaseMaxConnections: try environment.int("DATABASE_MAX_CONNECTIONS", default: 10, range: 2...200),
            databaseTimeout: .milliseconds(
                Int64(try environment.double("DATABASE_TIMEOUT_SECONDS", default: 5, range: 0.1...600) * 1000)),
            lease: lease,
            renewInterval: renew,
            tick: .milliseconds(try environment.int("CAMPAIGN_TICK_MS", default: 50, range: 5...5000)),
            maxCampaigns: try environment.int("CAMPAIGN_MAX_HELD", default: 100, range: 1...10_000),
            commandTTL: .seconds(try environment.int("CAMPAIGN_COMMAND_TTL_SECONDS", default: 300, range: 10...86_400)),
            outcomeBatchSize: try environment.int("CAMPAIGN_OUTCOME_BATCH", default: 500, range: 1...10_000),
            host: environment.string("SCHEDULER_HOST", default: "0.0.0.0"),
            port: try environment.int("SCHEDULER_PORT", default: 8083, range: 0...65_535)
        )
    }
}

/// The scheduler's notion of now: the wall clock in production; tests inject one they move by hand, to cross calling
/// windows, DST changes and retry waits without waiting for them.
public protocol CampaignClock: Sendable {
    /// The current instant.
    func now() -> Date
}

/// The system's wall clock.
public struct SystemCampaignClock: CampaignClock {
    /// Creates the clock.
    public init() {}

    public func now() -> Date { Date() }
}
