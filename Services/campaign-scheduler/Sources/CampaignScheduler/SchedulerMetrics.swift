import Metrics

/// The scheduler's swift-metrics instruments (rendered by `/metrics` when the process bootstraps Prometheus).
struct SchedulerMetrics: Sendable {
    /// Originate commands of campaign calls acknowledged by Kafka.
    let callsDispatched = Counter(label: "campaign_calls_dispatched_total")
    /// Due contacts set done because their number is on a do-not-call list.
    let doNotCallSkipped = Counter(label: "campaign_dnc_skipped_total")
    /// Campaign call ends applied (attempt outcomes recorded).
    let callEnds = Counter(label: "campaign_call_ends_total")
    /// Campaigns this scheduler holds.
    let campaignsHeld = Gauge(label: "campaigns_held")
    /// Time of one dispatch transaction.
    let dispatchDuration = Timer(label: "campaign_dispatch_duration_seconds", preferredDisplayUnit: .seconds)
}
