import CallDomain
import CallMessaging
import CallStore
import Foundation
import Hummingbird
import Kafka
import Logging
import OperationsHTTP
import PostgresNIO
import ServiceLifecycle
import ServiceSupport
import Synchronization
import UnixSignals

/// A built scheduler: the service group to run and a window on its state (for tests and tools).
public struct CampaignSchedulerServices: Sendable {
    /// Run it; it stops on the configured signals or ``triggerGracefulShutdown()``.
    public let group: ServiceGroup
    /// Live view of the scheduler.
    public let status: SchedulerStatus

    /// Runs the group until it is shut down or a service fails.
    public func run() async throws {
        try await group.run()
    }

    /// Starts a graceful shutdown, as SIGTERM does.
    public func triggerGracefulShutdown() async {
        await group.triggerGracefulShutdown()
    }
}

/// A read-only view of a running scheduler.
public final class SchedulerStatus: Sendable {
    let boundPort = Mutex<Int?>(nil)
    let runner = Mutex<CampaignRunner?>(nil)

    /// The port the operations server listens on, once it does.
    public var opsPort: Int? { boundPort.withLock { $0 } }
    /// The campaigns held now.
    public var heldCampaigns: [UUID] { runner.withLock { $0 }?.heldCampaigns ?? [] }
}

/// Builds the scheduler's services, in start order: PostgreSQL client, Kafka producer, operations HTTP server,
/// call-end reader, campaign runner. A group shuts down in reverse order: the runner first (no new dispatch; its
/// leases go back), then the reader (it stores and commits what it read), then the rest.
///
/// - Parameters:
///   - clock: the scheduler's notion of now (tests move it by hand across calling windows and retry waits).
///   - leadingServices: services started before the others and stopped after them (the trace exporter, so that
///     the spans of the last work are still sent).
public func buildScheduler(
    configuration: SchedulerConfiguration,
    logger: Logger,
    clock: any CampaignClock = SystemCampaignClock(),
    renderMetrics: @escaping @Sendable () -> String = { "" },
    gracefulShutdownSignals: [UnixSignal] = [],
    leadingServices: [any Service] = []
) throws -> CampaignSchedulerServices {
    var logger = logger
    logger[metadataKey: "scheduler.id"] = "\(configuration.schedulerID)"

    var postgresConfiguration = try DatabaseConfiguration.client(
        url: configuration.databaseURL,
        maximumConnections: configuration.databaseMaxConnections,
        applicationName: "campaign-scheduler-\(configuration.schedulerID)"
    )
    postgresConfiguration.options.connectTimeout = .seconds(2)
    let postgres = PostgresClient(configuration: postgresConfiguration, backgroundLogger: logger)
    let store = CallStore(client: postgres, logger: logger)

    var kafka = configuration.kafka
    if kafka.clientID == KafkaConfiguration.defaultClientID {
        kafka.clientID = "campaign-scheduler-\(configuration.schedulerID)"
    }
    // Commands are acknowledged one by one; a short linger keeps each call's dispatch prompt.
    let producer = try KafkaProducer(
        configuration: kafka.withDefaults(KafkaConfiguration.promptProducerDefaults), deliveryTimeout: .seconds(10),
        logger: logger)
    // Call ends should reach their contacts promptly, and a dead scheduler's partitions move within seconds.
    let consumer = try KafkaConsumer(
        configuration: kafka.withDefaults(KafkaConfiguration.promptConsumerDefaults), groupID: configuration.groupID,
        topics: [configuration.topics.status], logger: logger)

    let metrics = SchedulerMetrics()
    let readiness = ConsumerReadiness()
    let runner = CampaignRunner(
        store: store,
        publisher: CallMessagePublisher(
            producer: producer, topics: configuration.topics, source: "/campaign-scheduler/\(configuration.schedulerID)"
        ),
        clock: clock, configuration: configuration, metrics: metrics, logger: logger)
    let reader = CallEndReader(
        consumer: consumer, store: store, clock: clock, batchSize: configuration.outcomeBatchSize,
        databaseTimeout: configuration.databaseTimeout, readiness: readiness, metrics: metrics, logger: logger)

    let status = SchedulerStatus()
    status.runner.withLock { $0 = runner }
    let ops = Application(
        router: OperationsEndpoints.router(
            ready: {
                .databaseAndConsumer(
                    database: (try? await withTimeout(.seconds(2)) { try await store.ping() }) != nil,
                    kafka: readiness.kafkaReady)
            }, renderMetrics: renderMetrics),
        configuration: .init(
            address: .hostname(configuration.host, port: configuration.port), serverName: "campaign-scheduler"),
        onServerRunning: { channel in
            let port = channel.localAddress?.port
            status.boundPort.withLock { $0 = port }
        },
        logger: logger
    )
    let group = ServiceGroup(
        configuration: ServiceGroupConfiguration(
            services: leadingServices.map { .init(service: $0) } + [
                .init(service: postgres, serviceName: "postgres"),
                .init(service: producer, serviceName: "kafka-producer"),
                .init(service: ops, serviceName: "ops-http"),
                .init(service: reader, serviceName: "call-end-reader"),
                .init(service: runner, serviceName: "campaign-runner"),
            ],
            gracefulShutdownSignals: gracefulShutdownSignals,
            logger: logger
        )
    )
    return CampaignSchedulerServices(group: group, status: status)
}

/// The `campaign-scheduler serve` process: logging and metrics bootstrap, configuration, the service group.
public enum SchedulerProcess {
    /// Runs the scheduler until SIGTERM or SIGINT, then shuts it down gracefully.
    ///
    /// - Throws: `ConfigurationError` naming the variable when the environment is wrong, or a service's error.
    public static func serve(environment: EnvironmentReader = EnvironmentReader()) async throws {
        try LoggingSetup.bootstrap(service: "campaign-scheduler", environment: environment)
        let logger = Logger(label: "campaign-scheduler")
        let configuration: SchedulerConfiguration
        do {
            configuration = try SchedulerConfiguration.fromEnvironment(environment)
        } catch {
            logger.critical("refusing to start", metadata: ["error": "\(error)"])
            throw error
        }
        let registry = MetricsSetup.bootstrap()
        let tracing = try TracingSetup.bootstrap(service: "campaign-scheduler", environment: environment)
        let services = try buildScheduler(
            configuration: configuration, logger: logger, renderMetrics: { MetricsSetup.render(registry) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            leadingServices: tracing)
        logger.info(
            "campaign scheduler starting",
            metadata: ["scheduler.port": "\(configuration.port)", "kafka.group": "\(configuration.groupID)"])
        try await services.group.run()
        logger.info("campaign scheduler stopped")
    }
}
