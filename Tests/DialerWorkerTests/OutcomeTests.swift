import ARISimulator
import CallDomain
import CallStore
import DialerWorker
import Foundation
import TestSupport
import Testing

/// One call per outcome of the DESIGN.md table, placed by a worker running in process against the embedded Kafka
/// broker, the ARI simulator (event sequences of a real Asterisk 22) and PostgreSQL.
struct OutcomeCase: Sendable, CustomTestStringConvertible {
    let name: String
    let number: String
    var timeoutSeconds = 30
    /// The statuses on `calls.status.v1`, in `seq` order.
    let statuses: [CallStatus]
    /// The Q.850 cause of the terminal event (`nil`: no channel ever existed).
    let cause: Int?
    var failureReason: FailureReason?

    var testDescription: String { name }

    static let all: [OutcomeCase] = [
        OutcomeCase(
            name: "answered", number: TestNumber.answer(holdSeconds: 1),
            statuses: [.dispatched, .initiated, .answered, .completed], cause: 16),
        OutcomeCase(
            name: "ring then answer", number: TestNumber.answer(ringTenths: 10, holdSeconds: 1),
            statuses: [.dispatched, .initiated, .ringing, .answered, .completed], cause: 16),
        OutcomeCase(
            name: "busy via Busy() (cause 0, dialstatus BUSY)", number: TestNumber.busyTone,
            statuses: [.dispatched, .initiated, .busy], cause: 0),
        OutcomeCase(
            name: "busy via cause 17", number: TestNumber.busyCause,
            statuses: [.dispatched, .initiated, .busy], cause: 17),
        OutcomeCase(
            name: "congestion via Congestion() (cause 0, dialstatus CONGESTION)", number: TestNumber.congestionTone,
            statuses: [.dispatched, .initiated, .failed], cause: 0, failureReason: .congestion),
        OutcomeCase(
            name: "congestion via cause 34", number: TestNumber.congestionCause,
            statuses: [.dispatched, .initiated, .failed], cause: 34, failureReason: .congestion),
        OutcomeCase(
            name: "no answer by timeout", number: TestNumber.noAnswer, timeoutSeconds: 5,
            statuses: [.dispatched, .initiated, .ringing, .noAnswer], cause: 19),
        OutcomeCase(
            name: "rejected (cause 21)", number: TestNumber.rejected,
            statuses: [.dispatched, .initiated, .rejected], cause: 21),
        OutcomeCase(
            name: "unallocated number (cause 1)", number: TestNumber.unallocated,
            statuses: [.dispatched, .initiated, .failed], cause: 1, failureReason: .invalidNumber),
        OutcomeCase(
            name: "unavailable (cause 20)", number: TestNumber.unavailable,
            statuses: [.dispatched, .initiated, .failed], cause: 20, failureReason: .unavailable),
        OutcomeCase(
            name: "originate refused (HTTP 503)", number: TestNumber.refused,
            statuses: [.dispatched, .failed], cause: nil, failureReason: .originateRefused),
    ]
}

@Suite("Call outcomes", .timeLimit(.minutes(4)))
struct OutcomeTests {
    // One case at a time: eleven environments at once would load the machine for the other suites' timing checks.
    @Test(
        "each outcome: exact status sequence, terminal status, hangup cause, PostgreSQL timeline", .serialized,
        arguments: OutcomeCase.all)
    func outcome(_ expected: OutcomeCase) async throws {
        try await WorkerTestEnvironment.run { environment in
            try await withWorker(try environment.workerConfiguration()) { worker in
                let command = try environment.command(
                    expected.number, timeoutSeconds: expected.timeoutSeconds,
                    metadata: try ClientMetadata(["campaign": .string("outcomes")]))
                try await environment.publish(command)
                let record = try await environment.waitForEnd(command.callID)
                let callID = command.callID

                // The topic: exactly the expected statuses, seq 1, 2, 3... each from the one before.
                let events = environment.statusLog.events(of: callID)
                #expect(events.map(\.status) == expected.statuses)
                #expect(events.map(\.seq) == Array(1...expected.statuses.count))
                #expect(zip(events.dropFirst(), events).allSatisfy { $0.previousStatus == $1.status })
                #expect(events.first?.previousStatus == .queued)
                let terminal = try #require(events.last)
                #expect(terminal.hangupCause?.code == expected.cause)
                #expect(terminal.failureReason == expected.failureReason)
                #expect(terminal.endedAt != nil)
                #expect(
                    events.allSatisfy {
                        $0.nodeID == environment.nodeID && $0.workerID == worker.configuration.workerID
                            && $0.channelID == callID.description && $0.to == expected.number
                            && $0.metadata == command.metadata
                    })
                if expected.statuses.contains(.answered) {
                    #expect(terminal.answeredAt != nil)
                    #expect((terminal.durationSeconds ?? -1) >= 0)
                }
                if case .failed = terminal.status, expected.failureReason == .originateRefused {
                    #expect(terminal.detail?.contains("503") == true)
                }

                // Kafka: keyed by call id, CloudEvents headers, the command's trace id carried through.
                let entries = environment.statusLog.entries(of: callID)
                let traceID = command.requestID.map { TraceContext.traceID(for: $0) }
                #expect(entries.allSatisfy { $0.key == callID.description })
                #expect(entries.allSatisfy { $0.attributes.type == CallStatusEvent.eventType })
                #expect(
                    entries.allSatisfy {
                        $0.attributes.traceParent.flatMap(TraceContext.traceID(fromTraceParent:)) == traceID
                    })
                let validation = try await SchemaValidator.validate(
                    entries.map(\.payload), against: "call-status-event.v1.json")
                #expect(validation.allSatisfy { $0 == nil }, "schema violations: \(validation.compactMap { $0 })")

                // PostgreSQL: the terminal status and cause, and the timeline queued + every event.
                #expect(record.status == expected.statuses.last)
                #expect(record.hangupCause?.code == expected.cause)
                #expect(record.failureReason == expected.failureReason)
                #expect(record.nodeID == environment.nodeID)
                #expect(record.workerID == worker.configuration.workerID)
                try await eventually("the whole timeline stored") {
                    (try await environment.store.call(id: callID))?.timeline.count == expected.statuses.count + 1
                }
                let stored = try #require(try await environment.store.call(id: callID))
                #expect(stored.timeline.map(\.status) == [.queued] + expected.statuses)
                #expect(stored.timeline.map(\.seq) == Array(0...expected.statuses.count))

                // Dialed exactly once, with the call id as channel id. A node that keeps answering 503 created no
                // channel: the originate is sent ORIGINATE_MAX_ATTEMPTS times in all, and no channel ever exists.
                if expected.failureReason == .originateRefused {
                    let attempts = worker.configuration.originateMaxAttempts
                    #expect(environment.simulator.originateCount(channelID: callID.description) == attempts)
                    #expect(environment.simulator.acceptedOriginateCount(channelID: callID.description) == 0)
                    #expect(record.detail?.contains("after \(attempts) attempts") == true)
                } else {
                    #expect(environment.simulator.originateCount(channelID: callID.description) == 1)
                }
                #expect(worker.status.liveCalls == 0)
            }
        }
    }
}
