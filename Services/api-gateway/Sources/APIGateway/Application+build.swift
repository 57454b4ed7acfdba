import CallDomain
import CallMessaging
import CallStore
import Foundation
import Hummingbird
import Kafka
import Logging
import NIOCore
import PostgresNIO
import Prometheus
import Recordings
import ServiceLifecycle
import ServiceSupport

/// The gateway's collaborators, as `buildRouter` takes them.
struct GatewayDependencies: Sendable {
    var users: any UserRepository
    var organizations: any OrganizationRepository
    var calls: any CallRepository
    var webhooks: any WebhookRepository
    var campaigns: any CampaignRepository
    var recordings: any CallRecordingRepository
    var recordingStore: any RecordingStore
    var publisher: any CommandPublishing
    var hub: StatusHub
    var kafkaHealth: KafkaHealth
    var metrics: GatewayMetrics
    var hasher: PasswordHasher
    var tokens: TokenService
    var accessLogger: Logger
    /// The API contract as served at `/openapi.json` (``OpenAPIContract``).
    var apiContract: [UInt8]
}

/// Builds the gateway: the HTTP application with its services (PostgreSQL pool, Kafka producer, the status
/// fan-out reader and the feed that hands its events to the live streams).
///
/// - Parameters:
///   - registry: where the gateway's metrics go and what `/metrics` renders; pass the process-wide registry of
///     `MetricsSetup.bootstrap()` in production so that the Kafka and PostgreSQL client metrics show too.
///   - logger: the application's logger.
///   - leadingServices: services started before the gateway's own and stopped after them (the trace exporter, so
///     that the spans of the last requests are still sent).
public func buildApplication(
    configuration: GatewayConfiguration,
    registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
    logger: Logger = Logger(label: "api-gateway"),
    leadingServices: [any Service] = []
) async throws -> some ApplicationProtocol {
    try await buildGateway(
        configuration: configuration, registry: registry, logger: logger, leadingServices: leadingServices
    ).application
}

/// The application with the parts tests look at: the router (its routes are compared with the OpenAPI document)
/// and the status reader (a test waits until it reads before publishing events).
struct BuiltGateway {
    var application: Application<RouterResponder<GatewayRequestContext>>
    var router: Router<GatewayRequestContext>
    var statusReader: KafkaFanOutReader
}

/// Builds the gateway and returns its parts.
func buildGateway(
    configuration: GatewayConfiguration,
    registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
    logger: Logger,
    leadingServices: [any Service] = []
) async throws -> BuiltGateway {
    let metrics = GatewayMetrics(registry: registry)
    let postgres = PostgresClient(
        configuration: try DatabaseConfiguration.client(
            url: configuration.databaseURL, maximumConnections: configuration.databaseMaxConnections,
            applicationName: "api-gateway"),
        backgroundLogger: logger)
    let store = CallStore(client: postgres, logger: logger)

    let publishTimeout = Duration.milliseconds(Int64(configuration.publishTimeoutSeconds * 1000))
    // Every request waits for its command's acknowledgement.
    var producerConfiguration = configuration.kafka.withDefaults(KafkaConfiguration.promptProducerDefaults)
    producerConfiguration.clientID += "-gateway"
    let producer = try KafkaProducer(
        configuration: producerConfiguration, deliveryTimeout: publishTimeout, logger: logger)
    let kafkaHealth = KafkaHealth(
        probe: FanOutReaderProbe(
            configuration: configuration.kafka, topic: configuration.topics.status, logger: logger),
        producerPrepared: { producer.isPrepared })
    let preparation = KafkaProducerPreparation(
        producer: producer, topics: [configuration.topics.originate, configuration.topics.control], logger: logger)
    let publisher = KafkaCommandPublisher(
        publisher: CallMessagePublisher(
            producer: producer, topics: configuration.topics, source: "/api-gateway/\(configuration.instanceID)"),
        timeout: publishTimeout, metrics: metrics, health: kafkaHealth, logger: logger)

    var readerConfiguration = configuration.kafka
    readerConfiguration.clientID += "-status-stream"
    let reader = try KafkaFanOutReader(
        configuration: readerConfiguration, topic: configuration.topics.status, start: .end, logger: logger)
    let hub = StatusHub(bufferSize: configuration.sseClientBuffer, metrics: metrics)
    let feed = StatusFeed(reader: reader, hub: hub, metrics: metrics, logger: logger)

    let dependencies = GatewayDependencies(
        users: store, organizations: store, calls: store, webhooks: store, campaigns: store, recordings: store,
        recordingStore: configuration.recordingStore.makeStore(), publisher: publisher,
        hub: hub,
        kafkaHealth: kafkaHealth,
        metrics: metrics,
        hasher: try await PasswordHasher(cost: configuration.bcryptCost),
        tokens: await TokenService(
            secretKey: configuration.secretKey, issuer: configuration.jwtIssuer, audience: configuration.jwtAudience,
            lifetimeMinutes: configuration.accessTokenExpireMinutes),
        accessLogger: logger,
        apiContract: try OpenAPIContract.json(
            .init(
                benchBaselineRoute: configuration.benchBaselineRoute, allowedContexts: configuration.allowedContexts,
                maxBodyBytes: configuration.maxBodyBytes, tokenRateLimit: configuration.tokenRateLimit)))
    let router = buildRouter(configuration: configuration, dependencies: dependencies)
    // Slow clients are cut off: a head or an idle connection by the idle timeout, a trickled body by the handler.
    let readTimeout = TimeAmount.milliseconds(Int64(configuration.httpReadTimeoutSeconds * 1000))
    var application = Application(
        router: router,
        server: .http1(
            configuration: .init(
                additionalChannelHandlers: [RequestReadTimeoutHandler(timeout: readTimeout)], idleTimeout: readTimeout)),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port)),
        services: leadingServices,
        logger: logger)
    application.addServices(postgres, producer, preparation, reader, feed)
    return BuiltGateway(application: application, router: router, statusReader: reader)
}

/// The routes: operations and docs at the root, the token endpoint, and the authenticated API under `/api/v1`
/// with its own request context.
func buildRouter(
    configuration: GatewayConfiguration, dependencies: GatewayDependencies
) -> Router<GatewayRequestContext> {
    let router = Router(context: GatewayRequestContext.self)
    if TracingSetup.isEnabled {
        // Outermost, so that the span covers every other middleware and sees the status the client got. Query
        // parameters that may hold a phone number are not recorded.
        router.add(middleware: TracingMiddleware(redactingQueryParameters: ["phone", "to"]))
    }
    router.addMiddleware {
        ObservationMiddleware(
            metrics: dependencies.metrics, trustForwardedFor: configuration.trustForwardedFor,
            accessLogger: dependencies.accessLogger)
        CORSMiddleware(origins: configuration.allowedOrigins, allowCredentials: configuration.corsAllowCredentials)
        BodyLimitMiddleware(
            maxBytes: configuration.maxBodyBytes,
            uploadLimit: { [contactListMaxBytes = configuration.contactListMaxBytes] path in
                CampaignsController.uploadLimit(of: path, contactListMaxBytes: contactListMaxBytes)
            })
    }

    OperationsController(
        repository: dependencies.calls, kafka: dependencies.kafkaHealth, metrics: dependencies.metrics,
        instanceID: configuration.instanceID
    ).addRoutes(to: router)
    if configuration.docsEnabled {
        DocsController(document: dependencies.apiContract).addRoutes(to: router)
    }
    if configuration.benchBaselineRoute {
        BenchBaselineController(maxBodyBytes: configuration.maxBodyBytes).addRoutes(to: router)
    }

    let api = router.group("api/v1")
    AuthController(
        users: dependencies.users, hasher: dependencies.hasher, tokens: dependencies.tokens,
        limiter: RateLimiter(count: configuration.tokenRateLimit.count, seconds: configuration.tokenRateLimit.seconds),
        metrics: dependencies.metrics, maxBodyBytes: configuration.maxBodyBytes
    ).addRoutes(to: api)

    let directory = UserDirectory(repository: dependencies.users, ttlSeconds: configuration.userCacheSeconds)
    let authenticated = router.group("api/v1")
        .add(
            middleware: AuthenticationMiddleware(
                tokens: dependencies.tokens, users: directory, keys: dependencies.organizations)
        )
        .group(context: AuthenticatedRequestContext.self)
    let retryAfter = max(1, Int(configuration.publishTimeoutSeconds.rounded(.up)))
    CallsController(
        intake: CallIntake(
            publisher: dependencies.publisher, repository: dependencies.calls, coalescer: IdempotencyCoalescer(),
            metrics: dependencies.metrics, publishRetryAfterSeconds: retryAfter,
            liveCallLimit: LiveCallLimit(repository: dependencies.organizations)),
        repository: dependencies.calls, publisher: dependencies.publisher,
        allowedContexts: configuration.allowedContexts, defaultTimeoutSeconds: configuration.defaultTimeoutSeconds,
        defaultTTLSeconds: configuration.callTTLSeconds, maxBodyBytes: configuration.maxBodyBytes,
        publishRetryAfterSeconds: retryAfter, webhookPolicy: configuration.webhookPolicy,
        webhooks: dependencies.webhooks, recordings: dependencies.recordings
    ).addRoutes(to: authenticated)
    RecordingsController(repository: dependencies.recordings, store: dependencies.recordingStore)
        .addRoutes(to: authenticated)
    EventsController(
        hub: dependencies.hub, repository: dependencies.calls,
        heartbeat: .milliseconds(Int64(configuration.sseHeartbeatSeconds * 1000))
    ).addRoutes(to: authenticated)
    UsersController(
        users: dependencies.users, directory: directory, hasher: dependencies.hasher,
        maxBodyBytes: configuration.maxBodyBytes
    ).addRoutes(to: authenticated)
    APIKeysController(repository: dependencies.organizations, maxBodyBytes: configuration.maxBodyBytes)
        .addRoutes(to: authenticated)
    OrganizationsController(repository: dependencies.organizations, maxBodyBytes: configuration.maxBodyBytes)
        .addRoutes(to: authenticated)
    WebhooksController(
        repository: dependencies.webhooks, calls: dependencies.calls, policy: configuration.webhookPolicy,
        maxBodyBytes: configuration.maxBodyBytes
    ).addRoutes(to: authenticated)
    CampaignsController(
        repository: dependencies.campaigns, allowedContexts: configuration.allowedContexts,
        defaultTimeoutSeconds: configuration.defaultTimeoutSeconds, maxBodyBytes: configuration.maxBodyBytes,
        uploadMaxBytes: configuration.contactListMaxBytes,
        uploadDirectory: URL(fileURLWithPath: configuration.uploadDirectory, isDirectory: true)
    ).addRoutes(to: authenticated)
    return router
}
