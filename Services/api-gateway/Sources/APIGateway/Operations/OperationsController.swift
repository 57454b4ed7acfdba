import CallDomain
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// `GET /health`, `GET /ready`, `GET /metrics`.
struct OperationsController: Sendable {
    typealias Context = GatewayRequestContext

    let repository: any CallRepository
    let kafka: KafkaHealth
    let metrics: GatewayMetrics
    let instanceID: String

    /// The version reported by `/health`.
    static let version = "1.0.0"

    func addRoutes(to router: Router<Context>) {
        router.get("health", use: health)
        router.get("ready", use: ready)
        router.get("metrics", use: renderMetrics)
    }

    struct Health: Encodable {
        var status: String
        var version: String
        var instance: String
    }

    /// Alive: the process answers. Says nothing about dependencies (that is `/ready`).
    @Sendable func health(_ request: Request, context: Context) async throws -> Response {
        try JSONResponse.make(Health(status: "ok", version: Self.version, instance: instanceID))
    }

    struct Readiness: Encodable {
        var status: String
        var checks: [String: String]
    }

    /// Ready: PostgreSQL answers a query and Kafka answers (or recently acknowledged a publish); else 503.
    @Sendable func ready(_ request: Request, context: Context) async throws -> Response {
        async let kafkaProblem = kafka.check()
        let repository = self.repository
        let postgres = await Deadline.run(timeout: .seconds(3)) { try await repository.ping() }
        var checks: [String: String] = [:]
        switch postgres {
        case .finished(.success): checks["postgres"] = "ok"
        case .finished(.failure(let error)): checks["postgres"] = "unreachable: \(error)"
        case .timedOut: checks["postgres"] = "no answer within 3 s"
        }
        checks["kafka"] = await kafkaProblem ?? "ok"
        if checks.values.allSatisfy({ $0 == "ok" }) {
            return try JSONResponse.make(Readiness(status: "ready", checks: checks))
        }
        let failing = checks.filter { $0.value != "ok" }.sorted { $0.key < $1.key }
        context.logger.warning("not ready", metadata: ["ready.failing": .string("\(failing)")])
        throw Problem.retryLater(
            .notReady, detail: failing.map { "\($0.key): \($0.value)" }.joined(separator: "; "), after: 5)
    }

    /// Prometheus text exposition.
    @Sendable func renderMetrics(_ request: Request, context: Context) async throws -> Response {
        Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: metrics.render())))
    }
}

/// `POST /bench/baseline/calls` (only with `BENCH_BASELINE_ROUTE=true`): the 202 body of `POST /api/v1/calls`
/// without authentication, validation or Kafka, so a benchmark can subtract the HTTP stack's own cost.
struct BenchBaselineController: Sendable {
    typealias Context = GatewayRequestContext

    let maxBodyBytes: Int

    func addRoutes(to router: Router<Context>) {
        router.post("bench/baseline/calls", use: create)
    }

    @Sendable func create(_ request: Request, context: Context) async throws -> Response {
        _ = try await request.collectBody(limit: maxBodyBytes)
        let now = Date()
        let command = OriginateCommand(
            callID: .generate(now: now), requestedAt: now, expiresAt: now.addingTimeInterval(300),
            to: try DialTarget("15550100"), requestedBy: "bench", requestID: context.requestID)
        let resource = CallResource(accepted: command)
        return try JSONResponse.make(resource, status: .accepted, headers: [.location: resource.links.this])
    }
}
