import CallStore
import Foundation
import Logging
import PostgresNIO

/// Control-plane HTTP (simulator admin, readiness) through the system's curl, which `make` installs: a handful of
/// requests per scenario, never on a measured path.
enum Curl {
    /// Runs a request; returns the status code and the body.
    static func request(_ method: String, _ url: String, timeout: Int = 30) throws -> (status: Int, body: Data) {
        let marker = "\n__status__:"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "curl", "-s", "-X", method, "--max-time", "\(timeout)", "-w", "\(marker)%{http_code}", url,
        ]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard let range = data.range(of: Data(marker.utf8), options: .backwards) else {
            throw BenchError("curl \(method) \(url) failed (exit \(process.terminationStatus))")
        }
        let status = Int(String(decoding: data[range.upperBound...], as: UTF8.self)) ?? 0
        return (status, Data(data[..<range.lowerBound]))
    }

    /// A GET whose answer must be 2xx JSON.
    static func json(_ url: String) throws -> Any {
        let (status, body) = try request("GET", url)
        guard (200..<300).contains(status) else {
            throw BenchError("GET \(url): \(status) \(String(decoding: body, as: UTF8.self))")
        }
        return try JSONSerialization.jsonObject(with: body)
    }

    /// A POST that must succeed (2xx).
    static func post(_ url: String) throws {
        let (status, body) = try request("POST", url)
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

    func resetCounters() throws {
        try Curl.post("\(baseURL)/__sim/reset-counters")
    }

    func stats() throws -> [String: Any] {
        try Curl.json("\(baseURL)/__sim/stats") as? [String: Any] ?? [:]
    }

    /// Every originated channel id since the last reset: how often it was originated and when it first arrived.
    func originateLog() throws -> [String: (originates: Int, firstAt: Double?)] {
        guard let object = try Curl.json("\(baseURL)/__sim/originate-log") as? [String: Any],
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
