import Dispatch
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// An idempotent Kafka producer whose `send` returns once the brokers have acknowledged the message.
///
/// Configured with `enable.idempotence=true`, `acks=all` and `message.timeout.ms` equal to the delivery timeout
/// (each overridable through ``KafkaConfiguration/properties``): an acknowledged send is in every in-sync replica,
/// exactly once, and an unacknowledged one fails within the delivery timeout instead of hanging.
///
/// One poll loop, on a dedicated thread while ``run()`` runs, serves the delivery reports of all sends: `run()`
/// must be running (typically in a `ServiceGroup`) for sends to complete. On graceful shutdown or cancellation it
/// stops accepting sends, waits for the outstanding ones (up to the delivery timeout), and fails what is left, so
/// that no send is left suspended.
public final class KafkaProducer: Service, Sendable {
    private let client: RdKafkaClient
    private let state: Mutex<ProducerStateMachine>
    private let deliveryTimeout: Duration
    private let logger: Logger
    private let metrics: ProducerMetrics

    /// Creates the producer (validating the configuration); nothing is sent before ``run()`` starts polling.
    ///
    /// - Parameter deliveryTimeout: how long a send may take from call to acknowledgement, including waiting for
    ///   room in a full local queue; becomes `message.timeout.ms` unless the properties set it.
    /// - Throws: ``KafkaError`` when librdkafka rejects a property.
    public init(configuration: KafkaConfiguration, deliveryTimeout: Duration = .seconds(30), logger: Logger) throws {
        let timeoutMilliseconds = max(1, deliveryTimeout.milliseconds)
        let properties = configuration.librdkafkaProperties(defaults: [
            "enable.idempotence": "true",
            "acks": "all",
            "message.timeout.ms": "\(timeoutMilliseconds)",
        ])
        var logger = logger
        logger[metadataKey: "kafka.client"] = "\(configuration.clientID)"
        self.client = try RdKafkaClient(
            role: .producer,
            properties: properties,
            logger: logger
        )
        self.state = Mutex(ProducerStateMachine())
        self.deliveryTimeout = .milliseconds(timeoutMilliseconds)
        self.logger = logger
        self.metrics = ProducerMetrics(clientID: configuration.clientID)
    }

    // MARK: - Sending

    /// Sends one message and returns where the brokers stored it.
    ///
    /// A full local queue is waited out (with back-off) for at most the delivery timeout, not reported as an
    /// error. Once librdkafka holds the message, the send waits for its delivery report even if the calling task
    /// is cancelled, because the message may still be written and the caller must learn the outcome; the wait is
    /// bounded by the delivery timeout.
    ///
    /// - Parameters:
    ///   - key: the partitioning key (the call id in this system), or `nil` for round-robin partitioning.
    /// - Throws: ``KafkaError`` with librdkafka's code and text (e.g. `_MSG_TIMED_OUT` when the brokers did not
    ///   acknowledge in time, `_DESTROY` when the producer is shutting down), or `CancellationError` when the task
    ///   was cancelled before the message was handed to librdkafka.
    public func send(
        topic: String,
        key: [UInt8]?,
        value: [UInt8],
        headers: [KafkaHeader] = []
    ) async throws -> KafkaDeliveryReceipt {
        try Task.checkCancellation()
        let start = DispatchTime.now().uptimeNanoseconds
        let id = try state.withLock { state throws(KafkaError) in try state.register(topic: topic, nowNanoseconds: start) }
        var headerList = client.makeHeaders(headers)
        defer { if let headerList { client.destroy(headers: headerList) } }
        var backoff = Duration.milliseconds(1)
        let queueDeadline = ContinuousClock.now + deliveryTimeout
        produceLoop: while true {
            switch client.produce(topic: topic, key: key, value: value, headers: headerList, opaque: id) {
            case .enqueued:
                headerList = nil
                break produceLoop
            case .failed(let error):
                state.withLock { $0.abandon(id) }
                metrics.failed.increment()
                throw error
            case .queueFull:
                let phase = state.withLock { $0.phase }
                guard phase == .running, ContinuousClock.now < queueDeadline else {
                    state.withLock { $0.abandon(id) }
                    metrics.failed.increment()
                    throw phase == .running
                        ? KafkaError(
                            code: .queueFull,
                            message: "the local producer queue stayed full for \(deliveryTimeout); message not sent"
                        )
                        : KafkaError.shutdown("the Kafka producer is shutting down; the message was not sent")
                }
                do {
                    try await Task.sleep(for: backoff)
                } catch {
                    state.withLock { $0.abandon(id) }
                    throw error
                }
                backoff = min(backoff * 2, .milliseconds(50))
            }
        }
        metrics.produced.increment()
        return try await withCheckedThrowingContinuation { continuation in
            if let resumption = state.withLock({ $0.awaitReport(id, continuation: continuation) }) {
                complete(resumption)
            }
        }
    }

    /// Convenience for UTF-8 keys such as call ids.
    public func send(
        topic: String,
        key: String,
        value: [UInt8],
        headers: [KafkaHeader] = []
    ) async throws -> KafkaDeliveryReceipt {
        try await send(topic: topic, key: Array(key.utf8), value: value, headers: headers)
    }

    private func complete(_ resumption: ProducerStateMachine.Resumption) {
        switch resumption.result {
        case .success(let receipt):
            metrics.delivered.increment()
            if resumption.startNanoseconds > 0 {
                let now = DispatchTime.now().uptimeNanoseconds
                metrics.deliveryLatency.recordNanoseconds(Int64(now &- resumption.startNanoseconds))
            }
            resumption.continuation.resume(returning: receipt)
        case .failure(let error):
            metrics.failed.increment()
            resumption.continuation.resume(throwing: error)
        }
    }

    // MARK: - Lifecycle

    /// Serves delivery reports until graceful shutdown or cancellation, then drains: waits for outstanding
    /// messages up to the delivery timeout, purges what is left and fails every unresolved send.
    ///
    /// - Throws: ``KafkaError`` when librdkafka raised a fatal error (the producer is unusable), or when called twice.
    public func run() async throws {
        guard state.withLock({ $0.startRunning() }) else {
            throw KafkaError(code: .invalidState, message: "KafkaProducer.run() may only be called once")
        }
        logger.debug("Kafka producer started")
        let outcome = await withTaskCancellationOrGracefulShutdownHandler {
            await PollThread.run(name: "kafka-producer") { self.pollLoop() }
        } onCancelOrGracefulShutdown: {
            self.beginShutdown()
        }
        logger.debug("Kafka producer stopped")
        try outcome.get()
    }

    private func beginShutdown() {
        if state.withLock({ $0.beginDrain() }) {
            client.wakeUp()
        }
    }

    /// The poll thread's body.
    private func pollLoop() -> Result<Void, KafkaError> {
        let buffer = RdKafkaClient.ReportBuffer()
        var fatal: KafkaError?
        while fatal == nil, state.withLock({ $0.phase }) == .running {
            fatal = serveEvents(timeoutMilliseconds: 100, buffer: buffer)
        }
        if fatal == nil {
            beginShutdown()
        }
        let outstanding = client.outstandingMessageCount
        if outstanding > 0 {
            logger.info("Kafka producer draining", metadata: ["kafka.outstanding": "\(outstanding)"])
        }
        let drainDeadline = ContinuousClock.now + deliveryTimeout + .seconds(5)
        while fatal == nil, client.outstandingMessageCount > 0, ContinuousClock.now < drainDeadline {
            fatal = serveEvents(timeoutMilliseconds: 100, buffer: buffer)
        }
        if client.outstandingMessageCount > 0 {
            logger.warning(
                "Kafka producer purging undelivered messages at shutdown",
                metadata: ["kafka.outstanding": "\(client.outstandingMessageCount)"]
            )
            client.purgeOutstandingMessages()
            let purgeDeadline = ContinuousClock.now + .seconds(2)
            while client.outstandingMessageCount > 0, ContinuousClock.now < purgeDeadline {
                _ = serveEvents(timeoutMilliseconds: 100, buffer: buffer)
            }
        }
        let closing = fatal ?? KafkaError.shutdown("the Kafka producer shut down before delivery was confirmed")
        for resumption in state.withLock({ $0.close(failingWith: closing) }) {
            complete(resumption)
        }
        return fatal.map { .failure($0) } ?? .success(())
    }

    /// Serves every event available within the timeout; returns a fatal error if librdkafka raised one.
    private func serveEvents(timeoutMilliseconds: Int32, buffer: RdKafkaClient.ReportBuffer) -> KafkaError? {
        var timeout = timeoutMilliseconds
        var reports: [(id: UInt64, outcome: DeliveryOutcome)] = []
        var fatal: KafkaError?
        // Drain what is ready in one go so the lock is taken once per batch of reports, not once per event.
        while let event = client.poll(timeoutMilliseconds: timeout) {
            timeout = 0
            switch client.kind(of: event) {
            case .deliveryReport:
                client.readDeliveryReports(event, buffer: buffer, into: &reports)
            case .log:
                client.log(event: event)
            case .error:
                fatal = client.handleErrorEvent(event) ?? fatal
            case .message, .rebalance, .offsetCommit, .other:
                break
            }
            client.destroy(event: event)
            if reports.count >= 4096 || fatal != nil { break }
        }
        if !reports.isEmpty {
            var resumptions: [ProducerStateMachine.Resumption] = []
            resumptions.reserveCapacity(reports.count)
            state.withLock { $0.reportsArrived(reports, into: &resumptions) }
            for resumption in resumptions {
                complete(resumption)
            }
        }
        return fatal
    }
}

extension Duration {
    /// Whole milliseconds, rounded down.
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
