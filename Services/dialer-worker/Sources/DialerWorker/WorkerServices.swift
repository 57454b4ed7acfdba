import ARI
import AsyncHTTPClient
import CallDomain
import CallMessaging
import CallStore
import Hummingbird
import Kafka
import Logging
import NIOFileSystem
import PostgresNIO
import Recordings
import ServiceLifecycle
import Synchronization
import UnixSignals

/// A built worker: the service group to run and a window on its state (for tests and tools).
public struct DialerWorkerServices: Sendable {
    /// Run it; it stops on the configured signals or `triggerGracefulShutdown()`.
    public let group: ServiceGroup
    /// Live view of the worker.
    public let status: WorkerStatus

    /// Runs the group until it is shut down (see ``triggerGracefulShutdown()``) or a service fails.
    public func run() async throws {
        try await group.run()
    }

    /// Starts a graceful shutdown, as SIGTERM does.
    public func triggerGracefulShutdown() async {
        await group.triggerGracefulShutdown()
    }
}

/// A read-only view of a running worker's state.
public final class WorkerStatus: Sendable {
    let context: WorkerContext
    let boundPort = Mutex<Int?>(nil)

    init(context: WorkerContext) {
        self.context = context
    }

    /// Calls the worker owns (being placed or live).
    public var liveCalls: Int { context.tracker.count }
    /// Whether intake is paused, and why (`max_concurrent_calls`, `max_calls_per_second`, `database_unreachable`,
    /// `ari_disconnected`, `max_originates_in_flight`); `nil` while it takes commands.
    public var pauseReason: String? { context.gate.blockedBy?.rawValue }
    /// Whether the ARI events WebSocket is connected.
    public var ariConnected: Bool { context.gate.ariConnected }
    /// Commands waiting because their organization is at one of its limits.
    public var deferredCalls: Int { context.gate.deferred }
    /// The port the operations server listens on, once it does.
    public var opsPort: Int? { boundPort.withLock { $0 } }
    /// The ARI application name this worker registered.
    public var application: String { context.configuration.ari.application }
    /// Whether the worker reports itself ready (`GET /ready`).
    public func isReady() async -> Bool {
        await OpsServer.readiness(context).status == "ready"
    }
}

/// Builds the worker's services, in start order: ARI HTTP client, PostgreSQL client, Kafka producer, operations
/// HTTP server, ARI events WebSocket, history writer, control handler, dialer.
///
/// A service group shuts down in reverse order, so on SIGTERM the dialer stops first: it stops taking commands,
/// finishes its originates in flight, commits, leaves its group and tracks its live calls up to the drain timeout,
/// while the control handler (hangups still work), the history writer, the WebSocket, the producer and the
/// PostgreSQL client it relies on are still running. Each consumer is owned by the service reading it, which
/// leaves its group only after committing what it stored.
///
/// - Parameters:
///   - renderMetrics: the Prometheus text for `/metrics` (the process bootstraps the registry; tests pass none).
///   - gracefulShutdownSignals: signals that start a graceful shutdown (`[.sigterm, .sigint]` in the executable).
///   - leadingServices: services started before the others and stopped after them (the trace exporter, so that
///     the spans of the last work are still sent).
public func buildServiceGroup(
    configuration: WorkerConfiguration,
    logger: Logger,
    renderMetrics: @escaping @Sendable () -> String = { "" },
    gracefulShutdownSignals: [UnixSignal] = [],
    leadingServices: [any Service] = []
) throws -> DialerWorkerServices {
    var logger = logger
    logger[metadataKey: "node.id"] = "\(configuration.nodeID)"
    logger[metadataKey: "worker.id"] = "\(configuration.workerID)"

    var postgresConfiguration = try DatabaseConfiguration.client(
        url: configuration.databaseURL,
        maximumConnections: configuration.databaseMaxConnections,
        applicationName: "dialer-worker-\(configuration.workerID)"
    )
    postgresConfiguration.options.connectTimeout = .seconds(2)
    let postgres = PostgresClient(configuration: postgresConfiguration, backgroundLogger: logger)
    let store = CallStore(client: postgres, logger: logger)

    var kafka = configuration.kafka
    if kafka.clientID == KafkaConfiguration.defaultClientID {
        kafka.clientID = "dialer-worker-\(configuration.workerID)"
    }
    // A call's status events go out one at a time, each acknowledged before the next: a short linger keeps the
    // history and the live streams close behind the calls (an operator's KAFKA_PROP_LINGER_MS still wins).
    let producerKafka = kafka.withDefaults(KafkaConfiguration.promptProducerDefaults)
    let producer = try KafkaProducer(
        configuration: producerKafka, deliveryTimeout: configuration.kafkaDeliveryTimeout, logger: logger)
    // Both consumers want commands and events as soon as they are written (the history stays current within a
    // fraction of a second), and a dead worker's partitions, whose commands wait meanwhile, must move within seconds.
    let consumerKafka = kafka.withDefaults(KafkaConfiguration.promptConsumerDefaults)
    let dialerConsumer = try KafkaConsumer(
        configuration: consumerKafka, groupID: configuration.dialerGroupID, topics: [configuration.topics.originate],
        logger: logger)
    let historyConsumer = try KafkaConsumer(
        configuration: consumerKafka, groupID: configuration.historyGroupID,
        topics: [configuration.topics.originate, configuration.topics.status], logger: logger)
    let controlReader = try KafkaFanOutReader(
        configuration: consumerKafka, topic: configuration.topics.control, start: .end, logger: logger)

    // The worker's own HTTP client for ARI (not the process-wide shared one, whose idle connections live ten
    // minutes): its connections close when the worker stops.
    // The ARI client records its own spans, named by ARI route; AsyncHTTPClient's would name them by method only.
    var httpConfiguration = HTTPClient.Configuration()
    httpConfiguration.tracing.tracer = nil
    let httpClient = HTTPClient(
        eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: httpConfiguration,
        backgroundActivityLogger: logger)
    let ari = ARIClient(configuration: configuration.ari, httpClient: httpClient, logger: logger)
    let events = ARIEventStream(configuration: configuration.ari, logger: logger)
    let publisher = CallMessagePublisher(
        producer: producer, topics: configuration.topics, source: "/dialer-worker/\(configuration.workerID)")
    let metrics = WorkerMetrics()
    let recorder = Recorder(
        settings: Recorder.Settings(
            application: configuration.ari.application, nodeID: configuration.nodeID,
            format: configuration.recording.format, maxDurationSeconds: configuration.recording.maxDurationSeconds,
            spoolDirectory: configuration.recording.spoolDirectory.appending(configuration.workerID),
            sweepInterval: configuration.recording.sweepInterval, settleTime: configuration.recording.settleTime,
            retention: configuration.recording.retention, downloadTimeout: configuration.recording.downloadTimeout),
        repository: store, node: ari, store: configuration.recording.store.makeStore(), logger: logger)
    let context = WorkerContext(
        configuration: configuration,
        store: store,
        ari: ari,
        publisher: publisher,
        tracker: CallTracker(
            nodeID: configuration.nodeID, workerID: configuration.workerID,
            application: configuration.ari.application,
            machineDetectionDialplan: configuration.machineDetectionDialplan,
            machineDialplan: configuration.machineDialplan),
        gate: IntakeGate(
            maxConcurrentCalls: configuration.maxConcurrentCalls,
            maxOriginatesInFlight: configuration.maxOriginatesInFlight,
            maxCallsPerSecond: configuration.maxCallsPerSecond,
            maxDeferredCalls: configuration.maxDeferredCalls),
        readiness: WorkerReadiness(producerPrepared: { producer.isPrepared }),
        lease: OwnerLease(ownerTimeout: configuration.ownerTimeout),
        metrics: metrics,
        logger: logger,
        recorder: recorder
    )

    let status = WorkerStatus(context: context)
    let ops = Application(
        router: OpsServer.router(context: context, renderMetrics: renderMetrics),
        configuration: .init(
            address: .hostname(configuration.host, port: configuration.port),
            serverName: "dialer-worker"),
        onServerRunning: { channel in
            let port = channel.localAddress?.port
            status.boundPort.withLock { $0 = port }
        },
        logger: logger
    )
    let history = HistoryWriter(
        consumer: historyConsumer, store: store, topics: configuration.topics,
        batchSize: configuration.historyBatchSize,
        attemptTimeout: configuration.databaseTimeout, readiness: context.readiness, metrics: metrics,
        deadLetter: { [context] message, reason, error in
            await context.deadLetter(message, reason: reason, error: error, group: configuration.historyGroupID)
        },
        logger: logger)
    let control = ControlHandler(reader: controlReader, context: context)
    let dialer = Dialer(context: context, consumer: dialerConsumer, events: events, history: history)

    let group = ServiceGroup(
        configuration: ServiceGroupConfiguration(
            services: leadingServices.map { .init(service: $0) } + [
                .init(service: HTTPClientService(client: httpClient), serviceName: "ari-http-client"),
                .init(service: postgres, serviceName: "postgres"),
                .init(service: producer, serviceName: "kafka-producer"),
                .init(
                    service: KafkaProducerPreparation(
                        producer: producer, topics: [configuration.topics.status], logger: logger),
                    serviceName: "kafka-producer-preparation"),
                .init(service: ops, serviceName: "ops-http"),
                .init(service: events, serviceName: "ari-events"),
                .init(service: history, serviceName: "history-writer"),
                .init(service: control, serviceName: "control"),
                // Before the dialer: stopped after it, so the recordings of the calls it drains are still handled.
                .init(service: recorder, serviceName: "recorder"),
                .init(service: dialer, serviceName: "dialer"),
            ],
            gracefulShutdownSignals: gracefulShutdownSignals,
            logger: logger
        )
    )
    return DialerWorkerServices(group: group, status: status)
}

/// Shuts the worker's ARI HTTP client down once every service using it has stopped (it is first in the group).
struct HTTPClientService: Service {
    let client: HTTPClient

    func run() async throws {
        // Returns at graceful shutdown; throws on cancellation, which ends the client as well.
        try? await gracefulShutdown()
        try await client.shutdown()
    }
}
