import ArgumentParser
import Foundation
import Logging
import PostgresNIO

/// `loadgen e2e`: the whole pipeline (gateway, Kafka, workers, ARI simulator, PostgreSQL) at increasing offered
/// rates. Per rate: calls completed per second, gateway 202 → originate at the simulator, ARI event → history row,
/// and the calls lost, dialed twice and stuck.
struct EndToEndBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "e2e",
        abstract: "End to end at increasing offered rates against a running devstack."
    )

    @Option(help: "The gateway's base URL.")
    var url: String

    @Option(help: "A bearer token of a user with the operator role.")
    var token: String

    @Option(help: "The ARI simulator's URL (its /__sim/ admin endpoints are used).")
    var ariUrl: String

    @Option(help: "The stack's PostgreSQL.")
    var databaseUrl: String

    @Option(help: "Offered rates, calls per second.")
    var rates: String = "100,250,500,1000"

    @Option(help: "Seconds each rate is sustained.")
    var duration: Double = 60

    @Option(help: "Seconds to wait for the last calls to end after the load stops.")
    var drainTimeout: Double = 60

    @Option(help: "Seconds to wait, at most, until a probe of 20 calls goes through the whole pipeline promptly.")
    var warmupTimeout: Double = 180

    @Option(help: "The number every call dials (default: answers at once, hangs up after 0-100 ms).")
    var to: String = "+155501140010"

    @Option(name: .customLong("process"), help: "A process to meter, as name=pid (repeatable).")
    var processes: [String] = []

    @Option(name: .customLong("process-tree"), help: "A process and its descendants to meter, as name=pid.")
    var processTrees: [String] = []

    @Option(help: "Write the figures as JSON to this file.")
    var out: String

    /// One offered rate.
    struct RateResult: Codable, Sendable {
        var offeredRate: Double
        var durationSeconds: Double
        var http: OpenLoopSummary
        var accepted: Int
        /// Calls whose terminal status reached PostgreSQL while the load ran, per second of load.
        var completedPerSecond: Double
        /// Terminal calls, all statuses, after the drain.
        var terminal: Int
        var statusCounts: [String: Int]
        /// From the last 202 to the last terminal row.
        var drainSeconds: Double?
        var acceptToOriginateMs: LatencySummary
        var eventToRowLagMs: LatencySummary
        /// Accepted (202) but absent from the history after the drain; `nil` when the drain timeout passed while calls
        /// were still being recorded (absent then may mean not yet recorded).
        var lost: Int?
        /// Originated more than once (simulator count per channel id).
        var dialedTwice: Int
        /// In the history but not terminal after the drain, when the drain ended because nothing moved any more.
        var stuck: Int
        /// Not terminal yet (or not recorded yet) when the drain timeout passed while calls were still completing: a
        /// backlog, not stuck.
        var backlog: Int
        /// Accepted but never originated (expired, refused before dialing, or stuck before the claim).
        var neverDialed: Int
        /// Originates for channel ids this run never got a 202 for.
        var unknownOriginates: Int
        var cores: [String: Double]
        var drained: Bool
        /// Why the wait for the last calls ended: `all terminal`, `timeout while progressing`, `no progress`.
        var drainEnd: String
    }

    /// The results file.
    struct Result: Codable, Sendable {
        /// Seconds until the pipeline carried a probe promptly (consumer groups settled), before measuring.
        var warmupSeconds: Double
        var rates: [RateResult]
        var skippedRates: [Double]
        var to: String
    }

    func run() async throws {
        let offered = try parseList(rates, as: Double.self)
        let simulator = SimulatorAdmin(ariURL: ariUrl)
        let metered =
            try processes.map { try CPUMeter.Metered($0) } + processTrees.map { try CPUMeter.Metered($0, tree: true) }
        var logger = Logger(label: "loadgen.e2e")
        logger.logLevel = .error
        let warmup = try await warmUp(logger: logger)
        var results: [RateResult] = []
        var skipped: [Double] = []
        for (position, rate) in offered.enumerated() {
            if let last = results.last, !last.drained {
                skipped = Array(offered[position...])
                progress("e2e: the pipeline did not drain at \(Int(last.offeredRate))/s; skipping \(skipped)")
                break
            }
            try await simulator.resetCounters()
            progress("e2e: \(Int(rate)) calls/s for \(Int(duration)) s")
            let result = try await measure(rate: rate, simulator: simulator, metered: metered, logger: logger)
            progress(
                "e2e: \(Int(rate))/s: "
                    + String(
                        format: "%.0f completed/s, accept→originate p99 %.1f ms, lag p99 %.1f ms, ",
                        result.completedPerSecond, result.acceptToOriginateMs.p99 ?? .nan,
                        result.eventToRowLagMs.p99 ?? .nan)
                    + "lost \(result.lost.map(String.init) ?? "n/a"), twice \(result.dialedTwice), stuck \(result.stuck), "
                    + "backlog \(result.backlog)")
            results.append(result)
            try await Task.sleep(for: .seconds(2))
        }
        try writeJSON(Result(warmupSeconds: warmup, rates: results, skippedRates: skipped, to: to), to: out)
    }

    /// Sends probes of 20 calls until one goes through promptly (every call terminal in the history within 5 s of
    /// its last 202): the workers' consumer groups may still be settling when the gateway reports ready.
    private func warmUp(logger: Logger) async throws -> Double {
        let start = ContinuousClock.now
        let deadline = start + .milliseconds(Int64(warmupTimeout * 1000))
        var attempt = 0
        while ContinuousClock.now < deadline {
            attempt += 1
            var plan = try OpenLoopPlan(
                url: url + "/api/v1/calls",
                headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")],
                body: Array(#"{"to":"\#(to)"}"#.utf8), rate: 20, duration: .seconds(1))
            plan.recordLocations = true
            let probe = try await OpenLoopGenerator.run(plan)
            let ids = probe.locations.compactMap { entry in
                entry.location.split(separator: "/").last.flatMap { UUID(uuidString: String($0)) }
            }
            let end = try await withPostgres(url: databaseUrl, logger: logger) { client in
                try await Self.waitForDrain(client: client, ids: ids, timeout: 5, logger: logger)
            }
            if end == .allTerminal, ids.count == 20 {
                let seconds = (ContinuousClock.now - start).seconds
                progress("e2e: the pipeline carries calls (warm-up: \(attempt) probes, \(Int(seconds)) s)")
                return seconds
            }
            progress("e2e: warm-up probe \(attempt) not through yet (consumer groups settling?)")
            try await Task.sleep(for: .seconds(2))
        }
        throw BenchError("the pipeline did not carry a probe of 20 calls within \(Int(warmupTimeout)) s")
    }

    private func measure(
        rate: Double, simulator: SimulatorAdmin, metered: [CPUMeter.Metered], logger: Logger
    ) async throws -> RateResult {
        var plan = try OpenLoopPlan(
            url: url + "/api/v1/calls",
            headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")],
            body: Array(#"{"to":"\#(to)"}"#.utf8), rate: rate, duration: .milliseconds(Int64(duration * 1000)))
        plan.recordLocations = true
        var meter = CPUMeter(processes: metered)
        meter.start()
        let cpuBefore = ProcessProbe.ownCPUSeconds()
        let load = try await OpenLoopGenerator.run(plan)
        let cores = meter.stop()
        let http = OpenLoopSummary(result: load, rate: rate, cpuSeconds: ProcessProbe.ownCPUSeconds() - cpuBefore)

        var acceptedAt: [UUID: Double] = [:]
        for entry in load.locations {
            guard let text = entry.location.split(separator: "/").last, let id = UUID(uuidString: String(text)) else {
                continue
            }
            acceptedAt[id] = entry.at
        }
        let ids = Array(acceptedAt.keys)
        let firstAccept = acceptedAt.values.min() ?? wallClock()
        let lastAccept = acceptedAt.values.max() ?? wallClock()

        let drainTimeout = self.drainTimeout
        let (drainEnd, rows) = try await withPostgres(url: databaseUrl, logger: logger) { client in
            let end = try await Self.waitForDrain(client: client, ids: ids, timeout: drainTimeout, logger: logger)
            return (end, try await Self.history(client: client, ids: ids, logger: logger))
        }
        let originates = try await simulator.originateLog()

        var statusCounts: [String: Int] = [:]
        var terminal = 0
        var pending = 0
        var completedInWindow = 0
        var lastTerminal: Double?
        for row in rows.calls.values {
            statusCounts[row.status, default: 0] += 1
            if Self.terminalStatuses.contains(row.status) {
                terminal += 1
                if let at = row.terminalRecordedAt {
                    lastTerminal = max(lastTerminal ?? at, at)
                    if at >= firstAccept, at <= lastAccept { completedInWindow += 1 }
                }
            } else {
                pending += 1
            }
        }
        var acceptToOriginate: [Double] = []
        var neverDialed = 0
        var dialedTwice = 0
        for (id, accepted) in acceptedAt {
            guard let entry = originates[id.uuidString.lowercased()] else {
                neverDialed += 1
                continue
            }
            if entry.originates > 1 { dialedTwice += 1 }
            if let first = entry.firstAt { acceptToOriginate.append((first - accepted) * 1000) }
        }
        let knownIDs = Set(acceptedAt.keys.map { $0.uuidString.lowercased() })
        let unknown = originates.keys.filter { !knownIDs.contains($0) }.count
        let window = lastAccept - firstAccept
        return RateResult(
            offeredRate: rate, durationSeconds: duration, http: http, accepted: ids.count,
            completedPerSecond: window > 0 ? Double(completedInWindow) / window : 0, terminal: terminal,
            statusCounts: statusCounts, drainSeconds: lastTerminal.map { $0 - lastAccept },
            acceptToOriginateMs: LatencySummary(milliseconds: acceptToOriginate),
            eventToRowLagMs: LatencySummary(milliseconds: rows.lags),
            lost: drainEnd == .progressing ? nil : ids.count - rows.calls.count,
            dialedTwice: dialedTwice, stuck: drainEnd == .progressing ? 0 : pending,
            backlog: drainEnd == .progressing ? pending + ids.count - rows.calls.count : 0, neverDialed: neverDialed,
            unknownOriginates: unknown,
            cores: cores, drained: terminal == ids.count, drainEnd: drainEnd.rawValue)
    }

    static let terminalStatuses: Set<String> = [
        "completed", "busy", "no_answer", "rejected", "failed", "canceled", "expired",
    ]

    /// How the wait for the last calls ended.
    enum DrainEnd: String, Sendable {
        case allTerminal = "all terminal"
        case progressing = "timeout while progressing"
        case stalled = "no progress for 20 s"
    }

    /// Waits until every call is terminal in the history, progress stops for a while, or the timeout passes.
    static func waitForDrain(
        client: PostgresClient, ids: [UUID], timeout: Double, logger: Logger
    ) async throws -> DrainEnd {
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        var lastCount = -1
        var lastProgress = ContinuousClock.now
        while ContinuousClock.now < deadline {
            let rows = try await client.query(
                """
                SELECT count(*) FROM calls WHERE id = ANY(\(ids))
                AND status IN ('completed', 'busy', 'no_answer', 'rejected', 'failed', 'canceled', 'expired')
                """,
                logger: logger)
            var count = 0
            for try await value in rows.decode(Int.self) { count = value }
            if count >= ids.count { return .allTerminal }
            if count != lastCount {
                lastCount = count
                lastProgress = .now
            } else if ContinuousClock.now - lastProgress > .seconds(20) {
                return .stalled
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        return .progressing
    }

    struct CallRow: Sendable {
        var status: String
        /// When the terminal status's row was written (seconds since 1970).
        var terminalRecordedAt: Double?
    }

    struct History: Sendable {
        var calls: [UUID: CallRow]
        var lags: [Double]
    }

    static func history(client: PostgresClient, ids: [UUID], logger: Logger) async throws -> History {
        var calls: [UUID: CallRow] = [:]
        let rows = try await client.query(
            """
            SELECT c.id, c.status, EXTRACT(EPOCH FROM e.recorded_at)::float8
            FROM calls c LEFT JOIN call_events e ON e.call_id = c.id AND e.seq = c.seq
            WHERE c.id = ANY(\(ids))
            """,
            logger: logger)
        for try await (id, status, recorded) in rows.decode((UUID, String, Double?).self) {
            calls[id] = CallRow(status: status, terminalRecordedAt: recorded)
        }
        var lags: [Double] = []
        lags.reserveCapacity(ids.count * 4)
        let events = try await client.query(
            """
            SELECT (EXTRACT(EPOCH FROM recorded_at - occurred_at) * 1000)::float8
            FROM call_events WHERE call_id = ANY(\(ids)) AND seq > 0
            """,
            logger: logger)
        for try await lag in events.decode(Double.self) { lags.append(lag) }
        return History(calls: calls, lags: lags)
    }
}
