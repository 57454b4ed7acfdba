import Logging
import ServiceLifecycle

/// A member of a Kafka consumer group with explicit commits: at-least-once processing.
///
/// librdkafka's automatic commit and offset store are off: an offset is committed only when the application says
/// its message was processed (``commit(_:)-(KafkaMessage)``), after the work is durable. On a rebalance, revoked
/// partitions get their stored offsets committed and their undelivered messages dropped (their new owner reads
/// them from the committed offset); assignments and revocations are published on ``rebalanceEvents``.
/// ``pause()`` stops delivery from every assigned partition (the worker's back-pressure) until ``resume()``.
///
/// ``run()`` owns the poll loop on a dedicated thread and must be running for messages, commits and rebalances to
/// flow. On graceful shutdown or cancellation it ends ``messages``, commits stored offsets and leaves the group.
public final class KafkaConsumer: Service, Sendable {
    private let core: ConsumerCore

    /// The group this consumer belongs to.
    public let groupID: String
    /// The topics it subscribes to.
    public let topics: [String]

    /// Creates the consumer (validating the configuration); it joins the group when ``run()`` starts.
    ///
    /// - Parameters:
    ///   - groupID: the consumer group (librdkafka `group.id`); members of a group share the partitions.
    ///   - startFromBeginning: where a partition without a committed offset starts: the oldest message (`true`,
    ///     `auto.offset.reset=earliest`) or only new messages (`false`, `latest`).
    /// - Throws: ``KafkaError`` when librdkafka rejects a property or `topics` is empty.
    public init(
        configuration: KafkaConfiguration,
        groupID: String,
        topics: [String],
        startFromBeginning: Bool = true,
        logger: Logger
    ) throws {
        guard !topics.isEmpty else {
            throw KafkaError(code: .invalidArgument, message: "a Kafka consumer needs at least one topic")
        }
        let properties = configuration.librdkafkaProperties(defaults: [
            "group.id": groupID,
            "enable.auto.commit": "false",
            "enable.auto.offset.store": "false",
            "auto.offset.reset": startFromBeginning ? "earliest" : "latest",
        ])
        var logger = logger
        logger[metadataKey: "kafka.client"] = "\(configuration.clientID)"
        logger[metadataKey: "kafka.group"] = "\(groupID)"
        let client = try RdKafkaClient(role: .consumer, properties: properties, logger: logger)
        self.core = ConsumerCore(
            client: client,
            mode: .group(id: groupID, topics: topics),
            clientID: configuration.clientID,
            logger: logger
        )
        self.groupID = groupID
        self.topics = topics
    }

    /// The consumed messages, in order per partition. Iterate from one task at a time. The sequence ends when the
    /// consumer shuts down, and throws the error if librdkafka raised a fatal one.
    public var messages: KafkaConsumerMessages {
        KafkaConsumerMessages(core: core)
    }

    /// Assignments and revocations of partitions, in the order they happened (the newest 64 are kept while nobody
    /// reads them). Ends when the consumer closes.
    public var rebalanceEvents: AsyncStream<KafkaRebalanceEvent> {
        core.rebalanceEvents
    }

    /// The partitions currently assigned to this member.
    public var assignment: [KafkaTopicPartition] {
        core.assignment
    }

    /// Commits `message.offset + 1` for the message's partition, returning once the group coordinator has stored
    /// it. The offset is also stored locally, so a rebalance or close commits it even if this request fails.
    ///
    /// - Throws: ``KafkaError``; code ``KafkaError/Code/invalidState`` when the partition is no longer assigned
    ///   (the message will be redelivered to its new owner), ``KafkaError/Code/shutdown`` after close.
    public func commit(_ message: KafkaMessage) async throws {
        try await core.commit([KafkaTopicPartitionOffset(after: message)])
    }

    /// Commits explicit positions: each offset is the next one to read (last processed + 1).
    public func commit(_ offsets: [KafkaTopicPartitionOffset]) async throws {
        try await core.commit(offsets)
    }

    /// Stops delivering messages from every assigned partition, including partitions assigned later, until
    /// ``resume()``. Takes effect at once for ``messages``; fetching from the brokers stops shortly after.
    /// Nothing is lost: delivery continues where it stopped.
    ///
    /// - Throws: ``KafkaError`` with code ``KafkaError/Code/shutdown`` after the consumer closed.
    public func pause() throws {
        try core.pause()
    }

    /// Resumes delivery after ``pause()``.
    ///
    /// - Throws: ``KafkaError`` with code ``KafkaError/Code/shutdown`` after the consumer closed.
    public func resume() throws {
        try core.resume()
    }

    /// Whether the application has paused delivery.
    public var isPaused: Bool {
        core.isPaused
    }

    /// How far this consumer's group has got on `topic`, partition by partition: the end of the partition (its
    /// high watermark, the offset the next message will get) and the group's committed offset, or the start of the
    /// partition (its low watermark) where the group never committed. Works whether or not this member has the
    /// partitions assigned, so a process can tell when the whole group has consumed what was on the topic.
    ///
    /// - Parameter timeout: the bound of each of the blocking requests to the brokers (they run on their own thread).
    /// - Throws: ``KafkaError`` when the brokers or the group coordinator do not answer in time.
    public func groupProgress(on topic: String, timeout: Duration) async throws -> [KafkaGroupProgress] {
        let client = core.client
        let milliseconds = Int32(clamping: timeout.milliseconds)
        let result: Result<[KafkaGroupProgress], KafkaError> = await PollThread.run(name: "kafka-progress") {
            do throws(KafkaError) {
                let count = try client.partitionCount(topic: topic, timeoutMilliseconds: milliseconds)
                let partitions = (0..<count).map { KafkaTopicPartition(topic: topic, partition: $0) }
                let committed = try client.committedOffsets(partitions, timeoutMilliseconds: milliseconds)
                return .success(
                    try partitions.map { partition throws(KafkaError) in
                        let marks = try client.queryWatermarks(
                            topic: topic, partition: partition.partition, timeoutMilliseconds: milliseconds)
                        return KafkaGroupProgress(
                            partition: partition, committed: (committed[partition] ?? nil) ?? marks.low,
                            end: marks.high)
                    })
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Joins the group and serves the poll loop until graceful shutdown or cancellation, then commits stored
    /// offsets and leaves the group cleanly.
    ///
    /// - Throws: ``KafkaError`` when the subscription failed or librdkafka raised a fatal error.
    public func run() async throws {
        try await core.run()
    }
}

/// The messages of a ``KafkaConsumer`` or ``KafkaFanOutReader`` as an `AsyncSequence`.
///
/// At most one task may iterate at a time. Cancelling the iterating task ends its iteration (returns `nil`).
public struct KafkaConsumerMessages: AsyncSequence, Sendable {
    /// Each element is one consumed message.
    public typealias Element = KafkaMessage

    let core: ConsumerCore

    /// Creates the iterator.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(core: core)
    }

    /// Pulls messages from the consumer's buffer, suspending while it is empty or paused.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let core: ConsumerCore

        /// The next message, or `nil` when the consumer has shut down (or the task was cancelled).
        public mutating func next() async throws -> KafkaMessage? {
            try await core.next()
        }
    }
}

/// How far a consumer group has got on one partition (``KafkaConsumer/groupProgress(on:timeout:)``).
public struct KafkaGroupProgress: Sendable, Hashable {
    /// The partition.
    public var partition: KafkaTopicPartition
    /// The group's committed offset: the next message it will process. The partition's start if it never committed.
    public var committed: Int64
    /// The partition's high watermark: the offset of the next message produced to it.
    public var end: Int64

    /// Creates a progress entry.
    public init(partition: KafkaTopicPartition, committed: Int64, end: Int64) {
        self.partition = partition
        self.committed = committed
        self.end = end
    }
}
