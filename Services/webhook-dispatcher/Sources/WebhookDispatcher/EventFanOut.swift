import CallDomain
import CallMessaging
import CallStore
import Kafka
import Logging
import Metrics
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
    let readiness: DispatcherReadiness
    let metrics: DispatcherMetrics
    /// Takes the deliveries leased to this process as they are created, and is told when others wait for a claim.
    let scheduler: DeliveryScheduler
    let logger: Logger

    func run() async throws {
        // As the history writer: the consumer runs outside this service's graceful shutdown, so what was read is
        // stored and committed before the consumer leaves the group.
        let consumer = self.consumer
        let consumerTask = Task.detached { try await consumer.run() }
        readiness.setConsumerRunning(true)
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
                        await fanOut(batch)
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
        readiness.setConsumerRunning(false)
        if case .failure(let error) = await consumerTask.result, !(error is CancellationError) {
            throw error
        }
        if let readerFailure { throw readerFailure }
    }

    /// Stores the batch's deliveries (retrying while PostgreSQL is away), then commits its offsets.
    private func fanOut(_ batch: [KafkaMessage]) async {
        var events: [CallStatusEvent] = []
        var positions: [KafkaTopicPartition: Int64] = [:]
        for message in batch {
            positions[message.topicPartition] = max(positions[message.topicPartition] ?? -1, message.offset)
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
                    return
                }
                logger.warning(
                    "webhook deliveries not stored; retrying",
                    metadata: ["error": "\(String(reflecting: error))", "batch.size": "\(batch.count)"])
                guard (try? await Task.sleep(for: delay)) != nil else { return }
                delay = min(delay * 2, .seconds(2))
            }
        }
        let offsets = positions.map {
            KafkaTopicPartitionOffset(topic: $0.key.topic, partition: $0.key.partition, offset: $0.value + 1)
        }
        do {
            try await consumer.commit(offsets)
        } catch {
            // Stored already: a redelivered batch makes no second delivery.
            logger.debug("webhook fan-out offsets not committed", metadata: ["error": "\(error)"])
        }
    }
}
