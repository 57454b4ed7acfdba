import CallDomain
import Kafka
import ServiceSupport
import Tracing

/// The spans around the platform's Kafka messages, with OpenTelemetry's messaging attributes: one place for the
/// names and attributes every producer and consumer of the topics uses.
public enum MessageTracing {
    /// Runs `body`, the processing of `message` (whose CloudEvents attributes are `event`, about call `callID`), in a
    /// consumer span continuing the message's `traceparent`. `body` gets the `traceparent` to publish what it
    /// produces with (see ``TraceSpans/withSpan(_:ofKind:parent:attributes:isolation:_:)``).
    public static func processing<Result>(
        _ message: KafkaMessage, event: CloudEventAttributes, callID: CallID,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (_ traceParent: String?) async throws -> Result
    ) async rethrows -> Result {
        try await TraceSpans.withSpan(
            "process \(message.topic)", ofKind: .consumer, parent: event.traceParent,
            attributes: [
                "messaging.system": "kafka", "messaging.operation.type": "process",
                "messaging.destination.name": .string(message.topic), "messaging.message.id": .string(event.id),
                "messaging.kafka.message.offset": .int64(message.offset), "cloudevents.event_type": .string(event.type),
                "call.id": .string(callID.description),
            ],
            isolation: isolation, body)
    }

    /// Runs `body`, the publication of a message with key `key` to `topic`, in a producer span; `body` gets the
    /// `traceparent` to put on the record.
    static func publishing<Result>(
        topic: String, key: String, eventID: String, eventType: String, parent: String?,
        _ body: (_ traceParent: String?) async throws -> Result
    ) async rethrows -> Result {
        try await TraceSpans.withSpan(
            "publish \(topic)", ofKind: .producer, parent: parent,
            attributes: [
                "messaging.system": "kafka", "messaging.operation.type": "send",
                "messaging.destination.name": .string(topic), "messaging.message.id": .string(eventID),
                "messaging.kafka.message.key": .string(key), "cloudevents.event_type": .string(eventType),
            ], body)
    }
}
