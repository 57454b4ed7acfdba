import Hummingbird
import NIOCore
import Synchronization

/// The operations endpoints every service process serves on its own port: `GET /health` (the process runs),
/// `GET /ready` (what an orchestrator waits for before counting the process in) and `GET /metrics` (Prometheus
/// text).
public enum OperationsEndpoints {
    /// What `/ready` answers: whether the process is ready (200, else 503) and the JSON body saying what was checked.
    public struct Readiness: Sendable {
        /// Whether every check passed.
        public var ready: Bool
        /// The JSON body.
        public var body: String

        /// Creates an answer.
        public init(ready: Bool, body: String) {
            self.ready = ready
            self.body = body
        }

        /// The answer of a process that needs PostgreSQL and a running Kafka consumer:
        /// `{"status": "ready"|"not_ready", "database": …, "kafka": …}`.
        public static func databaseAndConsumer(database: Bool, kafka: Bool) -> Readiness {
            let ready = database && kafka
            return Readiness(
                ready: ready,
                body: #"{"status":"\#(ready ? "ready" : "not_ready")","database":\#(database),"kafka":\#(kafka)}"#)
        }
    }

    /// The router of the three endpoints.
    ///
    /// - Parameters:
    ///   - ready: runs the readiness checks (bounded by the caller).
    ///   - renderMetrics: the Prometheus text of the process's metrics.
    public static func router(
        ready: @escaping @Sendable () async -> Readiness, renderMetrics: @escaping @Sendable () -> String
    ) -> Router<BasicRequestContext> {
        let router = Router()
        router.get("health") { _, _ -> Response in
            json(.ok, #"{"status":"ok"}"#)
        }
        router.get("ready") { _, _ -> Response in
            let readiness = await ready()
            return json(readiness.ready ? .ok : .serviceUnavailable, readiness.body)
        }
        router.get("metrics") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: renderMetrics())))
        }
        return router
    }

    private static func json(_ status: HTTPResponse.Status, _ body: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

/// Whether a service's Kafka consumer runs: one of the things its `/ready` checks.
public final class ConsumerReadiness: Sendable {
    private let running = Mutex(false)

    /// Creates the flag (not running).
    public init() {}

    /// The consumer started or stopped.
    public func setConsumerRunning(_ running: Bool) { self.running.withLock { $0 = running } }

    /// Whether it runs.
    public var kafkaReady: Bool { running.withLock { $0 } }
}
