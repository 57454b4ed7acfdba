import AsyncHTTPClient
import CallStore
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import PostgresNIO

/// Control-plane HTTP (simulator admin, readiness) with the shared AsyncHTTPClient: a handful of requests per
/// scenario, never on a measured path (the measured load has its own NIO clients).
enum ControlHTTP {
    /// Runs a request; returns the status code and the body.
    static func request(
        _ method: HTTPMethod, _ url: String, timeout: Int64 = 30
    ) async throws -> (status: Int, body: Data) {
        var request = HTTPClientRequest(url: url)
        request.method = method
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(timeout))
        } catch {
            throw BenchError("\(method.rawValue) \(url) failed: \(error)")
        }
        let body = try await response.body.collect(upTo: 64 << 20)
        return (Int(response.status.code), Data(buffer: body))
    }

    /// A GET whose answer must be 2xx JSON.
    static func json(_ url: String) async throws -> Any {
        let (status, body) = try await request(.GET, url)
        guard (200..<300).contains(status) else {
            throw BenchError("GET \(url): \(status) \(String(decoding: body, as: UTF8.self))")
        }
        return try JSONSerialization.jsonObject(with: body)
    }

    /// A POST that must succeed (2xx).
    static func post(_ url: String) async throws {
        let (status, body) = try await request(.POST, url)
        guard (200..<300).contains(status) else {
            throw BenchError("POST \(url): \(status) \(String(decoding: body, as: UTF8.self))")
        }
    }
}

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
