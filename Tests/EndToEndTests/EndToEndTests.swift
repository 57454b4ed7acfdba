import AsyncHTTPClient
import CallDomain
import CallStore
import Foundation
import NIOCore
import NIOFoundationCompat
import TestSupport
import Testing

/// The whole path with separate processes, as `make run` starts it: `devstack up` (gateway, two workers, PostgreSQL
/// access, the embedded broker and the ARI simulator), a real HTTP client, SSE, the status topic read with kcat.
@Suite(.serialized, .timeLimit(.minutes(5))) struct EndToEndTests {
    /// Simulator numbers (`+1 555 01 OC AA HH`, see docs/ari-simulator.md) and what each must end as.
    struct Outcome: Sendable, CustomTestStringConvertible {
        var name: String
        var number: String
        var timeout: Int = 30
        var status: CallStatus
        var cause: Int
        var reason: FailureReason?
        var answered = false
        var testDescription: String { name }
    }

    static let outcomes: [Outcome] = [
        Outcome(name: "answered", number: "+155501000001", status: .completed, cause: 16, answered: true),
        Outcome(name: "busy", number: "+155501010000", status: .busy, cause: 0),
        Outcome(name: "no answer", number: "+155501050000", timeout: 5, status: .noAnswer, cause: 19),
        Outcome(name: "congestion", number: "+155501030000", status: .failed, cause: 0, reason: .congestion),
        Outcome(name: "rejected", number: "+155501060000", status: .rejected, cause: 21),
        Outcome(name: "invalid number", number: "+155501070000", status: .failed, cause: 1, reason: .invalidNumber),
    ]

    @Test func callsTravelFromTheAPIToTheirTerminalStatusAcrossProcesses() async throws {
        try await TestDatabase.withStore { store, databaseURL in
            let stack = try await DevStackProcess.start(databaseURL: databaseURL)
            let children = stack.childProcessIDs
            do {
                try await Self.exercise(stack: stack, store: store)
            } catch {
                _ = try? await stack.stop()
                throw error
            }
            #expect(children.count >= 3, "gateway and two workers run as separate processes")
            #expect(try await stack.stop() == 0)
            // Nothing of the stack is left behind.
            try await Task.sleep(for: .milliseconds(200))
            #expect(children.filter(DevStackProcess.isAlive).isEmpty)
        }
    }

    static func exercise(stack: DevStackProcess, store: CallStore) async throws {
        let api = APIClient(baseURL: stack.apiURL)
        let token = try await api.token(username: "admin", password: stack.adminPassword)

        // One call per outcome, followed over SSE from its first event to its terminal one.
        var callIDs: [String: Outcome] = [:]
        try await withThrowingTaskGroup(of: (Outcome, String, [SSEEvent]).self) { group in
            for outcome in outcomes {
                let id = try await api.placeCall(
                    token: token,
                    body: ["to": .string(outcome.number), "timeout_seconds": .number(Double(outcome.timeout))])
                callIDs[id] = outcome
                group.addTask {
                    let events = try await api.followUntilTerminal(token: token, callID: id, timeout: .seconds(60))
                    return (outcome, id, events)
                }
            }
            for try await (outcome, id, events) in group {
                let decoded = try events.map { try WireCoding.decode(CallStatusEvent.self, from: Array($0.data.utf8)) }
                let statuses = decoded.map(\.status)
                #expect(Array(statuses.prefix(2)) == [.dispatched, .initiated], "\(outcome.name): \(statuses)")
                #expect(statuses.last == outcome.status, "\(outcome.name): \(statuses)")
                #expect(statuses.filter(\.isTerminal).count == 1, "\(outcome.name): \(statuses)")
                #expect(decoded.map(\.seq) == Array(1...decoded.count), "\(outcome.name): seq is 1...n")
                #expect(events.map(\.id) == decoded.map { "\($0.seq)" }, "SSE ids are the seqs")
                #expect(statuses.contains(.answered) == outcome.answered, "\(outcome.name): \(statuses)")
                let last = try #require(decoded.last)
                #expect(
                    last.hangupCause?.code == outcome.cause, "\(outcome.name): \(String(describing: last.hangupCause))")
                #expect(last.failureReason == outcome.reason, "\(outcome.name)")
                // The PostgreSQL timeline holds the same sequence after `queued`.
                let record = try await eventually(timeout: .seconds(10)) {
                    let record = try await store.call(id: CallID(id)!)
                    return record?.status == outcome.status ? record : nil
                }
                #expect(record.timeline.map(\.status) == [.queued] + statuses, "\(outcome.name) timeline")
                #expect(record.hangupCause?.code == outcome.cause)
            }
        }

        // A long answered call hung up through the API ends completed.
        let long = try await api.placeCall(token: token, body: ["to": .string("+155501000000")])
        _ = try await eventually(timeout: .seconds(30)) {
            try await store.call(id: CallID(long)!)?.status == .answered ? true : nil
        }
        let hangup = try await api.request("POST", "/api/v1/calls/\(long)/hangup", token: token)
        #expect(hangup.status == 202)
        let ended = try await eventually(timeout: .seconds(30)) {
            let record = try await store.call(id: CallID(long)!)
            return record?.status.isTerminal == true ? record : nil
        }
        #expect(ended.status == .completed)
        callIDs[long] = Outcome(name: "hung up", number: "+155501000000", status: .completed, cause: 16, answered: true)

        // The same events on the topic, read by kcat, with CloudEvents headers and schema-valid values.
        let records = try await Kcat.consumeAll(bootstrap: stack.bootstrapServers, topic: "calls.status.v1")
        let ours = records.filter { callIDs[$0.key] != nil }
        #expect(Set(ours.map(\.key)) == Set(callIDs.keys))
        for record in ours {
            #expect(record.header("ce_specversion") == "1.0")
            #expect(record.header("ce_type") == CallStatusEvent.eventType)
            #expect(record.header("content-type") == "application/json")
            #expect(record.header("ce_source")?.isEmpty == false)
            #expect(record.header("ce_time").flatMap(WireCoding.parseTimestamp) != nil)
            #expect(record.header("traceparent").flatMap(TraceContext.traceID(fromTraceParent:)) != nil)
            let event = try WireCoding.decode(CallStatusEvent.self, from: Array(record.payload.utf8))
            #expect(record.header("ce_id") == event.eventID.uuidString.lowercased())
            #expect(event.callID.description == record.key)
        }
        let verdicts = try await SchemaValidator.validate(
            ours.map { Array($0.payload.utf8) }, against: "call-status-event.v1.json")
        #expect(verdicts.compactMap { $0 }.isEmpty, "\(verdicts.compactMap { $0 })")
        for (id, outcome) in callIDs {
            let terminal = ours.filter { $0.key == id }.compactMap {
                try? WireCoding.decode(CallStatusEvent.self, from: Array($0.payload.utf8))
            }.filter(\.status.isTerminal)
            #expect(
                terminal.map(\.status) == [outcome.status], "\(outcome.name): exactly one terminal event on the topic")
        }
    }
}

/// Polls `body` until it returns a value or `timeout` passes.
func eventually<T: Sendable>(timeout: Duration, _ body: @Sendable () async throws -> T?) async throws -> T {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if let value = try await body() { return value }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw TestEnvironmentError("condition not met within \(timeout)")
}
