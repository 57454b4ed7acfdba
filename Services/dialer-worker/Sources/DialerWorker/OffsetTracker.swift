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
        var lastDelivered: Int64 = -1
        var committed: Int64 = -1
    }

    private var partitions: [KafkaTopicPartition: PartitionState] = [:]

    /// How a delivered offset relates to the one delivered before it from the same partition.
    enum Continuity: Equatable, Sendable {
        /// The next offset.
        case follows
        /// The partition's first message in this process.
        case starts
        /// An offset at or below the previous one: the partition came back after a rebalance, from its committed
        /// offset.
        case rewinds(from: Int64)
        /// Past the next offset: messages were passed over (offsets of one partition are consecutive).
        case jumps(from: Int64)
    }

    /// A message was taken for processing.
    @discardableResult
    mutating func delivered(_ partition: KafkaTopicPartition, offset: Int64) -> Continuity {
        // The first offset delivered from a partition is where it starts: the group's committed position.
        let known = partitions[partition] != nil
        var state = partitions[partition] ?? PartitionState(committed: offset)
        let previous = state.lastDelivered
        defer { partitions[partition] = state }
        state.lastDelivered = offset
        if offset <= state.highestDelivered {
            // A rewind: completions from before it say nothing about the messages being delivered again.
            state.highestCompleted = offset - 1
        }
        state.highestDelivered = max(state.highestDelivered, offset)
        state.inFlight.insert(offset)
        guard known else { return .starts }
        if offset == previous + 1 { return .follows }
        return offset <= previous ? .rewinds(from: previous) : .jumps(from: previous)
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
