import Metrics

/// The dispatcher's swift-metrics instruments (rendered by `/metrics` when the process bootstraps Prometheus).
struct DispatcherMetrics: Sendable {
    /// Deliveries created from status events.
    let deliveriesCreated = Counter(label: "webhook_deliveries_created_total")
    /// Status events read from Kafka that do not decode (the history writer dead-letters them).
    let undecodableEvents = Counter(label: "webhook_undecodable_events_total")
    /// Time from an attempt's start to its answer (or failure).
    let attemptDuration = Timer(label: "webhook_attempt_duration_seconds", preferredDisplayUnit: .seconds)
    /// Time from a call event to its successful delivery.
    let deliveryLatency = Timer(label: "webhook_delivery_latency_seconds", preferredDisplayUnit: .seconds)
    /// Finished deliveries deleted after the retention period.
    let deliveriesPurged = Counter(label: "webhook_deliveries_purged_total")
    /// Attempts in flight in this process.
    let inFlight = Gauge(label: "webhook_attempts_in_flight")
    /// Pending deliveries due now, and waiting for a later attempt (sampled).
    let backlogDue = Gauge(label: "webhook_backlog", dimensions: [("state", "due")])
    let backlogWaiting = Gauge(label: "webhook_backlog", dimensions: [("state", "waiting")])

    /// Counts an attempt by outcome: `delivered`, `failed` (will be retried or gave up), `gone`, `refused`.
    func attempt(_ outcome: String) {
        Counter(label: "webhook_attempts_total", dimensions: [("outcome", outcome)]).increment()
    }
}
