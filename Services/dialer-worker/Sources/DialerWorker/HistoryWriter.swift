import CallDomain
import CallMessaging
import CallStore
import Kafka
import Logging
import Metrics
import ServiceLifecycle
import ServiceSupport

/// Keeps the call history in PostgreSQL current: records every originate command as a `queued` call and applies
/// every status event, in batches, idempotently.
///
/// It is its own consumer group (`call-history`) and is never paused, so a call shows up in the history a moment
/// after the gateway accepted it however far behind dialing is. Offsets are committed after each batch is stored.
final class HistoryWriter: Service {
    private let consumer: KafkaConsumer
    private let store: any CallRepository
    private let topics: CallTopics
    private let batchSize: Int
    /// The longest one attempt to store a batch may take before it is abandoned and retried.
    private let attemptTimeout: Duration
    private let readiness: WorkerReadiness
    private let metrics: WorkerMetrics
    /// Copies a message that can never be stored to the dead-letter topic; `false` when that failed for good.
    private let deadLetter: @Sendable (KafkaMessage, DeadLetterReason, any Error) async -> Bool
    private let logger: Logger

    init(
        consumer: KafkaConsumer,
        store: any CallRepository,
        topics: CallTopics,
        batchSize: Int,
        attemptTimeout: Duration,
        readiness: WorkerReadiness,
        metrics: WorkerMetrics,
        deadLetter: @escaping @Sendable (KafkaMessage, DeadLetterReason, any Error) async -> Bool,
        logger: Logger
    ) {
        self.consumer = consumer
        self.store = store
        self.topics = topics
        self.batchSize = batchSize
        self.attemptTimeout = attemptTimeout
        self.readiness = readiness
        self.metrics = metrics
        self.deadLetter = deadLetter
        var logger = logger
        logger[metadataKey: "component"] = "history-writer"
        self.logger = logger
    }

    func run() async throws {
        // The consumer runs outside this service's graceful shutdown: on shutdown the writer first stores and
        // commits what it has read, and only then lets the consumer leave the group.
        let consumer = self.consumer
        let consumerTask = Task.detached { try await consumer.run() }
        readiness.setHistoryConsumerRunning(true)
        let buffer = BatchBuffer<KafkaMessage>(capacity: batchSize * 2)
        let readerFailure = await withTaskCancellationHandler {
            await withTaskGroup(of: (any Error)?.self) { group in
                group.addTask {
                    defer { buffer.finish() }
                    do {
                        for try await message in consumer.messages {
                            guard await buffer.put(message) else { break }
                        }
                        return nil
                    } catch {
                        return error
                    }
                }
                await withGracefulShutdownHandler {
                    while let batch = await buffer.take(upTo: batchSize) {
                        await write(batch)
                    }
                } onGracefulShutdown: {
                    buffer.finish()
                }
                consumerTask.cancel()
                return await group.next() ?? nil
            }
        } onCancel: {
            consumerTask.cancel()
            buffer.finish()
        }
        readiness.setHistoryConsumerRunning(false)
        if case .failure(let error) = await consumerTask.result, !(error is CancellationError) {
            throw error
        }
        if let readerFailure { throw readerFailure }
    }

    /// Waits until the `call-history` group (this writer and its peers in other workers) has stored every status
    /// event that was on the topic when called; `false` when `timeout` passed first.
    ///
    /// A restarted worker needs this before adopting its predecessor's calls from PostgreSQL: the predecessor's last
    /// events wait on its partitions until the group notices it is gone (up to the session timeout), and a call
    /// adopted from the stale row would be ended a second time.
    func waitUntilCaughtUp(within timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        var targets: [KafkaTopicPartition: Int64]?
        while ContinuousClock.now < deadline {
            if let progress = try? await consumer.groupProgress(on: topics.status, timeout: .seconds(2)) {
                let ends = targets ?? Dictionary(progress.map { ($0.partition, $0.end) }, uniquingKeysWith: max)
                targets = ends
                if progress.allSatisfy({ $0.committed >= ends[$0.partition] ?? 0 }) { return true }
            }
            guard (try? await Task.sleep(for: .milliseconds(200))) != nil else { return false }
        }
        return false
    }

    /// What a message of the batch holds for the history.
    private enum Item: Sendable {
        case command(OriginateCommand)
        case event(CallStatusEvent)
    }

    /// Stores one batch (retrying while PostgreSQL is away), then commits its offsets.
    ///
    /// A message that can never be stored goes to the dead-letter topic instead of stalling its partition: one that
    /// does not decode at once, and one PostgreSQL refuses for good (a data exception, a constraint), found by
    /// storing the batch's messages one at a time once the whole batch was refused that way.
    private func write(_ batch: [KafkaMessage]) async {
        var items: [(message: KafkaMessage, item: Item)] = []
        var positions: [KafkaTopicPartition: Int64] = [:]
        for message in batch {
            positions[message.topicPartition] = max(positions[message.topicPartition] ?? -1, message.offset)
            do {
                if message.topic == topics.originate {
                    items.append((message, .command(try CallMessageDecoder.originate(message).0)))
                } else if message.topic == topics.status {
                    items.append((message, .event(try CallMessageDecoder.status(message).0)))
                }
            } catch {
                guard await deadLetter(message, .undecodable, error) else { return }
            }
        }
        let started = ContinuousClock.now
        switch await store(items.map(\.item)) {
        case .stored:
            break
        case .abandoned:
            return
        case .refused:
            logger.warning(
                "PostgreSQL refused the batch's data; storing its messages one at a time",
                metadata: ["batch.size": "\(items.count)"])
            for (message, item) in items {
                switch await store([item]) {
                case .stored: continue
                case .abandoned: return
                case .refused(let reason, let error):
                    guard await deadLetter(message, reason, error) else { return }
                }
            }
        }
        metrics.historyMessages.increment(by: batch.count)
        metrics.historyBatchDuration.record(duration: ContinuousClock.now - started)
        let offsets = positions.map {
            KafkaTopicPartitionOffset(topic: $0.key.topic, partition: $0.key.partition, offset: $0.value + 1)
        }
        do {
            try await consumer.commit(offsets)
        } catch {
            // The batch is stored; a failed commit only means it may be stored again (idempotently).
            logger.debug("history offsets not committed", metadata: ["error": "\(error)"])
        }
    }

    private enum StoreOutcome {
        case stored
        /// PostgreSQL refused the data itself: retrying cannot help.
        case refused(DeadLetterReason, any Error)
        /// Cancelled, or shutting down with PostgreSQL away: leave it uncommitted, another member stores it.
        case abandoned
    }

    /// Stores the items in one transaction, retrying with back-off while the failure is transient.
    private func store(_ items: [Item]) async -> StoreOutcome {
        var commands: [OriginateCommand] = []
        var events: [CallStatusEvent] = []
        for item in items {
            switch item {
            case .command(let command): commands.append(command)
            case .event(let event): events.append(event)
            }
        }
        var delay = Duration.milliseconds(100)
        var attempt = 0
        while true {
            do {
                // Bounded like the dialer's queries: a query sent as the server went away can wait on its dead
                // connection far longer than the outage, and the history would stay behind until then. An
                // abandoned attempt that still lands is harmless: both writes are idempotent.
                try await WorkerContext.withTimeout(attemptTimeout) { [commands, events, store] in
                    try await store.recordQueued(commands)
                    _ = try await store.apply(events)
                }
                return .stored
            } catch {
                if case .permanent(let reason) = FailureClass.of(error) { return .refused(reason, error) }
                attempt += 1
                if Task.isCancelled || (Task.isShuttingDownGracefully && attempt >= 20) {
                    logger.warning("history batch not stored at shutdown", metadata: ["error": "\(error)"])
                    return .abandoned
                }
                logger.warning(
                    "history batch not stored; retrying",
                    metadata: ["error": "\(String(reflecting: error))", "batch.size": "\(items.count)"])
                guard (try? await Task.sleep(for: delay)) != nil else { return .abandoned }
                delay = min(delay * 2, .seconds(2))
            }
        }
    }
}
