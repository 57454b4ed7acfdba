import Kafka

/// In-order commit positions for messages processed concurrently.
///
/// Commands are placed concurrently, and finish in any order; the offset committed for a partition must never pass
/// a message whose work is not durable yet. So the commit position of a partition is the lowest offset still in
/// flight (everything below it is done), or one past the highest completed offset when nothing is in flight.
struct OffsetTracker: Sendable {
    private struct PartitionState: Sendable {
        var inFlight: Set<Int64> = []
        var highestCompleted: Int64 = -1
        var highestDelivered: Int64 = -1
        var committed: Int64 = -1
    }

    private var partitions: [KafkaTopicPartition: PartitionState] = [:]

    /// A message was taken for processing.
    mutating func delivered(_ partition: KafkaTopicPartition, offset: Int64) {
        // The first offset delivered from a partition is where it starts: the group's committed position.
        var state = partitions[partition] ?? PartitionState(committed: offset)
        if offset <= state.highestDelivered {
            // A rewind (the partition came back after a rebalance, from its committed offset): completions from
            // before it say nothing about the messages being delivered again.
            state.highestCompleted = offset - 1
        }
        state.highestDelivered = max(state.highestDelivered, offset)
        state.inFlight.insert(offset)
        partitions[partition] = state
    }

    /// A message's work is durable; returns the position to commit for its partition, if it moved forward.
    mutating func completed(_ partition: KafkaTopicPartition, offset: Int64) -> KafkaTopicPartitionOffset? {
        guard var state = partitions[partition] else { return nil }
        state.inFlight.remove(offset)
        state.highestCompleted = max(state.highestCompleted, offset)
        let position = state.inFlight.min() ?? (state.highestCompleted + 1)
        defer { partitions[partition] = state }
        guard position > state.committed else { return nil }
        state.committed = position
        return KafkaTopicPartitionOffset(topic: partition.topic, partition: partition.partition, offset: position)
    }

    /// Messages delivered and not completed yet, over all partitions.
    var inFlightCount: Int {
        partitions.values.reduce(0) { $0 + $1.inFlight.count }
    }
}
