import Foundation
import Logging
import PostgresNIO
import TestSupport

/// One row of the fault table, with the figures the guarantees are judged on.
struct PhaseRow: Sendable {
    var fault: String
    /// HTTP attempts of `POST /calls` (keyed requests are retried after a refusal).
    var requests = 0
    /// Attempts answered 202 (or 200 for a replayed key).
    var accepted = 0
    /// Attempts refused: 503, or no connection / no answer while the gateway was down.
    var refused = 0
    /// Of those, the attempts that got no HTTP answer at all (the gateway process was down).
    var refusedWithoutAnswer = 0
    /// Accepted calls the history never recorded.
    var lost = 0
    /// Call ids whose channel was created more than once.
    var doubleDialed = 0
    /// Accepted calls still not terminal past their timeout plus the margin.
    var stuck = 0
    /// Attempts answered something other than 202/200/503 (a 4xx or 500 would be a bug).
    var unexpected = 0
    /// Calls whose terminal status is not exactly one (PostgreSQL timeline, topic).
    var terminalMismatch = 0
    /// Status events on the topic that PostgreSQL does not have.
    var missingFromPostgres = 0
    /// Calls that were dialed although every attempt of their request was refused (the client was told no).
    var refusedThenDialed = 0
    /// Call ids the simulator was asked to originate more than once (only one can create a channel).
    var reoriginated = 0
    /// Originates whose endpoint is not `PJSIP/<to>@carrier`.
    var badEndpoints = 0
    /// Answered calls that did not end `completed` (cut while live).
    var answeredNotCompleted = 0
    /// Calls that ended `failed` although the node never created their channel (every number of the mix is
    /// dialable: a failure without a dial is a call given up, not an outcome).
    var failedUndialed = 0
    /// Calls whose worker was SIGKILLed after its fenced originate mark and before the originate left it (the mark
    /// less than a second before the kill, no originate at the node). Their new owner cannot tell them from calls
    /// dialed and ended while no one listened, so they end `failed`/`lost` rather than risk a second dial: the one
    /// undecidable case, reported apart and bounded by that window.
    var killedMidDial = 0
    /// Calls another worker took over from their owner (owner epoch above 1; informational).
    var takenOver = 0
    /// Calls that ended otherwise than their number's outcome (informational: a refused originate fails).
    var otherOutcome = 0
    /// How long the system took, after the load stopped, until every accepted call was terminal.
    var settleSeconds = 0.0
    /// How long the load ran.
    var loadSeconds = 0.0
    /// The longest a request waited for its answer, in seconds.
    var slowestAnswer = 0.0
    /// Details of every violation, for the failure message.
    var problems: [String] = []

    /// The violations the guarantees forbid.
    var violations: Int {
        lost + doubleDialed + stuck + unexpected + terminalMismatch + missingFromPostgres + badEndpoints
            + answeredNotCompleted + failedUndialed
    }
}

/// Checks one phase of the load from PostgreSQL, the status topic (read with kcat) and the simulator's counters.
struct PhaseVerifier: Sendable {
    /// A client of the suite's database (kept across the PostgreSQL restart: it reconnects).
    let database: PostgresClient
    let bootstrapServers: String
    let control: StackControl
    /// How long after the load stopped a call may still be non-terminal (the longest call lasts its ring timeout
    /// plus its hold time; the rest is for a restarted process to catch up).
    let margin: Duration

    struct Row: Sendable {
        var id: String
        var status: String
        var serial: Int?
        var to: String?
        var answered: Bool
        var failureReason: String?
        var ownerEpoch: Int
        /// When the fenced originate mark was written (seconds since 1970), if it was.
        var originateMarkedAt: Double?
    }

    /// How long before a worker's SIGKILL a call's originate mark may be while its originate had not left yet.
    static let markToDialWindow = 1.0

    static let terminal: Set<String> = ["completed", "busy", "no_answer", "rejected", "failed", "canceled", "expired"]

    func verify(phase: String, requests: [LoadRequest], loadStopped: ContinuousClock.Instant) async throws -> PhaseRow {
        var row = PhaseRow(fault: phase)
        var acceptedByID: [String: LoadRequest] = [:]
        for request in requests {
            row.slowestAnswer = max(row.slowestAnswer, request.slowest)
            for answer in request.attempts {
                row.requests += 1
                switch answer {
                case .accepted: row.accepted += 1
                case .unavailable: row.refused += 1
                case .noConnection, .noResponse:
                    row.refused += 1
                    row.refusedWithoutAnswer += 1
                case .unexpected(let status, let body):
                    row.unexpected += 1
                    row.problems.append("request \(request.serial): unexpected \(status) \(body)")
                }
            }
            if let id = request.callID { acceptedByID[id] = request }
        }

        // Wait until every accepted call is terminal in PostgreSQL (or the margin runs out).
        let deadline = loadStopped + margin
        var rows: [String: Row] = [:]
        var polls = 0
        while true {
            rows = try await Self.step("reading the calls from PostgreSQL") {
                try await self.rows(phase: phase, ids: Array(acceptedByID.keys))
            }
            let open = acceptedByID.keys.filter { rows[$0].map { !Self.terminal.contains($0.status) } ?? true }
            if open.isEmpty || ContinuousClock.now >= deadline { break }
            guard control.stack.isRunning else {
                throw TestEnvironmentError("devstack itself stopped during \(phase):\n\(control.stack.postMortem)")
            }
            polls += 1
            if polls % 10 == 0 {
                let statuses = Dictionary(grouping: open, by: { rows[$0]?.status ?? "absent" }).mapValues(\.count)
                print("[\(phase)] \(open.count) of \(acceptedByID.count) accepted calls not terminal yet: \(statuses)")
            }
            try await Task.sleep(for: .seconds(1))
        }
        row.settleSeconds = Self.seconds(ContinuousClock.now - loadStopped)

        // The topic: every status event of the phase's calls.
        let records = try await Self.step("reading the status topic with kcat") {
            // A broker that just came back may refuse kcat's first metadata request: a few tries.
            for _ in 0..<4 {
                if let records = try? await Kcat.consumeAll(bootstrap: bootstrapServers, topic: "calls.status.v1") {
                    return records
                }
                try await Task.sleep(for: .seconds(3))
            }
            return try await Kcat.consumeAll(bootstrap: bootstrapServers, topic: "calls.status.v1")
        }
        var topicEvents: [String: [(seq: Int, status: String)]] = [:]
        for record in records {
            guard let object = try? JSONSerialization.jsonObject(with: Data(record.payload.utf8)) as? [String: Any],
                let callID = object["call_id"] as? String, let seq = object["seq"] as? Int,
                let status = object["status"] as? String
            else { continue }
            let tag = (object["metadata"] as? [String: Any])?["fault"] as? String
            guard tag == phase || acceptedByID[callID] != nil else { continue }
            topicEvents[callID, default: []].append((seq, status))
        }

        // PostgreSQL's timelines; events still in flight to the history get until the deadline to arrive.
        var timelines: [String: [Int: String]] = [:]
        while true {
            timelines = try await Self.step("reading the timelines from PostgreSQL") {
                try await self.timelines(ids: Array(Set(topicEvents.keys).union(acceptedByID.keys)))
            }
            let missing = topicEvents.contains { id, events in
                events.contains { timelines[id]?[$0.seq] != $0.status }
            }
            if !missing || ContinuousClock.now >= deadline { break }
            try await Task.sleep(for: .seconds(1))
        }
        let originates = try await Self.step("reading the simulator's originate log") { try await control.originates() }
        let killedWorkers = control.kills.instants(of: { $0.hasPrefix("worker-") }).map(\.timeIntervalSince1970)

        // Where the commands of calls stuck before dialing sit on the originate topic, to follow them in the workers'
        // logs ("partition consumed from offset").
        var commandPositions: [String: [String]] = [:]
        if acceptedByID.keys.contains(where: { rows[$0].map { $0.status == "queued" } ?? false }),
            let commands = try? await Kcat.consumeAll(bootstrap: bootstrapServers, topic: "calls.originate.v1")
        {
            for record in commands {
                commandPositions[record.key, default: []].append("[\(record.partition)]@\(record.offset)")
            }
        }

        for (id, request) in acceptedByID.sorted(by: { $0.value.serial < $1.value.serial }) {
            guard let record = rows[id] else {
                row.lost += 1
                row.problems.append("call \(id) (request \(request.serial)) was accepted but is not in PostgreSQL")
                continue
            }
            guard Self.terminal.contains(record.status) else {
                row.stuck += 1
                let position = commandPositions[id].map { ", its command at \($0.joined(separator: " "))" } ?? ""
                row.problems.append(
                    "call \(id) is still \(record.status) \(Self.seconds(margin)) s after the load\(position)")
                continue
            }
            let timelineTerminals = (timelines[id] ?? [:]).values.filter { Self.terminal.contains($0) }
            let topicTerminalEvents = (topicEvents[id] ?? []).filter { Self.terminal.contains($0.status) }
            let topicTerminals = Set(topicTerminalEvents.map(\.status))
            // One terminal event: a redelivered copy carries the same seq; a second ending has another.
            let topicTerminalSeqs = Set(topicTerminalEvents.map(\.seq))
            if timelineTerminals.count != 1 || topicTerminals != [record.status] || topicTerminalSeqs.count != 1 {
                row.terminalMismatch += 1
                row.problems.append(
                    "call \(id): status \(record.status), timeline terminals \(timelineTerminals), topic \(topicTerminals)"
                )
            }
            if record.answered && record.status != "completed" {
                row.answeredNotCompleted += 1
                row.problems.append("call \(id) was answered but ended \(record.status) \(record.failureReason ?? "")")
            }
            if record.status != request.profile.expected { row.otherOutcome += 1 }
            if record.ownerEpoch > 1 { row.takenOver += 1 }
            if record.status == "failed", (originates[id]?.accepted ?? 0) == 0 {
                if originates[id] == nil, record.failureReason == "lost", let marked = record.originateMarkedAt,
                    killedWorkers.contains(where: { marked <= $0 && marked >= $0 - Self.markToDialWindow })
                {
                    row.killedMidDial += 1
                    continue
                }
                row.failedUndialed += 1
                row.problems.append("call \(id) ended failed (\(record.failureReason ?? "")) and was never dialed")
            }
        }
        for (id, events) in topicEvents {
            for event in events where timelines[id]?[event.seq] != event.status {
                row.missingFromPostgres += 1
                row.problems.append("call \(id): topic event seq \(event.seq) \(event.status) not in PostgreSQL")
            }
        }

        // Calls of the phase that no accepted attempt announced: requests the client was told were refused.
        let refusedSerials = Set(requests.filter { $0.callID == nil }.map(\.serial))
        for record in rows.values where acceptedByID[record.id] == nil {
            if let serial = record.serial, refusedSerials.contains(serial) { row.refusedThenDialed += 1 }
        }
        let numbers = Dictionary(rows.values.map { ($0.id, $0.to) }, uniquingKeysWith: { first, _ in first })
        for id in Set(acceptedByID.keys).union(rows.keys) {
            guard let originate = originates[id] else { continue }
            if originate.accepted > 1 {
                row.doubleDialed += 1
                row.problems.append("call \(id) was dialed \(originate.accepted) times")
            }
            if originate.requests > 1 { row.reoriginated += 1 }
            if let to = numbers[id] ?? nil {
                for endpoint in originate.endpoints where endpoint != "PJSIP/\(to)@carrier" {
                    row.badEndpoints += 1
                    row.problems.append("call \(id) to \(to) was originated on \(endpoint)")
                }
            }
        }
        return row
    }

    private func rows(phase: String, ids: [String]) async throws -> [String: Row] {
        do {
            let result = try await database.query(
                """
                SELECT id::text, status, (metadata->>'serial')::int, to_number, answered_at IS NOT NULL, failure_reason,
                    owner_epoch, extract(epoch FROM originate_sent_at)::float8
                FROM calls WHERE metadata->>'fault' = \(phase) OR id::text = ANY(\(ids))
                """, logger: Self.logger)
            var rows: [String: Row] = [:]
            for try await (id, status, serial, to, answered, reason, epoch, marked) in result.decode(
                (String, String, Int?, String?, Bool, String?, Int, Double?).self)
            {
                rows[id] = Row(
                    id: id, status: status, serial: serial, to: to, answered: answered, failureReason: reason,
                    ownerEpoch: epoch, originateMarkedAt: marked)
            }
            return rows
        }
    }

    private func timelines(ids: [String]) async throws -> [String: [Int: String]] {
        do {
            let result = try await database.query(
                "SELECT call_id::text, seq, status FROM call_events WHERE call_id::text = ANY(\(ids))",
                logger: Self.logger)
            var timelines: [String: [Int: String]] = [:]
            for try await (id, seq, status) in result.decode((String, Int, String).self) {
                timelines[id, default: [:]][seq] = status
            }
            return timelines
        }
    }

    static let logger = Logger(label: "fault-tests")

    /// Runs a step of the verification, naming it in its error.
    static func step<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw TestEnvironmentError("\(what): \(String(reflecting: error))")
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
