import CallDomain
import CallMessaging
import CallStore
import DevStack
import EmbeddedKafka
import Foundation
import Kafka
import Logging
import PostgresNIO
import Synchronization
import TestSupport
import Testing
import Webhooks

@testable import WebhookDispatcher

let testLogger: Logger = {
    var logger = Logger(label: "webhook-tests")
    logger.logLevel = ProcessInfo.processInfo.environment["WEBHOOK_TEST_LOG"] != nil ? .debug : .critical
    return logger
}()

/// A clock the test moves by hand: the dispatcher's due times, leases and signatures all follow it.
final class ManualClock: WebhookClock {
    private let current: Mutex<Date>

    /// Starts at `start` cut to a whole second, so that every instant it gives is exact in PostgreSQL too
    /// (microseconds) and a test can compare stored times with `==`.
    init(_ start: Date = Date()) {
        current = Mutex(Date(timeIntervalSince1970: start.timeIntervalSince1970.rounded(.down)))
    }

    func now() -> Date { current.withLock { $0 } }

    func advance(by duration: Duration) {
        current.withLock { $0.addTimeInterval(duration.timeInterval) }
    }
}

/// One test's world: a migrated database, an embedded Kafka cluster with its own topics, a producer for status
/// events, and webhook receivers.
struct DispatcherTestEnvironment: Sendable {
    let store: CallStore
    let databaseURL: String
    let kafka: EmbeddedKafkaCluster
    let topics: CallTopics
    let publisher: CallMessagePublisher

    var kafkaConfiguration: KafkaConfiguration {
        KafkaConfiguration(
            bootstrapServers: kafka.bootstrapServers, clientID: unique("tests"),
            properties: [
                "heartbeat.interval.ms": "500", "session.timeout.ms": "6000",
                "topic.metadata.refresh.interval.ms": "1000",
            ])
    }

    static func run<Result: Sendable>(
        _ body: @Sendable (DispatcherTestEnvironment) async throws -> Result
    )
        async throws -> Result
    {
        try await TestDatabase.withStore { store, databaseURL in
            let topics = CallTopics(
                originate: unique("originate"), control: unique("control"), status: unique("status"),
                deadLetter: unique("deadletter"))
            let kafka = try EmbeddedKafkaCluster(
                brokers: 1,
                topics: [topics.originate: 1, topics.control: 1, topics.status: 4, topics.deadLetter: 1],
                logger: testLogger)
            defer { kafka.shutdown() }
            let producer = try KafkaProducer(
                configuration: KafkaConfiguration(bootstrapServers: kafka.bootstrapServers, clientID: unique("p")),
                deliveryTimeout: .seconds(30), logger: testLogger)
            let producerTask = Task { _ = try? await producer.run() }
            let environment = DispatcherTestEnvironment(
                store: store, databaseURL: databaseURL, kafka: kafka, topics: topics,
                publisher: CallMessagePublisher(producer: producer, topics: topics, source: "/tests"))
            do {
                let result = try await body(environment)
                await stop(producerTask, within: .seconds(15), "test producer")
                return result
            } catch {
                await stop(producerTask, within: .seconds(15), "test producer")
                throw error
            }
        }
    }

    /// A dispatcher configuration for this environment: loopback receivers allowed, fast polling, short timeouts.
    func configuration(
        id: String = unique("dispatcher"), _ adjust: (inout DispatcherConfiguration) -> Void = { _ in }
    ) -> DispatcherConfiguration {
        var configuration = DispatcherConfiguration(
            dispatcherID: id, kafka: kafkaConfiguration, topics: topics, groupID: "webhook-dispatchers",
            databaseURL: databaseURL, databaseMaxConnections: 4, databaseTimeout: .seconds(10),
            targetPolicy: .allowPrivate, attemptTimeout: .seconds(5), maxInFlight: 32, endpointConcurrency: 8,
            pollInterval: .milliseconds(20), fanOutBatchSize: 100, host: "127.0.0.1", port: 0)
        adjust(&configuration)
        return configuration
    }

    /// Runs an in-process dispatcher for the duration of `body`, then stops it gracefully. A graceful stop lets the
    /// attempts in flight finish, each within the attempt timeout, so the stop is bounded by that timeout plus room
    /// for storing their outcomes.
    func withDispatcher<Result: Sendable>(
        _ configuration: DispatcherConfiguration, clock: any WebhookClock = SystemWebhookClock(),
        resolver: WebhookSender.Resolver? = nil, _ body: () async throws -> Result
    ) async throws -> Result {
        let services = try buildDispatcher(
            configuration: configuration, logger: testLogger, clock: clock, resolver: resolver)
        let task = Task { try await services.run() }
        let stopBound = configuration.attemptTimeout + .seconds(25)
        do {
            let result = try await body()
            await services.triggerGracefulShutdown()
            try await value(of: task, within: stopBound, "the webhook dispatcher")
            return result
        } catch {
            await services.triggerGracefulShutdown()
            _ = try? await value(of: task, within: stopBound, "the webhook dispatcher")
            throw error
        }
    }

    /// Runs a receiver for the duration of `body`; `body` gets it and its base URL.
    func withReceiver<Result: Sendable>(
        respond: @escaping @Sendable (WebhookReceiver.Delivery) -> WebhookReceiver.Answer = { _ in .init(status: 204) },
        clock: @escaping @Sendable () -> Date = { Date() },
        _ body: (WebhookReceiver, String) async throws -> Result
    ) async throws -> Result {
        let receiver = WebhookReceiver(respond: respond, clock: clock, logger: testLogger)
        let task = Task { _ = try? await receiver.run() }
        defer { task.cancel() }
        let url = try await receiver.baseURL
        let result = try await body(receiver, url)
        await stop(task, within: .seconds(15), "the webhook receiver")
        return result
    }

    /// A new organization with one subscription endpoint at `url`; returns both and the endpoint's secret.
    func subscribe(
        url: String, eventTypes: Set<WebhookEventType> = [], organization: OrganizationID? = nil
    ) async throws -> (organization: OrganizationID, endpoint: WebhookEndpoint, secret: WebhookSecret) {
        let organizationID: OrganizationID
        if let organization {
            organizationID = organization
        } else {
            organizationID = try await store.createOrganization(name: unique("org"), by: AuditActor(name: "test")).id
        }
        let secret = WebhookSecret.generate()
        let endpoint = try await store.createWebhookEndpoint(
            in: organizationID, url: url, description: "test", eventTypes: eventTypes, enabled: true,
            secret: secret, by: AuditActor(name: "test"))
        return (organizationID, endpoint, secret)
    }

    /// Publishes a status event of a call, as a worker does.
    func publish(
        _ callID: CallID, seq: Int, _ status: CallStatus, previous: CallStatus, organization: OrganizationID,
        eventID: UUID = UUID()
    ) async throws -> CallStatusEvent {
        let event = CallStatusEvent(
            eventID: eventID, callID: callID, seq: seq, status: status, previousStatus: previous,
            occurredAt: Date(), to: "+15550100", organizationID: organization)
        _ = try await publisher.publish(event, traceParent: nil)
        return event
    }

    /// The deliveries of an endpoint, oldest first.
    func deliveries(of endpoint: WebhookEndpoint) async throws -> [WebhookDelivery] {
        try await store.webhookDeliveries(
            endpoint: endpoint.id, in: endpoint.organizationID, limit: 200, before: nil
        ).reversed()
    }

    /// A delivery with its attempts.
    func delivery(_ delivery: WebhookDelivery) async throws -> (WebhookDelivery, [WebhookAttempt]) {
        try #require(try await store.webhookDelivery(id: delivery.id, in: delivery.organizationID))
    }

    /// The endpoint as stored now.
    func endpoint(_ endpoint: WebhookEndpoint) async throws -> WebhookEndpoint {
        try #require(try await store.webhookEndpoint(id: endpoint.id, in: endpoint.organizationID))
    }
}
