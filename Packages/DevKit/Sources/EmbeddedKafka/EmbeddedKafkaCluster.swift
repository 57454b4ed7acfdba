import CRdKafka
import Foundation
import Logging
import Synchronization

/// An in-memory Kafka cluster speaking the real Kafka wire protocol on loopback TCP: librdkafka's mock cluster.
///
/// For development and tests only: it keeps everything in memory, has no persistence, security or retention, and
/// is not a production broker (production points `KAFKA_BOOTSTRAP_SERVERS` at a real Kafka cluster). It supports
/// what this system uses: idempotent producers, consumer groups with offset commits, topic metadata, and failure
/// injection (brokers down/up).
///
/// The cluster lives as long as this object: ``shutdown()`` (or deinit) stops it.
public final class EmbeddedKafkaCluster: Sendable {
    /// The mock cluster and the librdkafka handle it was created on; the handle's main queue receives the
    /// cluster's log lines.
    ///
    /// `@unchecked Sendable`: the mock cluster API and `rd_kafka_t` are thread-safe; the pointers are only freed
    /// by `destroy()`, which the owning cluster calls once, under its lock, after which nothing uses them.
    private final class Handles: @unchecked Sendable {
        let handle: OpaquePointer
        let cluster: OpaquePointer
        let logQueue: OpaquePointer
        /// Tells the log thread to stop.
        let stopping = Atomic<Bool>(false)

        init(handle: OpaquePointer, cluster: OpaquePointer, logQueue: OpaquePointer) {
            self.handle = handle
            self.cluster = cluster
            self.logQueue = logQueue
        }

        func destroy() {
            rd_kafka_mock_cluster_destroy(cluster)
            rd_kafka_queue_destroy(logQueue)
            rd_kafka_destroy(handle)
        }
    }

    private struct State {
        var handles: Handles?
    }

    private let state: Mutex<State>
    private let logThreadFinished = DispatchSemaphore(value: 0)

    /// The brokers' `host:port` list, to use as `bootstrap.servers` / `KAFKA_BOOTSTRAP_SERVERS`.
    public let bootstrapServers: String
    /// The number of brokers; their ids are 1 through `brokerCount`.
    public let brokerCount: Int32
    private let logger: Logger

    /// Starts a cluster and creates `topics` (name to partition count) on it.
    ///
    /// - Parameter brokers: the number of brokers (each a TCP listener on 127.0.0.1, random port).
    /// - Throws: ``EmbeddedKafkaError`` when librdkafka cannot create the cluster or a topic.
    public init(brokers: Int = 3, topics: [String: Int32] = [:], logger: Logger) throws {
        guard brokers >= 1 else { throw EmbeddedKafkaError(message: "an embedded cluster needs at least one broker") }
        guard let conf = rd_kafka_conf_new() else { throw EmbeddedKafkaError(message: "rd_kafka_conf_new failed") }
        var errorText = [CChar](repeating: 0, count: 512)
        // The handle only hosts the cluster; its own logs (and the cluster's) are read from a queue, never through
        // a callback from librdkafka's threads.
        for (name, value) in [("log.queue", "true"), ("client.id", "embedded-kafka")] {
            guard rd_kafka_conf_set(conf, name, value, &errorText, errorText.count) == RD_KAFKA_CONF_OK else {
                rd_kafka_conf_destroy(conf)
                throw EmbeddedKafkaError(message: "cannot set \(name): \(Self.string(errorText))")
            }
        }
        rd_kafka_conf_set_events(conf, Int32(RD_KAFKA_EVENT_LOG))
        guard let handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(conf)
            throw EmbeddedKafkaError(message: "cannot create the host handle: \(Self.string(errorText))")
        }
        rd_kafka_set_log_queue(handle, nil)
        guard let logQueue = rd_kafka_queue_get_main(handle) else {
            rd_kafka_destroy(handle)
            throw EmbeddedKafkaError(message: "no main queue on the host handle")
        }
        guard let cluster = rd_kafka_mock_cluster_new(handle, Int32(brokers)) else {
            rd_kafka_queue_destroy(logQueue)
            rd_kafka_destroy(handle)
            throw EmbeddedKafkaError(message: "rd_kafka_mock_cluster_new failed")
        }
        let handles = Handles(handle: handle, cluster: cluster, logQueue: logQueue)
        self.bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
        self.brokerCount = Int32(brokers)
        self.logger = logger
        self.state = Mutex(State(handles: handles))
        startLogThread(handles)
        do {
            for (name, partitions) in topics.sorted(by: { $0.key < $1.key }) {
                try createTopic(name, partitions: partitions)
            }
        } catch {
            shutdown()
            throw error
        }
        logger.info(
            "Embedded Kafka cluster started",
            metadata: ["kafka.bootstrap": "\(bootstrapServers)", "kafka.brokers": "\(brokers)"]
        )
    }

    deinit {
        shutdown()
    }

    /// Creates a topic with `partitions` partitions, each replicated on `replicationFactor` brokers.
    ///
    /// Create topics explicitly: a topic a client auto-creates gets the mock's default partition count.
    public func createTopic(_ name: String, partitions: Int32, replicationFactor: Int32 = 1) throws {
        guard replicationFactor >= 1, replicationFactor <= brokerCount else {
            throw EmbeddedKafkaError(
                message: "replication factor \(replicationFactor) must be between 1 and the broker count \(brokerCount)"
            )
        }
        try withCluster { cluster in
            let error = rd_kafka_mock_topic_create(cluster, name, partitions, replicationFactor)
            guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw EmbeddedKafkaError(
                    message: "cannot create topic \(name): \(String(cString: rd_kafka_err2str(error)))"
                )
            }
        }
        logger.debug(
            "Embedded Kafka topic created", metadata: ["kafka.topic": "\(name)", "kafka.partitions": "\(partitions)"])
    }

    /// Disconnects every broker and refuses new connections (clients see the whole cluster down).
    public func setBrokersDown() throws {
        for id in 1...brokerCount {
            try setBrokerDown(id)
        }
    }

    /// Makes every broker accept connections again.
    public func setBrokersUp() throws {
        for id in 1...brokerCount {
            try setBrokerUp(id)
        }
    }

    /// Disconnects broker `id` (1-based) and refuses new connections to it. Leadership does not move.
    public func setBrokerDown(_ id: Int32) throws {
        try setBroker(id, up: false)
    }

    /// Makes broker `id` (1-based) accept connections again.
    public func setBrokerUp(_ id: Int32) throws {
        try setBroker(id, up: true)
    }

    /// Delays every response of broker `id` (or of every broker when `nil`) by `delay`: a slow network or broker,
    /// for tests of messages in flight. `.zero` restores full speed.
    public func setRoundTripTime(_ delay: Duration, broker id: Int32? = nil) throws {
        let milliseconds = Int32(
            clamping: delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)
        for broker in id.map({ [$0] }) ?? Array(1...brokerCount) {
            guard (1...brokerCount).contains(broker) else {
                throw EmbeddedKafkaError(message: "no broker \(broker): ids are 1 through \(brokerCount)")
            }
            try withCluster { cluster in
                let error = rd_kafka_mock_broker_set_rtt(cluster, broker, milliseconds)
                guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    let reason = String(cString: rd_kafka_err2str(error))
                    throw EmbeddedKafkaError(message: "cannot set the round-trip time of broker \(broker): \(reason)")
                }
            }
        }
    }

    private func setBroker(_ id: Int32, up: Bool) throws {
        guard (1...brokerCount).contains(id) else {
            throw EmbeddedKafkaError(message: "no broker \(id): ids are 1 through \(brokerCount)")
        }
        try withCluster { cluster in
            let error = up ? rd_kafka_mock_broker_set_up(cluster, id) : rd_kafka_mock_broker_set_down(cluster, id)
            guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw EmbeddedKafkaError(
                    message:
                        "cannot set broker \(id) \(up ? "up" : "down"): \(String(cString: rd_kafka_err2str(error)))"
                )
            }
        }
        logger.info("Embedded Kafka broker \(up ? "up" : "down")", metadata: ["kafka.broker": "\(id)"])
    }

    /// Stops the cluster: every broker closes its connections and listeners. Idempotent; also done on deinit.
    public func shutdown() {
        guard
            let handles = state.withLock({ state -> Handles? in
                defer { state.handles = nil }
                return state.handles
            })
        else { return }
        handles.stopping.store(true, ordering: .releasing)
        rd_kafka_queue_yield(handles.logQueue)
        logThreadFinished.wait()
        handles.destroy()
        logger.info("Embedded Kafka cluster stopped")
    }

    /// Whether ``shutdown()`` has run.
    public var isShutDown: Bool {
        state.withLock { $0.handles == nil }
    }

    private func withCluster<Result>(_ body: (OpaquePointer) throws -> Result) throws -> Result {
        // Held during the call so that shutdown cannot free the cluster underneath it; the mock calls are quick.
        try state.withLock { state in
            guard let handles = state.handles else {
                throw EmbeddedKafkaError(message: "the embedded Kafka cluster is shut down")
            }
            return try body(handles.cluster)
        }
    }

    private func startLogThread(_ handles: Handles) {
        let logger = logger
        let finished = logThreadFinished
        let thread = Thread {
            while !handles.stopping.load(ordering: .acquiring) {
                guard let event = rd_kafka_queue_poll(handles.logQueue, 200) else { continue }
                if rd_kafka_event_type(event) == Int32(RD_KAFKA_EVENT_LOG) {
                    var facility: UnsafePointer<CChar>?
                    var text: UnsafePointer<CChar>?
                    var level: Int32 = 0
                    if rd_kafka_event_log(event, &facility, &text, &level) == 0, let text {
                        logger.log(
                            level: level <= 3 ? .error : level == 4 ? .warning : .debug,
                            "\(String(cString: text))",
                            metadata: ["kafka.facility": "\(facility.map { String(cString: $0) } ?? "")"]
                        )
                    }
                }
                rd_kafka_event_destroy(event)
            }
            finished.signal()
        }
        thread.name = "embedded-kafka-log"
        thread.start()
    }

    private static func string(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A failure of the embedded cluster (creation, topic creation, broker control).
public struct EmbeddedKafkaError: Error, CustomStringConvertible, Sendable {
    /// What went wrong.
    public var message: String

    /// Creates an error.
    public init(message: String) {
        self.message = message
    }

    /// The message.
    public var description: String { message }
}

/// The project's Kafka topics (their default names; see the README's "Kafka topics").
public enum ProjectTopics {
    /// Originate commands, keyed by call id: gateway to dialer workers and history writer.
    public static let originate = "calls.originate.v1"
    /// Hangup and cancel commands, keyed by call id: gateway to every worker.
    public static let control = "calls.control.v1"
    /// Call status events, keyed by call id: workers to history, gateway streams and any subscriber.
    public static let status = "calls.status.v1"
    /// Messages no consumer could process, with the reason in their headers.
    public static let deadLetter = "calls.deadletter.v1"
    /// All four, in the order above.
    public static let all = [originate, control, status, deadLetter]

    /// The topics with `partitions` partitions each, in the shape ``EmbeddedKafkaCluster/init(brokers:topics:logger:)``
    /// takes.
    public static func withPartitions(_ partitions: Int32) -> [String: Int32] {
        Dictionary(uniqueKeysWithValues: all.map { ($0, partitions) })
    }
}
