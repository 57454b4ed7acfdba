import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import Synchronization
import TestSupport

/// The faults the suite injects into a running `devstack up`: signals to its child processes, the embedded broker's
/// control endpoint, the ARI simulator's admin endpoint.
struct StackControl: Sendable {
    let stack: DevStackProcess
    let client: HTTPClient
    /// The suite's own PostgreSQL server (stopped and started by one fault).
    let postgres: SuitePostgres?
    /// When each SIGKILL was sent, and to whom.
    let kills = KillLog()

    /// The SIGKILLs the suite sent: a killed worker's calls are judged against the instant it died.
    final class KillLog: Sendable {
        private let entries = Mutex<[(name: String, at: Date)]>([])

        func record(_ name: String, at instant: Date) {
            entries.withLock { $0.append((name, instant)) }
        }

        /// The instants the children whose names match were killed at.
        func instants(of names: (String) -> Bool) -> [Date] {
            entries.withLock { $0.filter { names($0.name) }.map(\.at) }
        }
    }

    /// A child of the stack, found by its executable and, for workers, `WORKER_ID`.
    struct Child: Sendable, Equatable {
        var pid: Int32
        var name: String
    }

    /// The running children: `api-gateway`, and `worker-1`, `worker-2`… by their `WORKER_ID`.
    func children() -> [Child] {
        stack.childProcessIDs.compactMap { pid in
            guard let command = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")) else {
                return nil
            }
            let executable = command.split(separator: 0).first.map { String(decoding: $0, as: UTF8.self) } ?? ""
            if executable.hasSuffix("/api-gateway") { return Child(pid: pid, name: "api-gateway") }
            guard executable.hasSuffix("/dialer-worker"),
                let environment = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))
            else { return nil }
            let workerID = environment.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
                .first { $0.hasPrefix("WORKER_ID=") }.map { String($0.dropFirst("WORKER_ID=".count)) }
            return workerID.map { Child(pid: pid, name: $0) }
        }
    }

    /// The process id of a child by name.
    func pid(of name: String) -> Int32? {
        children().first { $0.name == name }?.pid
    }

    /// Sends `signal` to the named child; returns its pid.
    @discardableResult
    func signal(_ name: String, _ signal: Int32) throws -> Int32 {
        guard let pid = pid(of: name) else { throw TestEnvironmentError("no running \(name)") }
        let sent = Date()
        guard kill(pid, signal) == 0 else { throw TestEnvironmentError("kill(\(pid), \(signal)) failed: \(errno)") }
        if signal == SIGKILL { kills.record(name, at: sent) }
        return pid
    }

    /// Waits until the named child runs under a pid other than `previous` (the supervisor restarted it).
    func waitForRestart(of name: String, previous: Int32, timeout: Duration) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let pid = pid(of: name), pid != previous { return pid }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestEnvironmentError("\(name) was not restarted within \(timeout)")
    }

    /// Waits until `url` answers 200.
    func waitForOK(_ url: String, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let status = try? await self.status(of: "GET", url), status == 200 { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw TestEnvironmentError("\(url) did not answer 200 within \(timeout)")
    }

    // MARK: - Kafka and the simulator

    /// `POST /brokers/down` or `/brokers/up` on the embedded cluster's control endpoint.
    func setBrokers(up: Bool) async throws {
        let status = try await self.status(of: "POST", "\(stack.kafkaControlURL)/brokers/\(up ? "up" : "down")")
        guard status == 204 else { throw TestEnvironmentError("Kafka control answered \(status)") }
    }

    /// The simulator's admin base URL (`http://host:port/__sim`).
    var simulatorAdmin: String {
        let base = stack.ariURL.hasSuffix("/ari") ? String(stack.ariURL.dropLast(4)) : stack.ariURL
        return base + "/__sim"
    }

    /// `POST /__sim/<action>`.
    func simulator(_ action: String) async throws {
        let status = try await self.status(of: "POST", "\(simulatorAdmin)/\(action)")
        guard status == 204 else { throw TestEnvironmentError("simulator \(action) answered \(status)") }
    }

    /// One originated channel id as the simulator counted it.
    struct Originate: Sendable {
        /// Originate requests naming the id, whatever their answer.
        var requests: Int
        /// Those that created a channel (a dialed person).
        var accepted: Int
        /// The endpoints the requests asked for, when the simulator reports them.
        var endpoints: [String]
    }

    /// Every channel id the simulator was asked to originate (`GET /__sim/originate-log`).
    func originates() async throws -> [String: Originate] {
        var request = HTTPClientRequest(url: "\(simulatorAdmin)/originate-log")
        request.method = .GET
        let response = try await client.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 256 << 20)
        guard response.status == .ok,
            let object = try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
            let entries = object["originates"] as? [[String: Any]]
        else { throw TestEnvironmentError("simulator originate-log answered \(response.status)") }
        var result: [String: Originate] = [:]
        for entry in entries {
            guard let id = entry["channel_id"] as? String else { continue }
            result[id] = Originate(
                requests: entry["originates"] as? Int ?? 0, accepted: entry["accepted"] as? Int ?? 0,
                endpoints: entry["endpoints"] as? [String] ?? [])
        }
        return result
    }

    private func status(of method: String, _ url: String) async throws -> Int {
        var request = HTTPClientRequest(url: url)
        request.method = .RAW(value: method)
        let response = try await client.execute(request, timeout: .seconds(10))
        _ = try await response.body.collect(upTo: 1 << 20)
        return Int(response.status.code)
    }
}
