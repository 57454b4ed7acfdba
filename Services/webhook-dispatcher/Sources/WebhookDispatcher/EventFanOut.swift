import CallDomain
import CallMessaging
import CallStore
import Kafka
import Logging
import Metrics
import OperationsHTTP
import ServiceLifecycle
import ServiceSupport

/// Reads `calls.status.v1` in the dispatchers' consumer group and turns each batch of events into deliveries in
/// PostgreSQL before committing its offsets: an event is never lost between Kafka and the delivery queue, and one
/// read twice (after a crash or a rebalance) makes no second delivery.
struct EventFanOut: Service {
    let consumer: KafkaConsumer
    let store: CallStore
    let clock: any WebhookClock
    let batchSize: Int
    let databaseTimeout: Duration
    let readiness: ConsumerReadiness
    let metrics: DispatcherMetrics
    /// Takes the deliveries leased to this process as they are created, and is told when others wait for a claim.
    let scheduler: DeliveryScheduler
    let logger: Logger

    func run() async throws {
        try await BatchedConsumption(consumer: consumer, batchSize: batchSize).run(
            running: { readiness.setConsumerRunning($0) }, handle: fanOut)
    }

    /// Stores the batch's deliveries, retrying while PostgreSQL is away; `false` if abandoned at shutdown.
    @Sendable private func fanOut(_ batch: [KafkaMessage]) async -> Bool {
        var events: [CallStatusEvent] = []
        for message in batch {
            do {
                events.append(try CallMessageDecoder.status(message).0)
            } catch {
                // The history writer reads the same topic and dead-letters such a message; here it has no call.
                metrics.undecodableEvents.increment()
                logger.warning(
                    "status event does not decode; no webhook for it",
                    metadata: [
                        "kafka.partition": "\(message.partition)", "kafka.offset": "\(message.offset)",
                        "error": "\(error)",
                    ])
            }
        }
        var delay = Duration.milliseconds(100)
        while true {
            do {
                let handOff = scheduler.handOff()
                let result = try await withTimeout(databaseTimeout) { [store, clock, events] in
                    try await store.fanOut(events, at: clock.now(), handOff: handOff)
                }
                if result.created > 0 {
                    metrics.deliveriesCreated.increment(by: result.created)
                    await scheduler.accept(result)
                }
                break
            } catch {
                if Task.isCancelled {
                    logger.warning("webhook fan-out abandoned", metadata: ["error": "\(error)"])
                    return false
                }
                logger.warning(
                    "webhook deliveries not stored; retrying",
                    metadata: ["error": "\(String(reflecting: error))", "batch.size": "\(batch.count)"])
                guard (try? await Task.sleep(for: delay)) != nil else { return false }
                delay = min(delay * 2, .seconds(2))
            }
        }
        return true
    }
}
