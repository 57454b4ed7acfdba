import Logging
import OTel
import ServiceLifecycle
import Synchronization
import Tracing

/// Process-wide distributed tracing set-up, done once in `main` after ``LoggingSetup``: OpenTelemetry spans exported
/// over OTLP/HTTP when `OTEL_TRACES_EXPORTER=otlp`, nothing at all otherwise.
///
/// Off is the default and costs nothing on the hot paths: no tracer is bootstrapped, the HTTP middleware is not
/// installed and ``TraceSpans`` runs its work directly. The rest of the exporter's settings are OpenTelemetry's own
/// variables, read by swift-otel: `OTEL_EXPORTER_OTLP_ENDPOINT` (default `http://localhost:4318`),
/// `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the default, or `http/json`), `OTEL_SERVICE_NAME` (default: the
/// process's name), `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG`, `OTEL_BSP_SCHEDULE_DELAY` and the rest of the
/// batch processor's.
public enum TracingSetup {
    private static let enabled = Atomic<Bool>(false)

    /// Whether this process bootstrapped tracing.
    public static var isEnabled: Bool { enabled.load(ordering: .relaxed) }

    /// Bootstraps the tracer when `OTEL_TRACES_EXPORTER` is `otlp`; returns the exporter's service, to run first in
    /// the process's service group (it sends the batches and flushes them on shutdown), or nothing when tracing is
    /// off. `resourceAttributes` describe the process (`worker.id`, `node.id`): said once for all its spans, not on
    /// each. Throws ``ConfigurationError`` for a value swift-otel refuses (a gRPC protocol, a bad endpoint).
    public static func bootstrap(
        service: String, resourceAttributes: [String: String] = [:],
        environment: EnvironmentReader = EnvironmentReader()
    ) throws -> [any Service] {
        let exporter = try environment.choice("OTEL_TRACES_EXPORTER", default: "none", allowed: ["none", "otlp"])
        guard exporter == "otlp" else { return [] }
        var configuration = OTel.Configuration.default
        configuration.serviceName = service
        configuration.resourceAttributes = resourceAttributes
        configuration.logs.enabled = false
        // Metrics stay on Prometheus (`/metrics`), which the dashboards and alerts read.
        configuration.metrics.enabled = false
        configuration.traces.exporter = .otlp
        configuration.traces.otlpExporter.protocol = .httpProtobuf
        // The exporter's own troubles (a collector down) go to the process's log, in its format.
        configuration.diagnosticLogger = .custom(Logger(label: "\(service).tracing"))
        configuration.diagnosticLogLevel = .warning
        let backend: (factory: any Tracer, service: any Service)
        do {
            backend = try OTel.makeTracingBackend(configuration: configuration)
        } catch {
            throw ConfigurationError(variable: "OTEL_TRACES_EXPORTER", message: "tracing cannot start: \(error)")
        }
        InstrumentationSystem.bootstrap(backend.factory)
        enabled.store(true, ordering: .relaxed)
        return [backend.service]
    }
}

/// Spans around the work a message or request causes, carried between processes by W3C `traceparent` headers
/// (Kafka record headers here; HTTP headers through Hummingbird's and AsyncHTTPClient's own tracing).
///
/// Every function takes and gives `traceparent` strings, so callers need no tracing types, and with tracing off
/// (``TracingSetup/isEnabled``) each one runs its body at once and hands the incoming header on unchanged.
public enum TraceSpans {
    /// Runs `body` in a span. Its parent is the task's current span when there is one (the HTTP request's, the
    /// message's being processed), else the `traceparent` given. `body` receives the `traceparent` to send on with
    /// what it produces: the new span's; with tracing off, `parent` unchanged.
    public static func withSpan<Result>(
        _ name: String,
        ofKind kind: SpanKind,
        parent: String?,
        attributes: @autoclosure () -> SpanAttributes = [:],
        isolation: isolated (any Actor)? = #isolation,
        _ body: (_ traceParent: String?) async throws -> Result
    ) async rethrows -> Result {
        guard TracingSetup.isEnabled else { return try await body(parent) }
        let context = ServiceContext.current ?? self.context(traceParent: parent)
        return try await Tracing.withSpan(name, context: context, ofKind: kind, isolation: isolation) { span in
            span.attributes.merge(attributes())
            return try await body(traceParent(of: span.context) ?? parent)
        }
    }

    /// Runs `body` as part of the trace `traceParent` names, without a span of its own: what it does (ARI requests,
    /// HTTP requests, messages) is recorded under that trace. With tracing off, or no header, it just runs `body`.
    public static func withParent<Result>(
        _ traceParent: String?,
        isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> Result
    ) async rethrows -> Result {
        guard TracingSetup.isEnabled, traceParent != nil else { return try await body() }
        return try await ServiceContext.$current.withValue(
            context(traceParent: traceParent), operation: { try await body() }, isolation: isolation)
    }

    /// The context a `traceparent` header continues; a new root when it is missing or malformed.
    static func context(traceParent: String?) -> ServiceContext {
        var context = ServiceContext.topLevel
        guard let traceParent else { return context }
        InstrumentationSystem.instrument.extract(
            ["traceparent": traceParent], into: &context, using: HeaderDictionaryPropagation())
        return context
    }

    /// The `traceparent` header of a span context, or `nil` when the tracer wrote none.
    static func traceParent(of context: ServiceContext) -> String? {
        var headers: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &headers, using: HeaderDictionaryPropagation())
        return headers["traceparent"]
    }
}

/// Reads and writes propagation headers in a plain dictionary: Kafka record headers are copied into one.
private struct HeaderDictionaryPropagation: Extractor, Injector {
    func extract(key: String, from carrier: [String: String]) -> String? {
        carrier[key]
    }

    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
        carrier[key] = value
    }
}
