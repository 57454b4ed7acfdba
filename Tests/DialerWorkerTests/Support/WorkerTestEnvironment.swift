import ARI
import ARISimulator
import CallDomain
import CallMessaging
import CallStore
import DialerWorker
import EmbeddedKafka
import Foundation
import Kafka
import Logging
import Synchronization
import TestSupport
import Testing

/// Log level of the components the tests start (`DIALER_TEST_LOG_LEVEL`, default `error`).
let testLogger: Logger = {
    var logger = Logger(label: "dialer-worker-tests")
    let level = ProcessInfo.processInfo.environment["DIALER_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:))
    logger.logLevel = level ?? .error
    return logger
}()

/// For the simulator, whose cancellation at the end of a test logs errors that say nothing about the test.
let quietLogger: Logger = {
    var logger = Logger(label: "ari-simulator")
    logger.logLevel = .critical
    return logger
}()

/// A name no other test (or run) uses.
func unique(_ prefix: String) -> String {
    "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
}

struct TimeoutError: Error, CustomStringConvertible {
    var description: String
}

/// Polls `condition` until it holds or `timeout` passes; a generous bound, as the test machine may be loaded.
func eventually(
    timeout: Duration = .seconds(60),
    _ what: String,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record("timed out waiting for: \(what)")
    throw TimeoutError(description: "timed out waiting for \(what)")
}

/// Everything a worker needs, real and on loopback: an embedded Kafka cluster with fresh topics, the ARI simulator
/// on a free port, a fresh migrated PostgreSQL database, a producer to publish commands, and a reader that records
/// every status event published.
struct WorkerTestEnvironment: Sendable {
    let kafka: EmbeddedKafkaCluster
    let simulator: ARISimulator
    let ariBaseURL: String
    let store: CallStore
    let databaseURL: String
    let topics: CallTopics
    let publisher: CallMessagePublisher
    let statusLog: StatusLog
    let nodeID: String

    /// Client settings that make group changes quick enough for tests.
    var kafkaConfiguration: KafkaConfiguration {
        KafkaConfiguration(
            bootstrapServers: kafka.bootstrapServers,
            clientID: unique("tests"),
            properties: WorkerTestEnvironment.fastGroupProperties)
    }

    static let fastGroupProperties = [
        "heartbeat.interval.ms": "500",
        "session.timeout.ms": "6000",
        "topic.metadata.refresh.interval.ms": "1000",
    ]

    /// Runs `body` in a fresh environment and tears it down afterwards.
    ///
    /// - Parameter postgres: a server of the test's own (one it stops and starts); by default a fresh database on
    ///   the shared test server.
    static func run<Result: Sendable>(
        partitions: Int32 = 4,
        simulator simulatorConfiguration: ARISimulatorConfiguration = .init(),
        postgres: ThrowawayPostgres? = nil,
        _ body: @escaping @Sendable (WorkerTestEnvironment) async throws -> Result
    ) async throws -> Result {
        guard let postgres else {
            return try await TestDatabase.withStore { store, databaseURL in
                try await run(partitions, simulatorConfiguration, store, databaseURL, body)
            }
        }
        return try await TestDatabase.withClient(url: postgres.url) { client in
            try await Migrator(client: client, logger: testLogger).migrate()
            return try await run(
                partitions, simulatorConfiguration, CallStore(client: client, logger: testLogger), postgres.url, body)
        }
    }

    private static func run<Result: Sendable>(
        _ partitions: Int32,
        _ simulatorConfiguration: ARISimulatorConfiguration,
        _ store: CallStore,
        _ databaseURL: String,
        _ body: @Sendable (WorkerTestEnvironment) async throws -> Result
    ) async throws -> Result {
        let topics = CallTopics(
            originate: unique("originate"), control: unique("control"), status: unique("status"),
            deadLetter: unique("deadletter"))
        let kafka = try EmbeddedKafkaCluster(
            brokers: 1,
            topics: [
                topics.originate: partitions, topics.control: 2, topics.status: partitions, topics.deadLetter: 1,
            ],
            logger: testLogger)
        defer { kafka.shutdown() }
        let simulator = try ARISimulator(configuration: simulatorConfiguration, logger: quietLogger)
        let configuration = KafkaConfiguration(
            bootstrapServers: kafka.bootstrapServers, clientID: unique("tests"), properties: fastGroupProperties)
        let producer = try KafkaProducer(
            configuration: configuration, deliveryTimeout: .seconds(30), logger: testLogger)
        let statusReader = try KafkaFanOutReader(
            configuration: configuration, topic: topics.status, start: .beginning, logger: testLogger)
        let statusLog = StatusLog()
        // Unstructured, and stopped with a bound: one component that ignores its cancellation fails to stop with a
        // warning instead of holding the run.
        let background: [(String, Task<Void, Never>)] = [
            ("ARI simulator", Task { _ = try? await simulator.run() }),
            ("test producer", Task { _ = try? await producer.run() }),
            ("status reader", Task { _ = try? await statusReader.run() }),
            (
                "status log",
                Task {
                    do {
                        for try await message in statusReader.messages {
                            statusLog.record(message)
                        }
                    } catch {}
                }
            ),
        ]
        func stopBackground() async {
            for (name, task) in background { await stop(task, within: .seconds(15), name) }
        }
        do {
            _ = try await statusReader.waitUntilReady()
            let environment = WorkerTestEnvironment(
                kafka: kafka,
                simulator: simulator,
                ariBaseURL: try await simulator.baseURL,
                store: store,
                databaseURL: databaseURL,
                topics: topics,
                publisher: CallMessagePublisher(producer: producer, topics: topics, source: "/tests"),
                statusLog: statusLog,
                nodeID: unique("node")
            )
            let result = try await body(environment)
            await stopBackground()
            return result
        } catch {
            await stopBackground()
            throw error
        }
    }

    // MARK: - Worker configuration

    /// A worker configuration for this environment; `adjust` changes what a test needs.
    func workerConfiguration(
        workerID: String = unique("worker"),
        application: String = unique("app"),
        _ adjust: (inout WorkerConfiguration) -> Void = { _ in }
    ) throws -> WorkerConfiguration {
        var configuration = WorkerConfiguration(
            nodeID: nodeID,
            workerID: workerID,
            ari: ARIConfiguration(
                baseURL: ariBaseURL,
                username: "dialer",
                password: "dialer-secret",
                application: application,
                requestTimeout: .seconds(10),
                reconnectBackoff: .init(initial: .milliseconds(100), max: .seconds(1)),
                pingInterval: .seconds(5)
            ),
            endpointTemplate: try EndpointTemplate("PJSIP/{to}@carrier"),
            defaultDialplan: try DialplanTarget(context: "agents", extension: "s", priority: 1),
            maxConcurrentCalls: 100,
            maxCallsPerSecond: 100,
            kafka: kafkaConfiguration,
            topics: topics,
            dialerGroupID: "dialer-workers",
            historyGroupID: "call-history",
            databaseURL: databaseURL,
            databaseMaxConnections: 4,
            host: "127.0.0.1",
            port: 0,
            drainTimeout: .seconds(10),
            reconcileGrace: .milliseconds(500),
            reconcileInterval: .seconds(1),
            stuckMargin: .seconds(10),
            historyBatchSize: 200
        )
        adjust(&configuration)
        return configuration
    }

    /// Environment variables for a worker process (`.build/debug/dialer-worker`) in this environment.
    func workerEnvironment(workerID: String, port: Int, extra: [String: String] = [:]) -> [String: String] {
        var environment: [String: String] = [
            "NODE_ID": nodeID,
            "WORKER_ID": workerID,
            "ARI_HTTP_URL": ariBaseURL,
            "ARI_USERNAME": "dialer",
            "ARI_PASSWORD": "dialer-secret",
            "ENDPOINT_TEMPLATE": "PJSIP/{to}@carrier",
            "DEFAULT_CONTEXT": "agents",
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrapServers,
            "KAFKA_TOPIC_ORIGINATE": topics.originate,
            "KAFKA_TOPIC_CONTROL": topics.control,
            "KAFKA_TOPIC_STATUS": topics.status,
            "KAFKA_TOPIC_DEADLETTER": topics.deadLetter,
            "KAFKA_PROP_HEARTBEAT_INTERVAL_MS": "500",
            "KAFKA_PROP_SESSION_TIMEOUT_MS": "6000",
            "KAFKA_PROP_TOPIC_METADATA_REFRESH_INTERVAL_MS": "1000",
            "DATABASE_URL": databaseURL,
            "WORKER_HOST": "127.0.0.1",
            "WORKER_PORT": "\(port)",
            "MAX_CALLS_PER_SECOND": "100",
            "RECONCILE_GRACE_SECONDS": "0.5",
            "RECONCILE_INTERVAL_SECONDS": "1",
            "LOG_LEVEL": ProcessInfo.processInfo.environment["DIALER_TEST_WORKER_LOG_LEVEL"] ?? "info",
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
        ]
        environment.merge(extra) { _, new in new }
        return environment
    }

    // MARK: - Commands

    /// A command dialing `number`; its request id travels in the `traceparent`.
    func command(
        _ number: String,
        timeoutSeconds: Int = 30,
        dialplan: DialplanTarget? = nil,
        expiresIn: TimeInterval = 300,
        metadata: ClientMetadata = .empty
    ) throws -> OriginateCommand {
        let now = Date()
        return OriginateCommand(
            callID: .generate(now: now),
            requestedAt: now,
            expiresAt: now.addingTimeInterval(expiresIn),
            to: try DialTarget(number),
            dialplan: dialplan,
            timeoutSeconds: timeoutSeconds,
            metadata: metadata,
            requestedBy: "tests",
            requestID: TraceContext.newRequestID()
        )
    }

    /// Publishes an originate command (acknowledged by the broker when this returns).
    func publish(_ command: OriginateCommand) async throws {
        try await publisher.publish(
            command, traceParent: command.requestID.map { TraceContext.traceParent(requestID: $0) })
    }

    /// Publishes a hangup of `callID`.
    func publishHangup(_ callID: CallID) async throws {
        try await publisher.publish(
            .hangup(HangupCommand(callID: callID, requestedAt: Date(), requestedBy: "tests")), traceParent: nil)
    }

    /// Publishes a cancel of `callID`.
    func publishCancel(_ callID: CallID) async throws {
        try await publisher.publish(
            .cancel(CancelCommand(callID: callID, requestedAt: Date(), requestedBy: "tests")), traceParent: nil)
    }

    // MARK: - Waiting

    /// Waits until the call has a terminal status on the topic and in PostgreSQL; returns the stored call.
    @discardableResult
    func waitForEnd(_ callID: CallID, timeout: Duration = .seconds(60)) async throws -> CallRecord {
        try await eventually(timeout: timeout, "call \(callID) ended on the status topic") {
            statusLog.terminalEvents(of: callID).count >= 1
        }
        var record: CallRecord?
        try await eventually(timeout: timeout, "call \(callID) ended in PostgreSQL") {
            record = try await store.call(id: callID)
            return record?.status.isTerminal == true
        }
        return try #require(record)
    }

    /// Waits until the topic shows the call in `status`.
    func waitForStatus(_ callID: CallID, _ status: CallStatus, timeout: Duration = .seconds(60)) async throws {
        try await eventually(timeout: timeout, "call \(callID) \(status.rawValue)") {
            statusLog.statuses(of: callID).contains(status)
        }
    }
}

/// Every status event seen on the topic, with its headers.
final class StatusLog: Sendable {
    struct Entry: Sendable {
        let event: CallStatusEvent
        let attributes: CloudEventAttributes
        let payload: [UInt8]
        let key: String?
    }

    private let entries = Mutex<[Entry]>([])
    private let undecodable = Mutex(0)

    func record(_ message: KafkaMessage) {
        do {
            let (event, attributes) = try CallMessageDecoder.status(message)
            entries.withLock {
                $0.append(Entry(event: event, attributes: attributes, payload: message.value, key: message.keyString))
            }
        } catch {
            undecodable.withLock { $0 += 1 }
        }
    }

    var all: [Entry] { entries.withLock { $0 } }
    var undecodableCount: Int { undecodable.withLock { $0 } }

    func entries(of callID: CallID) -> [Entry] {
        entries.withLock { $0.filter { $0.event.callID == callID } }
    }

    func events(of callID: CallID) -> [CallStatusEvent] {
        entries(of: callID).map(\.event).sorted { $0.seq < $1.seq }
    }

    func statuses(of callID: CallID) -> [CallStatus] {
        events(of: callID).map(\.status)
    }

    func terminalEvents(of callID: CallID) -> [CallStatusEvent] {
        events(of: callID).filter { $0.status.isTerminal }
    }
}

/// A worker running in this process through its service group.
struct RunningWorker: Sendable {
    let services: DialerWorkerServices
    let configuration: WorkerConfiguration
    var status: WorkerStatus { services.status }
}

/// Runs a worker for the duration of `body` (ready before `body` starts), then shuts it down gracefully.
func withWorker<Result: Sendable>(
    _ configuration: WorkerConfiguration,
    waitUntilReady: Bool = true,
    _ body: @Sendable (RunningWorker) async throws -> Result
) async throws -> Result {
    let services = try buildServiceGroup(configuration: configuration, logger: testLogger)
    let worker = RunningWorker(services: services, configuration: configuration)
    let task = Task { try await services.run() }
    do {
        if waitUntilReady {
            try await eventually("worker \(configuration.workerID) ready") { await services.status.isReady() }
        }
        let result = try await body(worker)
        await services.triggerGracefulShutdown()
        try await value(of: task, within: configuration.stopBound, "worker \(configuration.workerID)")
        return result
    } catch {
        await services.triggerGracefulShutdown()
        _ = try? await value(of: task, within: configuration.stopBound, "worker \(configuration.workerID)")
        throw error
    }
}

extension WorkerConfiguration {
    /// The longest a graceful shutdown may take: the originates in flight, the drain, the outboxes and the history
    /// (see `Dialer.shutDown`), with a margin for a loaded machine.
    var stopBound: Duration { ari.requestTimeout + kafkaDeliveryTimeout + drainTimeout + .seconds(40) }
}

/// The numbering plan of the ARI simulator: `1555 01 OC AA HH` (see docs/ari-simulator.md).
enum TestNumber {
    /// Answers after `ringTenths` × 100 ms (0: at once, no Ringing) and hangs up after `holdSeconds` (0: never).
    static func answer(ringTenths: Int = 0, holdSeconds: Int) -> String { plan(0, ringTenths, holdSeconds) }
    /// `Busy()`: cause 0 and dialstatus BUSY.
    static let busyTone = plan(1, 0, 0)
    /// Hangup with cause 17.
    static let busyCause = plan(2, 0, 0)
    /// `Congestion()`: cause 0 and dialstatus CONGESTION.
    static let congestionTone = plan(3, 0, 0)
    /// Hangup with cause 34.
    static let congestionCause = plan(4, 0, 0)
    /// Rings until the originate timeout (cause 19).
    static let noAnswer = plan(5, 0, 0)
    /// Cause 21.
    static let rejected = plan(6, 0, 0)
    /// Cause 1.
    static let unallocated = plan(7, 0, 0)
    /// Cause 20, dialstatus CHANUNAVAIL.
    static let unavailable = plan(8, 0, 0)
    /// The originate is refused with HTTP 503.
    static let refused = plan(11, 0, 0)
    /// Answers at once, by an answering machine (the simulated `AMD()` says MACHINE); hangs up after `holdSeconds`.
    static func machine(holdSeconds: Int) -> String { plan(15, 0, holdSeconds) }
    /// Answers at once, and the simulated `AMD()` cannot decide (NOTSURE); hangs up after `holdSeconds`.
    static func undecided(holdSeconds: Int) -> String { plan(16, 0, holdSeconds) }

    private static func plan(_ code: Int, _ first: Int, _ second: Int) -> String {
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "155501" + two(code) + two(first) + two(second)
    }
}
