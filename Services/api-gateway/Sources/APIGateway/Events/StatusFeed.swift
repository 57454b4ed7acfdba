import CallDomain
import CallMessaging
import Kafka
import Logging
import Metrics
import ServiceLifecycle

/// Reads `calls.status.v1` through the process's one fan-out reader and hands every event to the hub.
///
/// The reader starts at the end of every partition (a stream shows what happens from now on; the past comes from
/// the history) and joins no consumer group, so every gateway instance sees every event. A message that cannot
/// be decoded is logged and skipped; it never stops the feed. On shutdown the hub ends every stream.
struct StatusFeed: Service {
    let reader: KafkaFanOutReader
    let hub: StatusHub
    let metrics: GatewayMetrics
    let logger: Logger

    func run() async throws {
        // Ends every stream however the feed stops, so no SSE response outlives it.
        defer { hub.close() }
        do {
            // Graceful shutdown ends the iteration (the reader itself stops after the feed).
            for try await message in reader.messages.cancelOnGracefulShutdown() {
                do {
                    let (event, _) = try CallMessageDecoder.status(message)
                    metrics.statusEventsReceived.increment()
                    hub.publish(event)
                } catch {
                    logger.warning(
                        "skipping an undecodable status message",
                        metadata: [
                            "kafka.topic": .string(message.topic),
                            "kafka.partition": .stringConvertible(message.partition),
                            "kafka.offset": .stringConvertible(message.offset), "error": .string("\(error)"),
                        ])
                }
            }
        } catch is CancellationError {
            return
        }
    }
}
