import CallDomain
import Foundation
import Kafka

/// Why a message went to the dead-letter topic (the `dlq_reason` header).
public enum DeadLetterReason: String, Sendable, CaseIterable {
    /// The record is not a message of this platform: headers missing, unknown type, JSON that does not decode or
    /// does not validate (a value out of range, such as a `seq` beyond PostgreSQL's `integer`).
    case undecodable
    /// PostgreSQL refused the message's data for good (a data exception or a constraint), however often it is tried.
    case rejectedByStore = "rejected_by_store"
}

extension CallMessagePublisher {
    /// Copies a message that can never be processed to the dead-letter topic, with its key, value and headers, and
    /// adds `dlq_reason`, `dlq_detail`, `dlq_source_topic`, `dlq_source_partition`, `dlq_source_offset`,
    /// `dlq_consumer_group` and `dlq_failed_at`; returns once the brokers acknowledged it. The caller then commits
    /// past the message, so a poison message never stalls its partition and is never lost.
    @discardableResult
    public func deadLetter(
        _ message: KafkaMessage, reason: DeadLetterReason, detail: String, consumerGroup: String
    ) async throws -> KafkaDeliveryReceipt {
        var headers = message.headers
        func add(_ key: String, _ value: String) { headers.append(KafkaHeader(key: key, value: Array(value.utf8))) }
        add("dlq_reason", reason.rawValue)
        add("dlq_detail", String(detail.prefix(1000)))
        add("dlq_source_topic", message.topic)
        add("dlq_source_partition", "\(message.partition)")
        add("dlq_source_offset", "\(message.offset)")
        add("dlq_consumer_group", consumerGroup)
        add("dlq_failed_at", ISO8601DateFormatter().string(from: Date()))
        return try await producer.send(
            topic: topics.deadLetter, key: message.key, value: message.value, headers: headers)
    }
}
