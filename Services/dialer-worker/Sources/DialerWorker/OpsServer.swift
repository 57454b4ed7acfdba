import CallStore
import Foundation
import Hummingbird
import Logging
import OperationsHTTP

/// The worker's operations endpoints: `GET /health` (the process runs), `GET /ready` (ARI connected, Kafka usable,
/// PostgreSQL answering: what an orchestrator should wait for before counting the worker in) and `GET /metrics`
/// (Prometheus text).
enum OpsServer {
    /// The JSON body of `/ready`.
    struct ReadinessReport: Encodable, Sendable {
        var status: String
        var ari: Bool
        var kafka: Bool
        var database: Bool
        var ownerLease: Bool
        var paused: Bool
        var pauseReason: String?
        var liveCalls: Int

        enum CodingKeys: String, CodingKey {
            case status, ari, kafka, database, paused
            case ownerLease = "owner_lease"
            case pauseReason = "pause_reason"
            case liveCalls = "live_calls"
        }
    }

    static func router(
        context: WorkerContext,
        renderMetrics: @escaping @Sendable () -> String
    ) -> Router<BasicRequestContext> {
        OperationsEndpoints.router(
            ready: {
                let report = await readiness(context)
                let body = (try? JSONEncoder().encode(report)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
                return OperationsEndpoints.Readiness(ready: report.status == "ready", body: body)
            }, renderMetrics: renderMetrics)
    }

    static func readiness(_ context: WorkerContext) async -> ReadinessReport {
        let database = await pingDatabase(context.store, timeout: .seconds(2))
        // Connected is not enough: a booting Asterisk accepts the WebSocket and refuses every request.
        let ari = context.gate.nodeUsable
        let kafka = context.readiness.kafkaReady
        let lease = context.gate.leaseHeld
        let blocked = context.gate.blockedBy
        return ReadinessReport(
            status: ari && kafka && database && lease ? "ready" : "not_ready",
            ari: ari,
            kafka: kafka,
            database: database,
            ownerLease: lease,
            paused: blocked != nil,
            pauseReason: blocked?.rawValue,
            liveCalls: context.tracker.count
        )
    }

    /// A `SELECT 1` that gives up after `timeout` (a stopped server can take the connect timeout to fail).
    private static func pingDatabase(_ store: any CallRepository, timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { (try? await store.ping()) != nil }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }
}
