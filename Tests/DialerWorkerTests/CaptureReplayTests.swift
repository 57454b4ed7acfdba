import ARI
import CallDomain
import Foundation
import TestSupport
import Testing

@testable import DialerWorker

/// The call tracker fed with what a real Asterisk 22.10.1 sent (`Tests/Fixtures/ari-captures`, or `ARI_CAPTURES_DIR`):
/// every WebSocket event of the capture in its recorded order, including the `;2` halves and a second application
/// subscribed to everything, with the originate's HTTP answer (and our DELETE) where they happened.
@Suite("Tracker on real Asterisk captures")
struct CaptureReplayTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let scenario: String
        let statuses: [CallStatus]
        let cause: Int
        var failureReason: FailureReason?
        var continues = 0
        var testDescription: String { scenario }
    }

    static let cases: [Case] = [
        Case(
            scenario: "A01_app_style_answer", statuses: [.dispatched, .initiated, .answered, .completed], cause: 16,
            continues: 1),
        Case(
            scenario: "A02_app_style_ring-answer",
            statuses: [.dispatched, .initiated, .ringing, .answered, .completed], cause: 16, continues: 1),
        Case(scenario: "A03_app_style_busy", statuses: [.dispatched, .initiated, .busy], cause: 0),
        Case(scenario: "A04_app_style_busy-hangup", statuses: [.dispatched, .initiated, .busy], cause: 17),
        Case(
            scenario: "A05_app_style_congestion", statuses: [.dispatched, .initiated, .failed], cause: 0,
            failureReason: .congestion),
        Case(
            scenario: "A06_app_style_congestion-hangup", statuses: [.dispatched, .initiated, .failed], cause: 34,
            failureReason: .congestion),
        Case(scenario: "A07_app_style_noanswer", statuses: [.dispatched, .initiated, .ringing, .noAnswer], cause: 19),
        Case(scenario: "A08_app_style_reject", statuses: [.dispatched, .initiated, .rejected], cause: 21),
        Case(
            scenario: "A09_app_style_unallocated", statuses: [.dispatched, .initiated, .failed], cause: 1,
            failureReason: .invalidNumber),
        Case(
            scenario: "A10_app_style_unavailable", statuses: [.dispatched, .initiated, .failed], cause: 20,
            failureReason: .unavailable),
        Case(
            scenario: "A11_app_style_nonexistent-exten", statuses: [.dispatched, .initiated, .failed], cause: 0,
            failureReason: .unknown),
        Case(
            scenario: "C03_delete_while_ringing_app_style",
            statuses: [.dispatched, .initiated, .ringing, .canceled], cause: 16),
        Case(
            scenario: "C02_delete_answered_app_style_default",
            statuses: [.dispatched, .initiated, .answered, .completed], cause: 16, continues: 1),
    ]

    @Test("status sequence and outcome from a real capture", arguments: cases)
    func replay(_ expected: Case) throws {
        let timeline = try Self.timeline(expected.scenario)
        let post = try #require(timeline.first { $0["kind"] as? String == "http" && $0["method"] as? String == "POST" })
        let urlText = try #require(post["url"] as? String)
        let url = try #require(URLComponents(string: urlText))
        let channelID = try #require(url.queryItems?.first { $0.name == "channelId" }?.value)
        let timeout = Int(url.queryItems?.first { $0.name == "timeout" }?.value ?? "30") ?? 30
        let callID = try #require(CallID(channelID))

        let tracker = CallTracker(nodeID: "node", workerID: "worker", application: "dialer")
        let now = Date()
        let command = OriginateCommand(
            callID: callID, requestedAt: now, expiresAt: now.addingTimeInterval(300), to: try DialTarget("5551000"),
            timeoutSeconds: timeout, requestedBy: "tests")
        let dialplan = try DialplanTarget(context: "agents", extension: "s", priority: 1)
        #expect(tracker.register(command, traceParent: nil, dialplan: dialplan))
        let dispatched = CallStatusEvent(
            callID: callID, seq: 1, status: .dispatched, previousStatus: .queued, occurredAt: now)
        var actions = tracker.claimWon(dispatched).actions

        // HTTP exchanges take effect when their answer arrived (`t_done`): events that overtook the originate's
        // answer are applied before it, as they reach the worker.
        func arrival(_ entry: [String: Any]) -> Double {
            (entry["t_done"] as? Double) ?? (entry["t"] as? Double) ?? 0
        }
        for entry in timeline.sorted(by: { arrival($0) < arrival($1) }) {
            switch (entry["kind"] as? String, entry["method"] as? String) {
            case ("http", "POST"):
                actions += tracker.originateAccepted(callID)
            case ("http", "DELETE"):
                // Our hangup request came first; it is what made the worker send the DELETE.
                actions += tracker.requestHangup(callID).1
            case ("ws_event", _):
                let event = try #require(entry["event"])
                let json = try JSONSerialization.data(withJSONObject: event)
                actions += tracker.handle(try ARIEvent.decode(json: String(decoding: json, as: UTF8.self)))
            default:
                break
            }
        }

        let published = Self.drain(tracker, callID)
        #expect(published.map(\.status) == expected.statuses)
        #expect(published.map(\.seq) == Array(1...expected.statuses.count))
        let terminal = try #require(published.last)
        #expect(terminal.hangupCause?.code == expected.cause)
        #expect(terminal.failureReason == expected.failureReason)
        #expect(!tracker.isTracked(callID), "a terminal call leaves the tracker")
        let continues = actions.filter {
            if case .continueInDialplan = $0 { return true }
            return false
        }
        #expect(continues.count == expected.continues)
        let ends = actions.filter {
            if case .ended = $0 { return true }
            return false
        }
        #expect(ends.count == 1, "exactly one terminal status")
    }

    @Test("events of other applications and of `;2` halves change nothing")
    func foreignEvents() throws {
        let timeline = try Self.timeline("A01_app_style_answer")
        let tracker = CallTracker(nodeID: "node", workerID: "worker", application: "someone-else")
        let post = try #require(timeline.first { $0["kind"] as? String == "http" })
        let urlText = try #require(post["url"] as? String)
        let url = try #require(URLComponents(string: urlText))
        let channelID = try #require(url.queryItems?.first { $0.name == "channelId" }?.value)
        let callID = try #require(CallID(channelID))
        let now = Date()
        let command = OriginateCommand(
            callID: callID, requestedAt: now, expiresAt: now.addingTimeInterval(300), to: try DialTarget("5551000"),
            requestedBy: "tests")
        _ = tracker.register(
            command, traceParent: nil, dialplan: try DialplanTarget(context: "a", extension: "s", priority: 1))
        _ = tracker.claimWon(
            CallStatusEvent(callID: callID, seq: 1, status: .dispatched, previousStatus: .queued, occurredAt: now))
        _ = tracker.originateAccepted(callID)
        for entry in timeline where entry["kind"] as? String == "ws_event" {
            let event = try #require(entry["event"])
            let json = try JSONSerialization.data(withJSONObject: event)
            #expect(tracker.handle(try ARIEvent.decode(json: String(decoding: json, as: UTF8.self))).isEmpty)
        }
        #expect(tracker.isTracked(callID))
        #expect(Self.drain(tracker, callID).map(\.status) == [.dispatched, .initiated])
    }

    /// Every event the call's outbox holds, in order (as the publisher would send them).
    static func drain(_ tracker: CallTracker, _ callID: CallID) -> [CallStatusEvent] {
        var events: [CallStatusEvent] = []
        while let (event, _) = tracker.nextPublication(callID) {
            events.append(event)
            _ = tracker.publicationAcknowledged(callID, seq: event.seq)
        }
        return events
    }

    static func timeline(_ scenario: String) throws -> [[String: Any]] {
        let directory = TestFixtures.ariCaptures
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(scenario).json"))
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return try #require(root["timeline"] as? [[String: Any]])
    }
}
