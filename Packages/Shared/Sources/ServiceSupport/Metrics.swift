import Metrics
import Prometheus

/// Process-wide metrics set-up: swift-metrics backed by a Prometheus registry, exposed on `/metrics`.
public enum MetricsSetup {
    /// Bootstraps swift-metrics once and returns the registry to render on `/metrics`.
    public static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }

    /// The Prometheus text exposition of `registry`.
    public static func render(_ registry: PrometheusCollectorRegistry) -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
