import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// The machinery shared by ``KafkaConsumer`` (a group member) and ``KafkaFanOutReader`` (self-assigned, no group):
/// the poll thread, the message buffer and its flow control, rebalances, commits, pause and close.
final class ConsumerCore: Sendable {
    enum Mode: Sendable {
        /// A consumer-group member subscribed to topics.
        case group(id: String, topics: [String])
        /// A reader that assigns itself every partition of a topic.
        case fanOut(topic: String, start: KafkaFanOutStart)
    }

    let client: RdKafkaClient
    let mode: Mode
    let state: Mutex<ConsumerStateMachine>
    let logger: Logger
    let metrics: ConsumerMetrics
    let rebalanceEvents: AsyncStream<KafkaRebalanceEvent>
    private let rebalanceContinuation: AsyncStream<KafkaRebalanceEvent>.Continuation
    private let threadName: String
    /// How many unread rebalance events are kept (the newest).
    static let rebalanceEventLimit = 64

    init(client: RdKafkaClient, mode: Mode, clientID: String, logger: Logger) {
        self.client = client
        self.mode = mode
        self.state = Mutex(ConsumerStateMachine())
        self.logger = logger
        switch mode {
        case .group(let id, _):
            metrics = ConsumerMetrics(clientID: clientID, group: id)
            threadName = "kafka-consumer"
        case .fanOut:
            metrics = ConsumerMetrics(clientID: clientID, group: "")
            threadName = "kafka-fanout"
        }
        // Bounded: most owners never read these events, and a long-lived consumer goes through many rebalances.
        (rebalanceEvents, rebalanceContinuation) = AsyncStream.makeStream(
            of: KafkaRebalanceEvent.self, bufferingPolicy: .bufferingNewest(Self.rebalanceEventLimit))
    }

    // MARK: - Reader side

    func next() async throws -> KafkaMessage? {
        switch state.withLock({ $0.takeNext() }) {
        case .message(let message, let wakePoller):
            if wakePoller { client.wakeUp() }
            return message
        case .end(let result):
            return try result.get()
        case .empty:
            break
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let (resumption, wakePoller) = state.withLock { $0.next(continuation: continuation) }
                if wakePoller { client.wakeUp() }
                if let resumption {
                    resumption.continuation.resume(with: resumption.result)
                } else if Task.isCancelled {
                    // Cancelled before the waiter was registered: the cancellation handler found nothing to end.
                    state.withLock { $0.cancelWaiter() }?.resume(returning: nil)
                }
            }
        } onCancel: {
            state.withLock { $0.cancelWaiter() }?.resume(returning: nil)
        }
    }

    func commit(_ offsets: [KafkaTopicPartitionOffset]) async throws {
        guard !offsets.isEmpty else { return }
        let id = try state.withLock { state throws(KafkaError) in try state.registerCommit(offsets) }
        do {
            try client.commitAsync(offsets, opaque: id)
        } catch {
            state.withLock { $0.abandonCommit(id) }
            metrics.commitFailures.increment()
            throw error
        }
        // The poll thread may be waiting on the message queue with a long timeout: make it watch for the result.
        client.wakeUp()
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            if let resumption = state.withLock({ $0.awaitCommit(id, continuation: continuation) }) {
                complete(resumption)
            }
        }
    }

    private func complete(_ resumption: ConsumerStateMachine.CommitResumption) {
        switch resumption.result {
        case .success(let partitions):
            metrics.committed.increment(by: partitions)
            resumption.continuation.resume()
        case .failure(let error):
            metrics.commitFailures.increment()
            resumption.continuation.resume(throwing: error)
        }
    }

    func pause() throws {
        try state.withLock { state throws(KafkaError) in try state.pauseByApplication() }
        client.wakeUp()
    }

    func resume() throws {
        let resumption = try state.withLock { state throws(KafkaError) in try state.resumeByApplication() }
        resumption.map { $0.continuation.resume(with: $0.result) }
        client.wakeUp()
    }

    var isPaused: Bool {
        state.withLock { $0.isPausedByApplication }
    }

    var assignment: [KafkaTopicPartition] {
        state.withLock { $0.assignment }.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
    }

    func waitUntilReady() async throws -> [Int32: Int64] {
        let id = state.withLock { $0.makeReadyWaiterID() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                if let result = state.withLock({ $0.awaitReady(continuation, id: id) }) {
                    continuation.resume(with: result)
                } else if Task.isCancelled {
                    state.withLock { $0.cancelReadyWaiter(id) }?.resume(throwing: CancellationError())
                }
            }
        } onCancel: {
            state.withLock { $0.cancelReadyWaiter(id) }?.resume(throwing: CancellationError())
        }
    }

    // MARK: - Lifecycle

    func run() async throws {
        guard state.withLock({ $0.startRunning() }) else {
            throw KafkaError(code: .invalidState, message: "run() may only be called once")
        }
        let outcome = await withTaskCancellationOrGracefulShutdownHandler {
            await PollThread.run(name: threadName) { self.pollLoop() }
        } onCancelOrGracefulShutdown: {
            self.beginShutdown()
        }
        try outcome.get()
    }

    private func beginShutdown() {
        if state.withLock({ $0.beginClosing() }) {
            client.wakeUp()
        }
    }

    /// Thread-confined bookkeeping of the poll thread.
    private final class PollContext {
        var collected: [KafkaMessage] = []
        var lastOffsets: [KafkaTopicPartition: Int64] = [:]
        var lastLagUpdate = ContinuousClock.now
        var fatal: KafkaError?
    }

    /// The poll thread's body: start, serve events until shutdown, then close.
    private func pollLoop() -> Result<Void, KafkaError> {
        let context = PollContext()
        do {
            switch mode {
            case .group(_, let topics):
                try client.subscribe(topics: topics)
                logger.debug("Kafka consumer subscribed", metadata: ["kafka.topics": "\(topics)"])
            case .fanOut(let topic, let start):
                try startFanOut(topic: topic, start: start, context: context)
            }
        } catch {
            context.fatal = error
        }
        while context.fatal == nil, state.withLock({ $0.phase }) == .running {
            serveCommitResults(timeoutMilliseconds: 0)
            let (holdBack, commitsOutstanding) = state.withLock { ($0.shouldHoldBack(), $0.hasOutstandingCommits) }
            if holdBack {
                // Messages stay in librdkafka until the reader catches up; commit results still flow, because a
                // reader may wait for one before it reads on.
                serveCommitResults(timeoutMilliseconds: 100)
            } else {
                // Commit results have their own queue (they must not wait behind messages): while one is awaited,
                // the message queue is polled in short slices so that the result is picked up promptly.
                serveEvents(timeoutMilliseconds: commitsOutstanding ? 2 : 100, context: context)
            }
            applyFetchPause()
            updateLagIfDue(context)
        }
        return close(context)
    }

    private func close(_ context: PollContext) -> Result<Void, KafkaError> {
        _ = state.withLock { $0.beginClosing() }
        let end: Result<Void, KafkaError> = context.fatal.map { .failure($0) } ?? .success(())
        state.withLock { $0.finishMessages(end) }.map { $0.continuation.resume(with: $0.result) }
        if context.fatal == nil {
            if case .group = mode, let error = client.commitStoredOffsets() {
                logger.warning("Kafka commit of stored offsets at close failed", metadata: ["kafka.error": "\(error)"])
            }
            if let error = client.beginClose() {
                logger.warning("Kafka consumer close failed", metadata: ["kafka.error": "\(error)"])
            } else {
                // Serve rebalance (revoke) and commit events until librdkafka has left the group.
                let deadline = ContinuousClock.now + .seconds(30)
                while !client.isConsumerClosed, ContinuousClock.now < deadline {
                    serveEvents(timeoutMilliseconds: 10, context: context)
                    serveCommitResults(timeoutMilliseconds: 0)
                }
                if !client.isConsumerClosed {
                    logger.warning("Kafka consumer did not close within 30 s")
                }
            }
        }
        let error = context.fatal ?? KafkaError.shutdown("the Kafka consumer closed")
        let (commits, readyWaiters) = state.withLock { $0.close(failingWith: error) }
        commits.forEach(complete)
        readyWaiters.forEach { $0.resume(throwing: error) }
        rebalanceContinuation.finish()
        logger.debug("Kafka consumer closed")
        return end
    }

    // MARK: - Events

    private func serveEvents(timeoutMilliseconds: Int32, context: PollContext) {
        var timeout = timeoutMilliseconds
        var served = 0
        while served < 1000, let event = client.poll(timeoutMilliseconds: timeout) {
            timeout = 0
            served += 1
            switch client.kind(of: event) {
            case .message:
                switch client.readMessage(event) {
                case .success(let message):
                    context.collected.append(message)
                case .failure(let error):
                    logger.warning("Kafka consumer error", metadata: ["kafka.error": "\(error)"])
                case nil:
                    break
                }
            case .rebalance:
                // Hand over what was fetched before the rebalance first: a revoke must drop it.
                flushCollected(context)
                handleRebalance(event)
            case .offsetCommit:
                let (id, result) = client.readCommitResult(event)
                if let resumption = state.withLock({ $0.commitFinished(id, result: result) }) {
                    complete(resumption)
                }
            case .log:
                client.log(event: event)
            case .error:
                if let fatal = client.handleErrorEvent(event) {
                    context.fatal = fatal
                }
            case .deliveryReport, .statistics, .other:
                break
            }
            client.destroy(event: event)
            if context.fatal != nil { break }
        }
        flushCollected(context)
    }

    /// Serves offset-commit results (their own queue).
    private func serveCommitResults(timeoutMilliseconds: Int32) {
        var timeout = timeoutMilliseconds
        while let event = client.pollCommitResults(timeoutMilliseconds: timeout) {
            timeout = 0
            if client.kind(of: event) == .offsetCommit {
                let (id, result) = client.readCommitResult(event)
                if let resumption = state.withLock({ $0.commitFinished(id, result: result) }) {
                    complete(resumption)
                }
            }
            client.destroy(event: event)
        }
    }

    private func flushCollected(_ context: PollContext) {
        guard !context.collected.isEmpty else { return }
        let messages = context.collected
        context.collected.removeAll(keepingCapacity: true)
        for message in messages {
            context.lastOffsets[message.topicPartition] = message.offset
        }
        metrics.consumed.increment(by: messages.count)
        state.withLock { $0.deliver(messages) }.map { $0.continuation.resume(with: $0.result) }
    }

    private func handleRebalance(_ event: OpaquePointer) {
        let cooperative = client.usesCooperativeRebalancing
        switch client.readRebalance(event) {
        case .success((assigned: true, let partitions)):
            do {
                if cooperative {
                    try client.incrementalAssign(partitions, add: true)
                } else {
                    try client.assign(partitions)
                }
            } catch {
                logger.error("Kafka assign failed", metadata: ["kafka.error": "\(error)"])
                return
            }
            let paused = state.withLock { state in
                state.assigned(partitions)
                return state.isFetchPaused
            }
            // librdkafka keeps a partition's pause flag across unassign and assign; revoked partitions are resumed
            // before they go (below), so one assigned here is paused only if this consumer is. It is never resumed
            // right after the assign: that resume's op version can outdate the assignment's fetch start, and the
            // partition is then never fetched (librdkafka issues 2190 and 5591; seen here as a partition that came
            // back after a rebalance and delivered nothing).
            if paused { client.setPaused(true, partitions: partitions) }
            metrics.rebalances.increment()
            logger.info("Kafka partitions assigned", metadata: ["kafka.partitions": "\(partitions)"])
            rebalanceContinuation.yield(.assigned(partitions))
        case .success((assigned: false, let partitions)):
            let paused = state.withLock { state in
                state.revoked(partitions)
                return state.isFetchPaused
            }
            // Lifted while they are still assigned, so that no pause outlives this member's ownership (see above).
            if paused { client.setPaused(false, partitions: partitions) }
            if client.assignmentLost {
                logger.warning("Kafka assignment lost; stored offsets not committed")
            } else if let error = client.commitStoredOffsets() {
                logger.warning("Kafka commit on revoke failed", metadata: ["kafka.error": "\(error)"])
            }
            do {
                if cooperative {
                    try client.incrementalAssign(partitions, add: false)
                } else {
                    try client.unassignAll()
                }
            } catch {
                logger.error("Kafka unassign failed", metadata: ["kafka.error": "\(error)"])
            }
            metrics.rebalances.increment()
            logger.info("Kafka partitions revoked", metadata: ["kafka.partitions": "\(partitions)"])
            rebalanceContinuation.yield(.revoked(partitions))
        case .failure(let error):
            logger.error("Kafka rebalance error", metadata: ["kafka.error": "\(error)"])
            if !cooperative {
                try? client.unassignAll()
            }
        }
    }

    private func applyFetchPause() {
        let (change, partitions) = state.withLock { ($0.fetchPauseChange(), $0.assignment) }
        guard let paused = change else { return }
        client.setPaused(paused, partitions: Array(partitions))
    }

    /// Lag per partition: the end of the partition (as last seen by a fetch) minus the next offset to read.
    private func updateLagIfDue(_ context: PollContext) {
        let now = ContinuousClock.now
        guard now - context.lastLagUpdate >= .seconds(1) else { return }
        context.lastLagUpdate = now
        for partition in state.withLock({ $0.assignment }) {
            guard let last = context.lastOffsets[partition],
                let high = client.cachedHighWatermark(topic: partition.topic, partition: partition.partition)
            else { continue }
            metrics.recordLag(max(0, high - (last + 1)), for: partition)
        }
    }

    // MARK: - Fan-out start

    /// Finds the topic's partitions, resolves the start offsets and assigns them all; waits (and retries) while
    /// the topic does not exist yet or the brokers are unreachable, until shutdown.
    private func startFanOut(topic: String, start: KafkaFanOutStart, context: PollContext) throws(KafkaError) {
        var offsets: [Int32: Int64] = [:]
        var partitionCount: Int32?
        var attempt = 0
        while state.withLock({ $0.phase }) == .running {
            do {
                let count = try partitionCount ?? client.partitionCount(topic: topic, timeoutMilliseconds: 5000)
                partitionCount = count
                for partition in 0..<count where offsets[partition] == nil {
                    let watermarks = try client.queryWatermarks(
                        topic: topic,
                        partition: partition,
                        timeoutMilliseconds: 5000
                    )
                    switch start {
                    case .end:
                        offsets[partition] = watermarks.high
                    case .beginning:
                        offsets[partition] = watermarks.low
                    case .offsets(let given):
                        offsets[partition] = given[partition] ?? watermarks.high
                    }
                }
                break
            } catch {
                attempt += 1
                if attempt == 1 || attempt % 10 == 0 {
                    logger.warning(
                        "Kafka fan-out reader waiting for topic",
                        metadata: ["kafka.topic": "\(topic)", "kafka.error": "\(error)"]
                    )
                }
                serveEvents(timeoutMilliseconds: 500, context: context)
            }
        }
        guard let partitionCount, offsets.count == Int(partitionCount) else { return }
        let partitions = (0..<partitionCount).map { KafkaTopicPartition(topic: topic, partition: $0) }
        var explicit: [KafkaTopicPartition: Int64] = [:]
        for partition in partitions {
            explicit[partition] = offsets[partition.partition]
        }
        try client.assign(partitions, offsets: explicit)
        state.withLock { $0.assigned(partitions) }
        logger.debug(
            "Kafka fan-out reader assigned", metadata: ["kafka.topic": "\(topic)", "kafka.offsets": "\(offsets)"])
        for waiter in state.withLock({ $0.becameReady(offsets) }) {
            waiter.resume(returning: offsets)
        }
    }
}
