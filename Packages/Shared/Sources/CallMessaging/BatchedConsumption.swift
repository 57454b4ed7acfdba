import Kafka
import ServiceLifecycle
import ServiceSupport

/// Reads a consumer group's messages in batches and commits each batch's offsets once its handler has made the
/// batch's effects durable: a message is never committed before it is handled, and one read twice (after a crash
/// or a rebalance) is handled again (handlers are idempotent).
///
/// The consumer runs outside the service's graceful shutdown: on shutdown the batch in hand is finished and committed
/// before the consumer leaves its group, so what was read is not read again needlessly.
public struct BatchedConsumption: Sendable {
    let consumer: KafkaConsumer
    let batchSize: Int

    /// Reads `consumer` in batches of at most `batchSize` messages.
    public init(consumer: KafkaConsumer, batchSize: Int) {
        self.consumer = consumer
        self.batchSize = batchSize
    }

    /// Runs until shutdown, cancellation or a consumer failure (rethrown).
    ///
    /// - Parameters:
    ///   - running: told when the consumer starts and when it stops (for readiness).
    ///   - handle: makes a batch's effects durable; returns `false` when it gave up (shutdown), and the batch's
    ///     offsets are then not committed.
    public func run(
        running: @Sendable (Bool) -> Void = { _ in },
        handle: @escaping @Sendable ([KafkaMessage]) async -> Bool
    ) async throws {
        let consumer = self.consumer
        let batchSize = self.batchSize
        let consumerTask = Task.detached { try await consumer.run() }
        running(true)
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
                        guard await handle(batch) else { break }
                        // Stored already: a batch read again after a failed commit changes nothing.
                        try? await consumer.commit(Self.nextOffsets(of: batch))
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
        running(false)
        if case .failure(let error) = await consumerTask.result, !(error is CancellationError) {
            throw error
        }
        if let readerFailure { throw readerFailure }
    }

    /// The offsets to commit after `batch`: one past the last message of each partition.
    static func nextOffsets(of batch: [KafkaMessage]) -> [KafkaTopicPartitionOffset] {
        var positions: [KafkaTopicPartition: Int64] = [:]
        for message in batch {
            positions[message.topicPartition] = max(positions[message.topicPartition] ?? -1, message.offset)
        }
        return positions.map {
            KafkaTopicPartitionOffset(topic: $0.key.topic, partition: $0.key.partition, offset: $0.value + 1)
        }
    }
}
