import CallDomain
import CallStore
import Metrics

/// The dialer worker's swift-metrics instruments (rendered by `/metrics` when the process bootstraps Prometheus).
///
/// Kafka consumer lag (`kafka_consumer_lag_messages`) and ARI request timings come from the Kafka and ARI modules.
struct WorkerMetrics: Sendable {
    /// Calls this worker owns right now.
    let liveCalls = Gauge(label: "dialer_live_calls")
    /// Originate requests sent, by result (`accepted`, `refused`); its rate is the originates per second.
    let originatesAccepted = Counter(label: "dialer_originates_total", dimensions: [("result", "accepted")])
    let originatesRefused = Counter(label: "dialer_originates_total", dimensions: [("result", "refused")])
    /// Originates sent again because the node created no channel (not booted, 5xx, no answer).
    let originateRetries = Counter(label: "dialer_originate_retries_total")
    /// 1 while the node answers as booted (`GET /asterisk/ping`), else 0.
    let nodeBooted = Gauge(label: "dialer_ari_node_booted")
    /// Time from sending an originate to its HTTP answer.
    let originateLatency = Timer(label: "dialer_originate_latency_seconds", preferredDisplayUnit: .seconds)
    /// ARI WebSocket reconnects seen by the dialer (each one triggers a reconciliation).
    let ariReconnects = Counter(label: "dialer_ari_reconnects_total")
    /// 1 while the dialer's partitions are paused (back-pressure), else 0.
    let paused = Gauge(label: "dialer_paused")
    /// Commands skipped because another worker had claimed them, or they were canceled or ended.
    let claimsLost = Counter(label: "dialer_claims_lost_total")
    /// Commands waiting for their organization's limits (`MAX_DEFERRED_CALLS` at most).
    let deferredCalls = Gauge(label: "dialer_deferred_calls")
    /// Commands dropped because their time to live had passed.
    let expired = Counter(label: "dialer_commands_expired_total")
    /// Calls this worker took over from a worker whose heartbeat stopped.
    let takeovers = Counter(label: "dialer_call_takeovers_total")
    /// Calls another worker took over while this one's owner lease had lapsed (dropped here unpublished).
    let callsLostToTakeover = Counter(label: "dialer_calls_lost_to_takeover_total")
    /// 1 while the worker holds its owner lease (its heartbeat is recent), else 0.
    let ownerLease = Gauge(label: "dialer_owner_lease_held")
    /// Calls ended by reconciliation because their channel vanished unseen.
    let reconciledEnds = Counter(label: "dialer_reconciled_ends_total")
    /// Status events the history writer stored, and its batches.
    let historyMessages = Counter(label: "history_writer_messages_total")
    let historyBatchDuration = Timer(label: "history_writer_batch_duration_seconds", preferredDisplayUnit: .seconds)

    /// Counts a claim held back by an organization limit (`max_live_calls`, `max_calls_per_second`).
    func claimDeferred(_ limit: OrganizationLimit) {
        Counter(label: "dialer_claims_deferred_total", dimensions: [("limit", limit.rawValue)]).increment()
    }

    /// Counts a terminal status.
    func recordOutcome(_ status: CallStatus) {
        Counter(label: "dialer_call_outcomes_total", dimensions: [("status", status.rawValue)]).increment()
    }
}
