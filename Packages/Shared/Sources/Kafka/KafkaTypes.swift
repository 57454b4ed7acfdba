import Foundation

/// A Kafka record header: a key with an optional binary value (Kafka allows null header values).
public struct KafkaHeader: Sendable, Hashable {
    /// The header name, e.g. `ce_type` or `traceparent`.
    public var key: String
    /// The header value; `nil` is a null value on the wire, distinct from an empty one.
    public var value: [UInt8]?

    /// Creates a header with a binary (or null) value.
    public init(key: String, value: [UInt8]?) {
        self.key = key
        self.value = value
    }

    /// Creates a header whose value is the UTF-8 encoding of `value`, the common case for CloudEvents headers.
    public init(key: String, value: String) {
        self.init(key: key, value: Array(value.utf8))
    }

    /// The value decoded as UTF-8, or `nil` for a null value.
    public var stringValue: String? {
        value.map { String(decoding: $0, as: UTF8.self) }
    }
}

/// A message to send in a batch (``KafkaProducer/send(_:)``).
public struct KafkaOutgoingMessage: Sendable, Hashable {
    /// The destination topic.
    public var topic: String
    /// The partitioning key, or `nil` for round-robin partitioning.
    public var key: [UInt8]?
    /// The value.
    public var value: [UInt8]
    /// The headers.
    public var headers: [KafkaHeader]

    /// Creates a message to send.
    public init(topic: String, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader] = []) {
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
    }
}

/// The broker's acknowledgement of a produced message: where it was written.
public struct KafkaDeliveryReceipt: Sendable, Hashable {
    /// The topic the message was written to.
    public var topic: String
    /// The partition the message was written to.
    public var partition: Int32
    /// The offset the message got in that partition.
    public var offset: Int64

    /// Creates a receipt.
    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }
}

/// A message read from Kafka.
public struct KafkaMessage: Sendable, Hashable {
    /// The topic the message was read from.
    public var topic: String
    /// Its partition.
    public var partition: Int32
    /// Its offset in the partition; committing this message commits `offset + 1`.
    public var offset: Int64
    /// Its key, or `nil` when it had none.
    public var key: [UInt8]?
    /// Its value (empty for a null value).
    public var value: [UInt8]
    /// Its headers, in wire order (a key may repeat).
    public var headers: [KafkaHeader]
    /// The record timestamp (create or log-append time), when the record has one.
    public var timestamp: Date?

    /// Creates a message (used by this module and by tests building expected values).
    public init(
        topic: String,
        partition: Int32,
        offset: Int64,
        key: [UInt8]?,
        value: [UInt8],
        headers: [KafkaHeader] = [],
        timestamp: Date? = nil
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
    }

    /// The value of the last header named `key` (Kafka's convention when a header repeats), or `nil` when there is
    /// no such header or its value is null.
    public func header(_ key: String) -> [UInt8]? {
        headers.last(where: { $0.key == key })?.value ?? nil
    }

    /// The key decoded as UTF-8 (call ids are UTF-8 strings), or `nil` when there is no key.
    public var keyString: String? {
        key.map { String(decoding: $0, as: UTF8.self) }
    }

    /// The partition the message came from.
    public var topicPartition: KafkaTopicPartition {
        KafkaTopicPartition(topic: topic, partition: partition)
    }
}

/// A partition of a topic.
public struct KafkaTopicPartition: Sendable, Hashable, CustomStringConvertible {
    /// The topic name.
    public var topic: String
    /// The partition number.
    public var partition: Int32

    /// Creates a topic-partition.
    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    /// `topic[partition]`.
    public var description: String { "\(topic)[\(partition)]" }
}

/// An offset to commit for a partition: the offset of the next message to read, i.e. last processed + 1.
public struct KafkaTopicPartitionOffset: Sendable, Hashable {
    /// The topic name.
    public var topic: String
    /// The partition number.
    public var partition: Int32
    /// The next offset to consume from this partition (last processed offset + 1).
    public var offset: Int64

    /// Creates a commit position.
    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }

    /// The position after `message`: committing it marks the message as processed.
    public init(after message: KafkaMessage) {
        self.init(topic: message.topic, partition: message.partition, offset: message.offset + 1)
    }
}

/// A change of a group consumer's partition assignment, as the group coordinator decided it.
public enum KafkaRebalanceEvent: Sendable, Hashable {
    /// These partitions are now assigned to this member; their messages will follow.
    case assigned([KafkaTopicPartition])
    /// These partitions were taken away; stored offsets were committed and their undelivered messages dropped
    /// (the new owner reads them from the last committed offset).
    case revoked([KafkaTopicPartition])
}

/// Where a ``KafkaFanOutReader`` starts reading.
public enum KafkaFanOutStart: Sendable, Hashable {
    /// At the end of every partition: only messages produced after the reader is ready.
    case end
    /// At the beginning of every partition: the whole retained history.
    case beginning
    /// At given offsets per partition; partitions not listed start at the end.
    case offsets([Int32: Int64])
}
