import AsyncHTTPClient
import CallStore
import DevStack
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import PostgresNIO

/// The ARI simulator's admin endpoints (`/__sim/`).
struct SimulatorAdmin {
    /// e.g. `http://127.0.0.1:8088` (the `/ari` suffix of an ARI URL is removed).
    let baseURL: String

    init(ariURL: String) {
        var url = ariURL
        while url.hasSuffix("/") { url.removeLast() }
        if url.hasSuffix("/ari") { url.removeLast(4) }
        baseURL = url
    }

    func resetCounters() async throws {
        try await ControlHTTP.post("\(baseURL)/__sim/reset-counters")
    }

    func stats() async throws -> [String: Any] {
        try await ControlHTTP.json("\(baseURL)/__sim/stats") as? [String: Any] ?? [:]
    }

    /// Every originated channel id since the last reset: how often it was originated and when it first arrived.
    func originateLog() async throws -> [String: (originates: Int, firstAt: Double?)] {
        guard let object = try await ControlHTTP.json("\(baseURL)/__sim/originate-log") as? [String: Any],
            let entries = object["originates"] as? [[String: Any]]
        else { throw BenchError("the simulator has no /__sim/originate-log (an older build?)") }
        var log: [String: (Int, Double?)] = [:]
        for entry in entries {
            guard let id = entry["channel_id"] as? String else { continue }
            log[id] = ((entry["originates"] as? Int) ?? 0, entry["first_at"] as? Double)
        }
        return log
    }
}

/// Runs `body` with a running PostgreSQL client pool.
func withPostgres<Value: Sendable>(
    url: String, connections: Int = 4, logger: Logger,
    _ body: @Sendable (PostgresClient) async throws -> Value
) async throws -> Value {
    let client = PostgresClient(
        configuration: try DatabaseConfiguration.client(
            url: url, maximumConnections: connections, applicationName: "loadgen"),
        backgroundLogger: logger)
    return try await withThrowingTaskGroup(of: Value?.self) { group in
        group.addTask {
            await client.run()
            return nil
        }
        defer { group.cancelAll() }
        return try await body(client)
    }
}
