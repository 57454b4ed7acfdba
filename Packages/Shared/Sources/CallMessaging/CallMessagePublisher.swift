import CallDomain
import Foundation
import Kafka

/// Publishes the platform's messages to Kafka as CloudEvents in binary mode: the JSON payload as the value, the
/// call id as the key (so one call's messages stay in order in one partition), and `ce_*`, `content-type` and
/// `traceparent` headers.
public struct CallMessagePublisher: Sendable {
    /// The producer; it must be running.
    public let producer: KafkaProducer
    /// The topic names.
    public let topics: CallTopics
    /// The CloudEvents `source` of this process, e.g. `/api-gateway/host-1`.
    public let source: String

    /// Creates a publisher.
    public init(producer: KafkaProducer, topics: CallTopics, source: String) {
        self.producer = producer
        self.topics = topics
        self.source = source
    }

    /// Publishes an originate command; returns once the brokers acknowledged it.
    @discardableResult
    public func publish(_ command: OriginateCommand, traceParent: String?) async throws -> KafkaDeliveryReceipt {
        try await send(
            topic: topics.originate, callID: command.callID, type: OriginateCommand.eventType,
            id: UUID.systemRandom().uuidString.lowercased(), time: command.requestedAt,
            payload: try WireCoding.encode(command),
            traceParent: traceParent)
    }

    /// Publishes a hangup or cancel command; returns once the brokers acknowledged it.
    @discardableResult
    public func publish(_ command: ControlCommand, traceParent: String?) async throws -> KafkaDeliveryReceipt {
        try await send(
            topic: topics.control, callID: command.callID, type: command.eventType,
            id: UUID.systemRandom().uuidString.lowercased(),
            time: Date(), payload: try command.encoded(), traceParent: traceParent)
    }

    /// Publishes a status event (its `event_id` is the CloudEvents id); returns once the brokers acknowledged it.
    @discardableResult
    public func publish(_ event: CallStatusEvent, traceParent: String?) async throws -> KafkaDeliveryReceipt {
        try await send(
            topic: topics.status, callID: event.callID, type: CallStatusEvent.eventType,
            id: event.eventID.uuidString.lowercased(), time: event.occurredAt, payload: try WireCoding.encode(event),
            traceParent: traceParent)
    }

    private func send(
        topic: String, callID: CallID, type: String, id: String, time: Date, payload: [UInt8], traceParent: String?
    ) async throws -> KafkaDeliveryReceipt {
        let key = callID.description
        return try await MessageTracing.publishing(
            topic: topic, key: key, eventID: id, eventType: type, parent: traceParent
        ) { traceParent in
            let attributes = CloudEventAttributes(
                id: id, source: source, type: type, time: time, subject: key, traceParent: traceParent)
            return try await producer.send(
                topic: topic, key: key, value: payload,
                headers: attributes.headers.map { KafkaHeader(key: $0.key, value: $0.value) })
        }
    }
}

/// Reads the platform's messages back from Kafka records.
public enum CallMessageDecoder {
    /// The CloudEvents attributes of a record; throws when the required headers are missing.
    public static func attributes(of message: KafkaMessage) throws -> CloudEventAttributes {
        let headers = message.headers.compactMap { header in
            header.value.map { (key: header.key, value: String(decoding: $0, as: UTF8.self)) }
        }
        guard let attributes = CloudEventAttributes(headers: headers) else {
            throw WireError.missingHeader("ce_specversion/ce_id/ce_source/ce_type/ce_time")
        }
        return attributes
    }

    /// An originate command and its attributes.
    public static func originate(_ message: KafkaMessage) throws -> (OriginateCommand, CloudEventAttributes) {
        let attributes = try attributes(of: message)
        guard attributes.type == OriginateCommand.eventType else { throw WireError.unknownEventType(attributes.type) }
        return (try WireCoding.decode(OriginateCommand.self, from: message.value), attributes)
    }

    /// A control command and its attributes.
    public static func control(_ message: KafkaMessage) throws -> (ControlCommand, CloudEventAttributes) {
        let attributes = try attributes(of: message)
        return (try ControlCommand.decode(eventType: attributes.type, payload: message.value), attributes)
    }

    /// A status event and its attributes.
    public static func status(_ message: KafkaMessage) throws -> (CallStatusEvent, CloudEventAttributes) {
        let attributes = try attributes(of: message)
        guard attributes.type == CallStatusEvent.eventType else { throw WireError.unknownEventType(attributes.type) }
        return (try WireCoding.decode(CallStatusEvent.self, from: message.value), attributes)
    }
}
