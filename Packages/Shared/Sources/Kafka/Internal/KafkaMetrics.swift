import Metrics

/// The producer's swift-metrics instruments, labelled with the client id.
struct ProducerMetrics: Sendable {
    let produced: Counter
    let delivered: Counter
    let failed: Counter
    let deliveryLatency: Timer
    let queueFull: Counter

    init(clientID: String) {
        let dimensions = [("client_id", clientID)]
        produced = Counter(label: "kafka_producer_messages_produced_total", dimensions: dimensions)
        delivered = Counter(label: "kafka_producer_messages_delivered_total", dimensions: dimensions)
        failed = Counter(label: "kafka_producer_messages_failed_total", dimensions: dimensions)
        deliveryLatency = Timer(label: "kafka_producer_delivery_latency_seconds", dimensions: dimensions)
        queueFull = Counter(label: "kafka_producer_queue_full_total", dimensions: dimensions)
    }
}

/// A consumer's (group member or fan-out reader) swift-metrics instruments, labelled with client id and group.
struct ConsumerMetrics: Sendable {
    let consumed: Counter
    let committed: Counter
    let commitFailures: Counter
    let rebalances: Counter
    private let dimensions: [(String, String)]

    init(clientID: String, group: String) {
        dimensions = [("client_id", clientID), ("group", group)]
        consumed = Counter(label: "kafka_consumer_messages_consumed_total", dimensions: dimensions)
        committed = Counter(label: "kafka_consumer_offsets_committed_total", dimensions: dimensions)
        commitFailures = Counter(label: "kafka_consumer_commit_failures_total", dimensions: dimensions)
        rebalances = Counter(label: "kafka_consumer_rebalances_total", dimensions: dimensions)
    }

    /// Messages between the last one received from a partition and the partition's end.
    func recordLag(_ lag: Int64, for partition: KafkaTopicPartition) {
        Gauge(
            label: "kafka_consumer_lag_messages",
            dimensions: dimensions + [("topic", partition.topic), ("partition", "\(partition.partition)")]
        ).record(lag)
    }
}
