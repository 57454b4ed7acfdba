import CallDomain
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
import Webhooks

/// A built dispatcher: the service group to run and a window on its state (for tests and tools).
public struct WebhookDispatcherServices: Sendable {
    /// Run it; it stops on the configured signals or ``triggerGracefulShutdown()``.
    public let group: ServiceGroup
    /// Live view of the dispatcher.
    public let status: DispatcherStatus

    /// Runs the group until it is shut down or a service fails.
    public func run() async throws {
        try await group.run()
    }

    /// Starts a graceful shutdown, as SIGTERM does.
    public func triggerGracefulShutdown() async {
        await group.triggerGracefulShutdown()
    }
}

/// A read-only view of a running dispatcher.
public final class DispatcherStatus: Sendable {
    let boundPort = Mutex<Int?>(nil)

    /// The port the operations server listens on, once it does.
    public var opsPort: Int? { boundPort.withLock { $0 } }
}

/// Builds the dispatcher's services, in start order: PostgreSQL client, operations HTTP server, delivery scheduler,
/// fan-out. A group shuts down in reverse order: the fan-out first (it stores and commits what it read), then the
/// scheduler (no new claims; attempts in flight finish and their outcomes are stored), then the rest.
///
/// - Parameters:
///   - clock: the dispatcher's notion of now (tests move it by hand to run through the retry schedule).
///   - resolver: host name resolution for attempts (tests inject one; the system resolver by default).
///   - leadingServices: services started before the others and stopped after them (the trace exporter, so that
///     the spans of the last work are still sent).
public func buildDispatcher(
    configuration: DispatcherConfiguration,
    logger: Logger,
    clock: any WebhookClock = SystemWebhookClock(),
    resolver: WebhookSender.Resolver? = nil,
    renderMetrics: @escaping @Sendable () -> String = { "" },
    gracefulShutdownSignals: [UnixSignal] = [],
    leadingServices: [any Service] = []
) throws -> WebhookDispatcherServices {
    var logger = logger
    logger[metadataKey: "dispatcher.id"] = "\(configuration.dispatcherID)"

    var postgresConfiguration = try DatabaseConfiguration.client(
        url: configuration.databaseURL,
        maximumConnections: configuration.databaseMaxConnections,
        applicationName: "webhook-dispatcher-\(configuration.dispatcherID)"
    )
    postgresConfiguration.options.connectTimeout = .seconds(2)
    let postgres = PostgresClient(configuration: postgresConfiguration, backgroundLogger: logger)
    let store = CallStore(client: postgres, logger: logger)

    var kafka = configuration.kafka
    if kafka.clientID == KafkaConfiguration.defaultClientID {
        kafka.clientID = "webhook-dispatcher-\(configuration.dispatcherID)"
    }
    // Webhooks should follow the calls closely, and a dead dispatcher's partitions move within seconds.
    let consumer = try KafkaConsumer(
        configuration: kafka.withDefaults(KafkaConfiguration.promptConsumerDefaults), groupID: configuration.groupID,
        topics: [configuration.topics.status], logger: logger)

    let metrics = DispatcherMetrics()
    let readiness = ConsumerReadiness()
    let sender = try WebhookSender(
        policy: configuration.targetPolicy, timeout: configuration.attemptTimeout, resolver: resolver)
    let scheduler = DeliveryScheduler(
        store: store, sender: sender, clock: clock, configuration: configuration, metrics: metrics, logger: logger)
    let fanOut = EventFanOut(
        consumer: consumer, store: store, clock: clock, batchSize: configuration.fanOutBatchSize,
        databaseTimeout: configuration.databaseTimeout, readiness: readiness, metrics: metrics,
        scheduler: scheduler, logger: logger)

    let status = DispatcherStatus()
    let ops = Application(
        router: OperationsEndpoints.router(
            ready: {
                .databaseAndConsumer(
                    database: (try? await withTimeout(.seconds(2)) { try await store.ping() }) != nil,
                    kafka: readiness.kafkaReady)
            }, renderMetrics: renderMetrics),
        configuration: .init(
            address: .hostname(configuration.host, port: configuration.port), serverName: "webhook-dispatcher"),
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
                .init(service: ops, serviceName: "ops-http"),
                .init(service: scheduler, serviceName: "webhook-scheduler"),
                .init(service: fanOut, serviceName: "webhook-fan-out"),
            ],
            gracefulShutdownSignals: gracefulShutdownSignals,
            logger: logger
        )
    )
    return WebhookDispatcherServices(group: group, status: status)
}

/// The `webhook-dispatcher serve` process: logging and metrics bootstrap, configuration, the service group.
public enum DispatcherProcess {
    /// Runs the dispatcher until SIGTERM or SIGINT, then shuts it down gracefully.
    ///
    /// - Throws: `ConfigurationError` naming the variable when the environment is wrong, or a service's error.
    public static func serve(environment: EnvironmentReader = EnvironmentReader()) async throws {
        try LoggingSetup.bootstrap(service: "webhook-dispatcher", environment: environment)
        let logger = Logger(label: "webhook-dispatcher")
        let configuration: DispatcherConfiguration
        do {
            configuration = try DispatcherConfiguration.fromEnvironment(environment)
        } catch {
            logger.critical("refusing to start", metadata: ["error": "\(error)"])
            throw error
        }
        let registry = MetricsSetup.bootstrap()
        let tracing = try TracingSetup.bootstrap(service: "webhook-dispatcher", environment: environment)
        let services = try buildDispatcher(
            configuration: configuration, logger: logger, renderMetrics: { MetricsSetup.render(registry) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            leadingServices: tracing)
        if configuration.targetPolicy.allowsPrivateTargets {
            logger.warning(
                "WEBHOOK_ALLOW_PRIVATE_TARGETS is on: webhooks may reach private addresses and plain http (development only)"
            )
        }
        logger.info(
            "webhook dispatcher starting",
            metadata: ["dispatcher.port": "\(configuration.port)", "kafka.group": "\(configuration.groupID)"])
        try await services.group.run()
        logger.info("webhook dispatcher stopped")
    }
}
