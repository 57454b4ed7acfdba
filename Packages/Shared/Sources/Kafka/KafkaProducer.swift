import Dispatch
import Foundation
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
///
/// A new producer's first send would pay for its start: the brokers must first give the idempotent producer its id
/// (`InitProducerId`) and the topic's metadata must be fetched. ``prepare(topics:timeout:)`` waits for both, so a
/// service can say it is ready only once a send costs a round trip (the id is read from librdkafka's statistics,
/// every `statistics.interval.ms`, 1 s unless configured).
public final class KafkaProducer: Service, Sendable {
    private let client: RdKafkaClient
    private let state: Mutex<ProducerStateMachine>
    private let preparation: Mutex<Preparation>
    private let deliveryTimeout: Duration
    private let logger: Logger
    private let metrics: ProducerMetrics

    /// Creates the producer (validating the configuration); nothing is sent before ``run()`` starts polling.
    ///
    /// - Parameter deliveryTimeout: how long librdkafka may try to get a message acknowledged (it becomes
    ///   `message.timeout.ms` unless the properties set it), and separately the longest wait for room in a full
    ///   local queue before a send gives up. A send that found room therefore ends within this timeout.
    /// - Throws: ``KafkaError`` when librdkafka rejects a property.
    public init(configuration: KafkaConfiguration, deliveryTimeout: Duration = .seconds(30), logger: Logger) throws {
        let timeoutMilliseconds = max(1, deliveryTimeout.milliseconds)
        let properties = configuration.librdkafkaProperties(defaults: [
            "enable.idempotence": "true",
            "acks": "all",
            "message.timeout.ms": "\(timeoutMilliseconds)",
            "statistics.interval.ms": "1000",
        ])
        var logger = logger
        logger[metadataKey: "kafka.client"] = "\(configuration.clientID)"
        self.client = try RdKafkaClient(
            role: .producer,
            properties: properties,
            logger: logger
        )
        self.state = Mutex(ProducerStateMachine())
        // Without idempotence there is no producer id to wait for.
        let idempotent = properties["enable.idempotence"]?.lowercased() == "true"
        self.preparation = Mutex(Preparation(producerIDAssigned: !idempotent))
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
        let id = try state.withLock { state throws(KafkaError) in try state.register(nowNanoseconds: start) }
        do {
            try await produce(topic: topic, key: key, value: value, headers: headers, id: id)
        } catch {
            state.withLock { $0.abandon(id) }
            metrics.failed.increment()
            throw error
        }
        metrics.produced.increment()
        let outcome = await withUnsafeContinuation { continuation in
            if let outcome = state.withLock({ $0.awaitReport(id, continuation: continuation) }) {
                continuation.resume(returning: outcome)
            }
        }
        switch outcome {
        case .delivered(let partition, let offset):
            return KafkaDeliveryReceipt(topic: topic, partition: partition, offset: offset)
        case .failed(let error):
            throw error
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

    /// Sends messages in order and returns, once every one of them is acknowledged or failed, one result per
    /// message in the same order.
    ///
    /// For bulk producers (load generators, replays): one suspension for the whole batch instead of one per
    /// message. Messages with the same key keep their order. A full local queue is waited out as for a single
    /// send; a message that cannot be handed to librdkafka gets a failed result, and the others still go.
    ///
    /// - Throws: ``KafkaError`` with code ``KafkaError/Code/shutdown`` when the producer is shutting down before
    ///   the batch started, or `CancellationError` when the task was cancelled before it started.
    public func send(_ messages: [KafkaOutgoingMessage]) async throws -> [Result<KafkaDeliveryReceipt, KafkaError>] {
        try Task.checkCancellation()
        guard !messages.isEmpty else { return [] }
        let start = DispatchTime.now().uptimeNanoseconds
        let (batch, firstID) = try state.withLock { state throws(KafkaError) in
            try state.registerBatch(count: messages.count, nowNanoseconds: start)
        }
        var produced = 0
        for (index, message) in messages.enumerated() {
            let id = firstID + UInt64(index)
            do {
                try await produce(
                    topic: message.topic,
                    key: message.key,
                    value: message.value,
                    headers: message.headers,
                    id: id
                )
                produced += 1
            } catch {
                let failure = error as? KafkaError ?? KafkaError.shutdown("the send was cancelled: \(error)")
                state.withLock { $0.batchMessageFailed(batch: batch, id: id, index: index, error: failure) }
                metrics.failed.increment()
            }
        }
        metrics.produced.increment(by: produced)
        let outcomes = await withUnsafeContinuation { continuation in
            if let outcomes = state.withLock({ $0.awaitBatch(batch, continuation: continuation) }) {
                continuation.resume(returning: outcomes)
            }
        }
        return zip(messages, outcomes).map { message, outcome in
            switch outcome {
            case .delivered(let partition, let offset):
                return .success(KafkaDeliveryReceipt(topic: message.topic, partition: partition, offset: offset))
            case .failed(let error):
                return .failure(error)
            }
        }
    }

    /// Hands one message to librdkafka, waiting out a full local queue for at most the delivery timeout.
    private func produce(topic: String, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader], id: UInt64) async throws
    {
        let headerList = client.makeHeaders(headers)
        switch client.produce(topic: topic, key: key, value: value, headers: headerList, opaque: id) {
        case .enqueued:
            return
        case .failed(let error):
            if let headerList { client.destroy(headers: headerList) }
            throw error
        case .queueFull:
            try await produceWhenQueueHasRoom(topic: topic, key: key, value: value, headers: headerList, id: id)
        }
    }

    /// The slow path of ``produce(topic:key:value:headers:id:)``: wait until the poll thread has served delivery
    /// reports (which frees room in the queue), then try again, until the delivery timeout.
    private func produceWhenQueueHasRoom(
        topic: String,
        key: [UInt8]?,
        value: [UInt8],
        headers: OpaquePointer?,
        id: UInt64
    ) async throws {
        var headerList = headers
        defer { if let headerList { client.destroy(headers: headerList) } }
        metrics.queueFull.increment()
        let deadline = ContinuousClock.now + deliveryTimeout
        while true {
            await withUnsafeContinuation { continuation in
                if !state.withLock({ $0.waitForRoom(continuation) }) {
                    continuation.resume()
                }
            }
            guard state.withLock({ $0.phase }) == .running else {
                throw KafkaError.shutdown("the Kafka producer is shutting down; the message was not sent")
            }
            switch client.produce(topic: topic, key: key, value: value, headers: headerList, opaque: id) {
            case .enqueued:
                headerList = nil
                return
            case .failed(let error):
                throw error
            case .queueFull:
                guard ContinuousClock.now < deadline else {
                    throw KafkaError(
                        code: .queueFull,
                        message: "the local producer queue stayed full for \(deliveryTimeout); message not sent"
                    )
                }
            }
        }
    }

    private func complete(_ resumption: ProducerStateMachine.Resumption) {
        switch resumption {
        case .single(let continuation, let outcome):
            count(outcome)
            continuation.resume(returning: outcome)
        case .batch(let continuation, let outcomes):
            outcomes.forEach(count)
            continuation.resume(returning: outcomes)
        }
    }

    private func count(_ outcome: DeliveryOutcome) {
        switch outcome {
        case .delivered: metrics.delivered.increment()
        case .failed: metrics.failed.increment()
        }
    }

    // MARK: - Preparation

    private struct Preparation {
        /// The idempotent producer has its id (or idempotence is off).
        var producerIDAssigned: Bool
        var producerID: Int64?
        /// ``prepare(topics:timeout:)`` succeeded once.
        var prepared = false
    }

    /// Whether ``prepare(topics:timeout:)`` succeeded: a send no longer pays for the producer's start.
    public var isPrepared: Bool {
        preparation.withLock { $0.prepared }
    }

    /// Waits until a send costs no more than its round trip: the metadata of `topics` (partitions and leaders) is
    /// fetched, and the brokers assigned the idempotent producer its id. ``run()`` must be running.
    ///
    /// - Throws: ``KafkaError`` when a topic's metadata cannot be had (unknown topic, no broker) or the id is not
    ///   assigned within `timeout`.
    public func prepare(topics: [String], timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        let client = self.client
        let milliseconds = Int32(clamping: max(1, timeout.milliseconds))
        let metadata: Result<Void, KafkaError> = await PollThread.run(name: "kafka-prepare") {
            do throws(KafkaError) {
                for topic in topics {
                    _ = try client.partitionCount(topic: topic, timeoutMilliseconds: milliseconds)
                }
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try metadata.get()
        while !preparation.withLock({ $0.producerIDAssigned }) {
            guard ContinuousClock.now < deadline else {
                throw KafkaError(
                    code: .timedOut,
                    message: "the brokers did not assign the idempotent producer its id within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let producerID = preparation.withLock { preparation -> Int64? in
            preparation.prepared = true
            return preparation.producerID
        }
        logger.info(
            "Kafka producer prepared",
            metadata: ["kafka.topics": "\(topics.joined(separator: ","))", "kafka.producer_id": "\(producerID ?? -1)"])
    }

    /// Reads the idempotent producer's state from a statistics event, until its id is assigned.
    private func noteStatistics(_ json: String) {
        guard let root = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
            let eos = root["eos"] as? [String: Any], eos["idemp_state"] as? String == "Assigned"
        else { return }
        let producerID = (eos["producer_id"] as? NSNumber)?.int64Value
        preparation.withLock {
            $0.producerIDAssigned = true
            $0.producerID = producerID
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
        let (began, waiters) = state.withLock { ($0.beginDrain(), $0.takeRoomWaiters()) }
        waiters.forEach { $0.resume() }
        if began {
            client.wakeUp()
        }
    }

    /// Wakes the senders waiting for room in the queue (called by the poll thread after each round of events).
    private func wakeRoomWaiters() {
        for waiter in state.withLock({ $0.takeRoomWaiters() }) {
            waiter.resume()
        }
    }

    /// The poll thread's body.
    private func pollLoop() -> Result<Void, KafkaError> {
        let context = PollContext()
        var fatal: KafkaError?
        while fatal == nil, state.withLock({ $0.phase }) == .running {
            fatal = serveEvents(timeoutMilliseconds: 100, context: context)
            wakeRoomWaiters()
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
            fatal = serveEvents(timeoutMilliseconds: 100, context: context)
        }
        if client.outstandingMessageCount > 0 {
            logger.warning(
                "Kafka producer purging undelivered messages at shutdown",
                metadata: ["kafka.outstanding": "\(client.outstandingMessageCount)"]
            )
            client.purgeOutstandingMessages()
            let purgeDeadline = ContinuousClock.now + .seconds(2)
            while client.outstandingMessageCount > 0, ContinuousClock.now < purgeDeadline {
                _ = serveEvents(timeoutMilliseconds: 100, context: context)
            }
        }
        let closing = fatal ?? KafkaError.shutdown("the Kafka producer shut down before delivery was confirmed")
        for resumption in state.withLock({ $0.close(failingWith: closing) }) {
            complete(resumption)
        }
        return fatal.map { .failure($0) } ?? .success(())
    }

    /// Serves every event available within the timeout; returns a fatal error if librdkafka raised one.
    private func serveEvents(timeoutMilliseconds: Int32, context: PollContext) -> KafkaError? {
        var timeout = timeoutMilliseconds
        var fatal: KafkaError?
        // Drain what is ready in one go so the lock is taken once per batch of reports, not once per event.
        while let event = client.poll(timeoutMilliseconds: timeout) {
            timeout = 0
            switch client.kind(of: event) {
            case .deliveryReport:
                client.readDeliveryReports(event, buffer: context.buffer, into: &context.reports)
            case .log:
                client.log(event: event)
            case .error:
                fatal = client.handleErrorEvent(event) ?? fatal
            case .statistics:
                // Read only until the id is known: the statistics keep coming every interval.
                if !preparation.withLock({ $0.producerIDAssigned }), let json = client.statistics(of: event) {
                    noteStatistics(json)
                }
            case .message, .rebalance, .offsetCommit, .other:
                break
            }
            client.destroy(event: event)
            if context.reports.count >= 4096 || fatal != nil { break }
        }
        if !context.reports.isEmpty {
            let now = DispatchTime.now().uptimeNanoseconds
            state.withLock {
                $0.reportsArrived(
                    context.reports,
                    nowNanoseconds: now,
                    into: &context.resumptions,
                    latencies: &context.latencies
                )
            }
            for resumption in context.resumptions {
                complete(resumption)
            }
            for latency in context.latencies {
                metrics.deliveryLatency.recordNanoseconds(Int64(latency))
            }
            context.reports.removeAll(keepingCapacity: true)
            context.resumptions.removeAll(keepingCapacity: true)
            context.latencies.removeAll(keepingCapacity: true)
        }
        return fatal
    }
}

/// The poll thread's reusable buffers (confined to that thread).
private final class PollContext {
    let buffer = RdKafkaClient.ReportBuffer()
    var reports: [(id: UInt64, outcome: DeliveryOutcome)] = []
    var resumptions: [ProducerStateMachine.Resumption] = []
    var latencies: [UInt64] = []
}

extension Duration {
    /// Whole milliseconds, rounded down.
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
