import Foundation
import Metrics
import Prometheus
import Synchronization

/// The gateway's own metrics, created on an explicit factory so that each application (and each test) renders
/// its own registry on `/metrics`.
///
/// Label names are fixed per metric name (Prometheus requires it): requests carry `route`, `method`, `status`;
/// latencies carry `route`, `method`.
public final class GatewayMetrics: Sendable {
    /// The registry rendered on `/metrics`.
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let requestCounters: Mutex<[String: Metrics.Counter]>
    private let requestTimers: Mutex<[String: Metrics.Timer]>
    /// Calls accepted (202 after Kafka's acknowledgement), by how: `new` or `replay`.
    let callsAccepted: Metrics.Counter
    /// Idempotent replays answered from the original call.
    let callsReplayed: Metrics.Counter
    /// Commands refused because Kafka did not acknowledge them in time.
    let publishFailures: Metrics.Counter
    /// Time from publish to Kafka acknowledgement, by topic kind (`originate`, `control`).
    let publishLatencyOriginate: Metrics.Timer
    /// Time from publish to Kafka acknowledgement of control commands.
    let publishLatencyControl: Metrics.Timer
    /// Live event-stream clients connected now.
    let streamClients: Metrics.Meter
    /// Event-stream clients disconnected because they fell too far behind.
    let streamClientsDropped: Metrics.Counter
    /// Status events read from Kafka and fanned out.
    let statusEventsReceived: Metrics.Counter
    /// Token requests refused by the rate limit.
    let tokenRequestsLimited: Metrics.Counter

    /// Creates the metrics on `registry` (the process-wide one in production, a fresh one in tests).
    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        let buckets: [Duration] = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
            .milliseconds(2500), .seconds(5), .seconds(10),
        ]
        factory.defaultDurationHistogramBuckets = buckets
        self.factory = factory
        requestCounters = Mutex([:])
        requestTimers = Mutex([:])
        callsAccepted = Metrics.Counter(label: "gateway_calls_accepted_total", dimensions: [], factory: factory)
        callsReplayed = Metrics.Counter(label: "gateway_calls_replayed_total", dimensions: [], factory: factory)
        publishFailures = Metrics.Counter(
            label: "gateway_kafka_publish_failures_total", dimensions: [], factory: factory)
        publishLatencyOriginate = Metrics.Timer(
            label: "gateway_kafka_publish_duration_seconds", dimensions: [("command", "originate")], factory: factory)
        publishLatencyControl = Metrics.Timer(
            label: "gateway_kafka_publish_duration_seconds", dimensions: [("command", "control")], factory: factory)
        streamClients = Metrics.Meter(label: "gateway_event_stream_clients", dimensions: [], factory: factory)
        streamClientsDropped = Metrics.Counter(
            label: "gateway_event_stream_clients_dropped_total", dimensions: [], factory: factory)
        statusEventsReceived = Metrics.Counter(
            label: "gateway_status_events_received_total", dimensions: [], factory: factory)
        tokenRequestsLimited = Metrics.Counter(
            label: "gateway_token_requests_rate_limited_total", dimensions: [], factory: factory)
    }

    /// Counts one finished request and records its latency.
    func recordRequest(route: String, method: String, status: Int, nanoseconds: Int64) {
        let counterKey = "\(route) \(method) \(status)"
        let counter = requestCounters.withLock { counters in
            if let existing = counters[counterKey] { return existing }
            let created = Metrics.Counter(
                label: "http_requests_total",
                dimensions: [("route", route), ("method", method), ("status", String(status))], factory: factory)
            counters[counterKey] = created
            return created
        }
        counter.increment()
        let timerKey = "\(route) \(method)"
        let timer = requestTimers.withLock { timers in
            if let existing = timers[timerKey] { return existing }
            let created = Metrics.Timer(
                label: "http_request_duration_seconds", dimensions: [("route", route), ("method", method)],
                factory: factory)
            timers[timerKey] = created
            return created
        }
        timer.recordNanoseconds(nanoseconds)
    }

    /// The Prometheus text exposition of the registry.
    public func render() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
