import Logging
import ServiceLifecycle

/// A reader that sees every message of a topic: it assigns itself all partitions, joins no consumer group and
/// commits nothing.
///
/// For readers that must each see everything: the gateway's live status streams and each worker's control
/// reader. Partitions added to the topic after the reader started are not read.
///
/// ``run()`` owns the poll loop on a dedicated thread; ``waitUntilReady()`` returns once the partitions are
/// assigned at resolved offsets, so that every message produced after it returns is guaranteed to be read.
public final class KafkaFanOutReader: Service, Sendable {
    private let core: ConsumerCore

    /// The topic read.
    public let topic: String

    /// Creates the reader; it looks the topic up and assigns itself its partitions when ``run()`` starts (waiting
    /// for the topic to exist).
    ///
    /// - Parameter start: where each partition starts: ``KafkaFanOutStart/end`` (only new messages),
    ///   ``KafkaFanOutStart/beginning``, or explicit offsets (unlisted partitions start at the end).
    /// - Throws: ``KafkaError`` when librdkafka rejects a property.
    public init(
        configuration: KafkaConfiguration,
        topic: String,
        start: KafkaFanOutStart = .end,
        logger: Logger
    ) throws {
        // librdkafka assigns partitions through its group object, which needs a group id; the reader never joins
        // the group (no subscribe) and never commits, so a unique id keeps readers independent.
        let uniqueGroup = "fanout-\(configuration.clientID)-\(UInt64.random(in: 0...UInt64.max))"
        let properties = configuration.librdkafkaProperties(defaults: [
            "group.id": uniqueGroup,
            "enable.auto.commit": "false",
            "enable.auto.offset.store": "false",
            // An explicit offset that is no longer retained falls back to the oldest retained message.
            "auto.offset.reset": "earliest",
        ])
        var logger = logger
        logger[metadataKey: "kafka.client"] = "\(configuration.clientID)"
        logger[metadataKey: "kafka.topic"] = "\(topic)"
        let client = try RdKafkaClient(role: .consumer, properties: properties, logger: logger)
        self.core = ConsumerCore(
            client: client,
            mode: .fanOut(topic: topic, start: start),
            clientID: configuration.clientID,
            logger: logger
        )
        self.topic = topic
    }

    /// The messages of every partition, in order per partition; iterate from one task at a time. Ends when the
    /// reader shuts down.
    public var messages: KafkaConsumerMessages {
        KafkaConsumerMessages(core: core)
    }

    /// Waits until the reader has assigned itself every partition; returns the offset each partition starts at.
    ///
    /// - Throws: ``KafkaError`` when the reader shut down before it became ready.
    public func waitUntilReady() async throws -> [Int32: Int64] {
        try await core.waitUntilReady()
    }

    /// Stops delivery until ``resume()`` (same semantics as ``KafkaConsumer/pause()``).
    public func pause() throws {
        try core.pause()
    }

    /// Resumes delivery after ``pause()``.
    public func resume() throws {
        try core.resume()
    }

    /// Assigns the partitions and serves the poll loop until graceful shutdown or cancellation.
    ///
    /// - Throws: ``KafkaError`` when librdkafka raised a fatal error.
    public func run() async throws {
        try await core.run()
    }
}
