import ArgumentParser
import CallDomain
import CallStore
import Foundation
import Logging
import NIOCore
import PostgresNIO

#if canImport(Glibc)
    import Glibc
#endif

/// `loadgen history`: status events applied per second through `CallStore.apply` (the history writer's batches)
/// against a plain `COPY` of the same rows into the same table (`call_events`), on the same server in the same run.
struct HistoryBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "CallStore.apply batches versus COPY of the same rows into call_events."
    )

    @Option(help: "A PostgreSQL database the benchmark may fill (migrations are applied).")
    var databaseUrl: String

    @Option(help: "Calls per set (each call gets 4 status events: dispatched, initiated, answered, completed).")
    var calls: Int = 10_000

    @Option(help: "Events per batch (the worker's HISTORY_BATCH_SIZE default is 500).")
    var batch: Int = 500

    @Option(help: "Rounds (each measures apply, then COPY in the same batches, then one COPY of all rows).")
    var rounds: Int = 2

    @Option(help: "Write the figures as JSON to this file.")
    var out: String

    struct Round: Codable, Sendable {
        var events: Int
        var applyPerSecond: Double
        var copyBatchedPerSecond: Double
        var copySinglePerSecond: Double
    }

    struct Result: Codable, Sendable {
        var rounds: [Round]
        var applyPerSecond: Double
        var copyBatchedPerSecond: Double
        var copySinglePerSecond: Double
        var batch: Int
        var callsPerSet: Int
        var synchronousCommit: String
        var fsync: String
    }

    static let columns = [
        "call_id", "seq", "event_id", "status", "previous_status", "occurred_at", "node_id", "worker_id",
        "hangup_cause", "hangup_cause_text", "failure_reason", "detail",
    ]

    func run() async throws {
        var configuredLogger = Logger(label: "loadgen.history")
        configuredLogger.logLevel = .error
        let logger = configuredLogger
        let calls = self.calls
        let batch = self.batch
        let rounds = self.rounds
        let result = try await withPostgres(url: databaseUrl, logger: logger) { client in
            _ = try await Migrator(client: client, logger: logger).migrate()
            let store = CallStore(client: client, logger: logger)
            let settings = try await Self.settings(client: client, logger: logger)
            var measured: [Round] = []
            for round in 1...rounds {
                // Apply: the history writer's path.
                let applySet = try await Self.queuedCalls(calls, store: store, batch: batch)
                let applyBatches = Self.eventBatches(applySet, batch: batch)
                let events = applyBatches.reduce(0) { $0 + $1.count }
                var start = ContinuousClock.now
                for events in applyBatches {
                    let results = try await store.apply(events)
                    guard results.allSatisfy({ $0 == .applied }) else {
                        throw BenchError("apply refused events: \(Set(results.map { "\($0)" }))")
                    }
                }
                let applySeconds = (ContinuousClock.now - start).seconds

                // COPY of the same rows, in the same batches (one COPY, one transaction each).
                let copySet = try await Self.queuedCalls(calls, store: store, batch: batch)
                let copyBatches = Self.eventBatches(copySet, batch: batch)
                start = .now
                for events in copyBatches {
                    try await Self.copy(events, client: client, logger: logger)
                }
                let copyBatchedSeconds = (ContinuousClock.now - start).seconds

                // COPY of all rows at once: the ceiling of bulk loading on this server.
                let singleSet = try await Self.queuedCalls(calls, store: store, batch: batch)
                let allEvents = Self.eventBatches(singleSet, batch: batch).flatMap { $0 }
                start = .now
                try await Self.copy(allEvents, client: client, logger: logger)
                let copySingleSeconds = (ContinuousClock.now - start).seconds

                let row = Round(
                    events: events, applyPerSecond: Double(events) / applySeconds,
                    copyBatchedPerSecond: Double(events) / copyBatchedSeconds,
                    copySinglePerSecond: Double(allEvents.count) / copySingleSeconds)
                progress(
                    "history round \(round): "
                        + String(
                            format: "apply %.0f events/s, COPY (same batches) %.0f rows/s, COPY (one) %.0f rows/s",
                            row.applyPerSecond, row.copyBatchedPerSecond, row.copySinglePerSecond))
                measured.append(row)
            }
            func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
            return Result(
                rounds: measured, applyPerSecond: median(measured.map(\.applyPerSecond)),
                copyBatchedPerSecond: median(measured.map(\.copyBatchedPerSecond)),
                copySinglePerSecond: median(measured.map(\.copySinglePerSecond)), batch: batch, callsPerSet: calls,
                synchronousCommit: settings.synchronousCommit, fsync: settings.fsync)
        }
        try writeJSON(result, to: out)
    }

    static func settings(
        client: PostgresClient, logger: Logger
    ) async throws -> (
        synchronousCommit: String, fsync: String
    ) {
        var values: [String: String] = [:]
        let rows = try await client.query(
            "SELECT name, setting FROM pg_settings WHERE name IN ('synchronous_commit', 'fsync')", logger: logger)
        for try await (name, setting) in rows.decode((String, String).self) { values[name] = setting }
        return (values["synchronous_commit"] ?? "?", values["fsync"] ?? "?")
    }

    /// Records `count` new calls as queued (untimed set-up), as the history writer does when the commands arrive.
    static func queuedCalls(_ count: Int, store: CallStore, batch: Int) async throws -> [OriginateCommand] {
        let now = Date()
        let to = try DialTarget("+155501140010")
        let commands = (0..<count).map { _ in
            OriginateCommand(
                callID: .generate(now: now), requestedAt: now, expiresAt: now.addingTimeInterval(300), to: to,
                requestedBy: "bench")
        }
        var start = 0
        while start < commands.count {
            try await store.recordQueued(Array(commands[start..<min(start + batch, commands.count)]))
            start += batch
        }
        return commands
    }

    /// Each call's life as a worker reports it (dispatched, initiated, answered, completed), in batches as the
    /// history writer sees them when calls overlap: a batch holds one event of each of `batch` calls.
    static func eventBatches(_ commands: [OriginateCommand], batch: Int) -> [[CallStatusEvent]] {
        let steps: [(CallStatus, CallStatus)] = [
            (.dispatched, .queued), (.initiated, .dispatched), (.answered, .initiated), (.completed, .answered),
        ]
        var batches: [[CallStatusEvent]] = []
        var start = 0
        while start < commands.count {
            let block = commands[start..<min(start + batch, commands.count)]
            for (index, step) in steps.enumerated() {
                batches.append(
                    block.map { command in
                        let occurred = command.requestedAt.addingTimeInterval(0.01 * Double(index + 1))
                        let answered = command.requestedAt.addingTimeInterval(0.03)
                        return CallStatusEvent(
                            callID: command.callID, seq: index + 1, status: step.0, previousStatus: step.1,
                            occurredAt: occurred, nodeID: "node-a", workerID: "worker-1",
                            channelID: command.callID.description, to: command.to.value,
                            hangupCause: step.0 == .completed ? HangupCause(code: 16, text: "Normal Clearing") : nil,
                            answeredAt: index >= 2 ? answered : nil, endedAt: step.0 == .completed ? occurred : nil,
                            durationSeconds: step.0 == .completed ? 0.01 : nil)
                    })
            }
            start += batch
        }
        return batches
    }

    /// `COPY call_events (...) FROM STDIN` of the rows `apply` writes for `events`, in text format.
    static func copy(_ events: [CallStatusEvent], client: PostgresClient, logger: Logger) async throws {
        var text = ""
        text.reserveCapacity(events.count * 200)
        for event in events {
            let fields: [String?] = [
                event.callID.description, "\(event.seq)", event.eventID.uuidString.lowercased(),
                event.status.rawValue, event.previousStatus.rawValue, timestampText(event.occurredAt), event.nodeID,
                event.workerID, event.hangupCause.map { "\($0.code)" }, event.hangupCause?.text,
                event.failureReason?.rawValue, event.detail,
            ]
            text += fields.map { $0.map(copyEscaped) ?? "\\N" }.joined(separator: "\t")
            text += "\n"
        }
        let buffer = ByteBuffer(string: text)
        try await client.withConnection { connection in
            try await connection.copyFrom(table: "call_events", columns: columns, logger: logger) { writer in
                try await writer.write(buffer)
            }
        }
    }

    /// A value in COPY's text format: backslash, tab, newline and carriage return escaped.
    static func copyEscaped(_ value: String) -> String {
        guard value.contains(where: { $0 == "\\" || $0 == "\t" || $0 == "\n" || $0 == "\r" }) else { return value }
        return value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\t", with: "\\t")
            .replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\r", with: "\\r")
    }

    /// `2026-01-31 12:00:00.123456+00`, which PostgreSQL reads as a timestamptz.
    static func timestampText(_ date: Date) -> String {
        let interval = date.timeIntervalSince1970
        var seconds = time_t(interval.rounded(.down))
        let micros = Int(((interval - interval.rounded(.down)) * 1_000_000).rounded())
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(
            format: "%04d-%02d-%02d %02d:%02d:%02d.%06d+00", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
            Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), min(micros, 999_999))
    }
}
