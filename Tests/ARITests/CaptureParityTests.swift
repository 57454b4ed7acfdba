import ARI
import ARISimulator
import Foundation
import NIOHTTP1
import Testing

/// The simulator's events for the captures' dialplan (`Local/<exten>@dialer-test`) compared with what the
/// real Asterisk sent on the application's WebSocket, scenario by scenario. Events of the originated
/// channel and of its `;2` half are compared separately: Asterisk interleaves the two halves differently
/// from run to run, but the order within each channel is stable.
@Suite struct CaptureParityTests {
    /// The captures' extensions with shorter times (ring 300 ms, hold 600 ms) so the tests run quickly;
    /// the event order does not depend on the durations.
    static let fastRules: [OutcomeRule] =
        [
            OutcomeRule(name: "answer", pattern: "answer", outcome: .answer(ringing: .zero, hold: .milliseconds(600))),
            OutcomeRule(
                name: "ring-answer",
                pattern: "ring-answer",
                outcome: .answer(ringing: .milliseconds(300), hold: .milliseconds(600))
            ),
            OutcomeRule(
                name: "answer-long",
                pattern: "answer-long",
                outcome: .answer(ringing: .zero, hold: .seconds(60))
            ),
            OutcomeRule(name: "nosuchcontext", pattern: "x", outcome: .nonexistent),
        ] + OutcomeRule.defaults

    struct Scenario: Sendable, CustomTestStringConvertible {
        var capture: String
        var endpoint: String
        var timeout: Int?
        var testDescription: String { self.capture }
    }

    static let simpleScenarios: [Scenario] = [
        Scenario(capture: "A01_app_style_answer", endpoint: "Local/answer@dialer-test"),
        Scenario(capture: "A02_app_style_ring-answer", endpoint: "Local/ring-answer@dialer-test"),
        Scenario(capture: "A03_app_style_busy", endpoint: "Local/busy@dialer-test"),
        Scenario(capture: "A04_app_style_busy-hangup", endpoint: "Local/busy-hangup@dialer-test"),
        Scenario(capture: "A05_app_style_congestion", endpoint: "Local/congestion@dialer-test"),
        Scenario(capture: "A06_app_style_congestion-hangup", endpoint: "Local/congestion-hangup@dialer-test"),
        Scenario(capture: "A07_app_style_noanswer", endpoint: "Local/noanswer@dialer-test", timeout: 1),
        Scenario(capture: "A08_app_style_reject", endpoint: "Local/reject@dialer-test"),
        Scenario(capture: "A09_app_style_unallocated", endpoint: "Local/unallocated@dialer-test"),
        Scenario(capture: "A10_app_style_unavailable", endpoint: "Local/unavailable@dialer-test"),
        Scenario(capture: "A11_app_style_nonexistent-exten", endpoint: "Local/nosuchexten@dialer-test"),
        Scenario(capture: "A12_app_style_nonexistent-context", endpoint: "Local/x@nosuchcontext"),
    ]

    @Test(arguments: CaptureParityTests.simpleScenarios)
    func outcomeMatchesTheCapture(_ scenario: Scenario) async throws {
        let capture = try Capture.named(scenario.capture)
        try await withSimulator(.init(rules: Self.fastRules)) { harness in
            let application = uniqueName()
            let events = try await RawEventRecorder.connected(url: harness.eventsURL(application: application))
            defer { events.stop() }
            let id = uniqueName("call")
            _ = try await harness.client(application: application).originate(
                .init(
                    channelID: id,
                    endpoint: scenario.endpoint,
                    app: application,
                    appArgs: "x",
                    timeout: scenario.timeout
                )
            )
            try await events.waitForDestroyed(id)
            try await events.waitForDestroyed(id + ";2")
            Self.compare(simulated: events.values, captured: capture.events(on: "app"), scenario: scenario.capture)
        }
    }

    /// C02: `DELETE` after `StasisStart` with the default reason, `reason=busy` and `reason_code=21`.
    @Test(arguments: [
        ("C02_delete_answered_app_style_default", "", "16"),
        ("C02_delete_answered_app_style_reason_busy", "busy", "17"),
        ("C02_delete_answered_app_style_reason_code_21", "code", "21"),
    ])
    func hangupAfterAnswerMatchesTheCapture(capture name: String, reason: String, cause: String) async throws {
        let capture = try Capture.named(name)
        try await withSimulator(.init(rules: Self.fastRules)) { harness in
            let application = uniqueName()
            let events = try await RawEventRecorder.connected(url: harness.eventsURL(application: application))
            defer { events.stop() }
            let client = harness.client(application: application)
            let id = uniqueName("call")
            _ = try await client.originate(
                .init(channelID: id, endpoint: "Local/answer-long@dialer-test", app: application, appArgs: "x")
            )
            try await Self.waitForPeerWait(events, id)
            switch reason {
            case "": try await client.hangup(channelID: id)
            case "code": try await client.hangup(channelID: id, reasonCode: Int(cause) ?? 0)
            default: try await client.hangup(channelID: id, reason: reason)
            }
            try await events.waitForDestroyed(id + ";2")
            Self.compare(simulated: events.values, captured: capture.events(on: "app"), scenario: name)
        }
    }

    /// C03: `DELETE` while ringing.
    @Test func hangupWhileRingingMatchesTheCapture() async throws {
        let capture = try Capture.named("C03_delete_while_ringing_app_style")
        try await withSimulator(.init(rules: Self.fastRules)) { harness in
            let application = uniqueName()
            let events = try await RawEventRecorder.connected(url: harness.eventsURL(application: application))
            defer { events.stop() }
            let client = harness.client(application: application)
            let id = uniqueName("call")
            _ = try await client.originate(
                .init(
                    channelID: id,
                    endpoint: "Local/noanswer@dialer-test",
                    app: application,
                    appArgs: "x",
                    timeout: 30
                )
            )
            try await events.waitUntil("Dial RINGING") { values in
                values.contains { $0["type"]?.stringValue == "Dial" && $0["dialstatus"]?.stringValue == "RINGING" }
            }
            #expect(try await client.channel(id: id).state == "Ringing")
            try await client.hangup(channelID: id)
            try await events.waitForDestroyed(id + ";2")
            Self.compare(simulated: events.values, captured: capture.events(on: "app"), scenario: capture.scenario)
        }
    }

    /// C07: `continue` to an existing location (compared up to the dialplan's first steps: the capture's
    /// dialplan then hangs up by itself, the simulator's waits for the callee) and to a missing one.
    @Test func continueMatchesTheCapture() async throws {
        let existing = try Capture.named("C07_continue_after_stasisstart_agents_s")
        let missing = try Capture.named("C07_continue_after_stasisstart_nonexistent_exten")
        try await withSimulator(.init(rules: Self.fastRules, dialplanContexts: ["agents"])) { harness in
            let application = uniqueName()
            let events = try await RawEventRecorder.connected(url: harness.eventsURL(application: application))
            defer { events.stop() }
            let client = harness.client(application: application)
            let kept = uniqueName("call")
            _ = try await client.originate(
                .init(channelID: kept, endpoint: "Local/answer-long@dialer-test", app: application, appArgs: "x")
            )
            try await Self.waitForPeerWait(events, kept)
            try await client.continueInDialplan(channelID: kept, context: "agents", extension: "s", priority: 1)
            try await events.waitUntil("Wait in agents") { values in
                values.contains {
                    $0["channel"]?["id"]?.stringValue == kept && $0["dialplan_app"]?.stringValue == "Wait"
                }
            }
            let simulated = Self.signatures(events.values, channel: kept)
            let captured = Self.signatures(existing.events(on: "app"), channel: Self.originated(existing))
            #expect(Array(simulated.prefix(8)) == Array(captured.prefix(8)))
            #expect(captured.count > 8)
            let channel = try await client.channel(id: kept)
            #expect(channel.dialplan.context == "agents")
            #expect(channel.state == "Up")
            try await client.hangup(channelID: kept)
            try await events.waitForDestroyed(kept)

            let lost = uniqueName("call")
            _ = try await client.originate(
                .init(channelID: lost, endpoint: "Local/answer-long@dialer-test", app: application, appArgs: "x")
            )
            try await Self.waitForPeerWait(events, lost)
            try await client.continueInDialplan(channelID: lost, context: "nowhere", extension: "nosuch", priority: 1)
            try await events.waitForDestroyed(lost + ";2")
            let lostEvents = events.values.filter {
                let id = ($0["channel"] ?? $0["peer"])?["id"]?.stringValue
                return id == lost || id == lost + ";2"
            }
            Self.compare(simulated: lostEvents, captured: missing.events(on: "app"), scenario: missing.scenario)
        }
    }

    /// D03: a second WebSocket for the same application takes over; the first gets ApplicationReplaced only.
    @Test func secondWebSocketReplacesTheFirstAsCaptured() async throws {
        let capture = try Capture.named("D03_two_websockets_same_app")
        try await withSimulator(.init(rules: Self.fastRules)) { harness in
            let application = uniqueName()
            let first = try await RawEventRecorder.connected(url: harness.eventsURL(application: application))
            defer { first.stop() }
            let second = try await RawEventRecorder.connected(url: harness.eventsURL(application: application))
            defer { second.stop() }
            let id = uniqueName("call")
            _ = try await harness.client(application: application).originate(
                .init(channelID: id, endpoint: "Local/answer@dialer-test", app: application, appArgs: "x")
            )
            try await second.waitForDestroyed(id)
            try await second.waitForDestroyed(id + ";2")
            #expect(first.values.map(rawSignature) == capture.events(on: "first").map(rawSignature))
            #expect(first.values.first?["application"]?.stringValue == application)
            Self.compare(simulated: second.values, captured: capture.events(on: "second"), scenario: capture.scenario)
        }
    }

    // MARK: - Helpers

    static func waitForPeerWait(_ events: RawEventRecorder, _ id: String) async throws {
        try await events.waitUntil("the ;2 half waiting") { values in
            values.contains {
                $0["channel"]?["id"]?.stringValue == id + ";2" && $0["dialplan_app"]?.stringValue == "Wait"
            }
        }
    }

    static func originated(_ capture: Capture) -> String {
        capture.httpExchanges.first { $0.method == "POST" && $0.status == 200 }?.body?["id"]?.stringValue ?? ""
    }

    static func signatures(_ events: [JSONValue], channel: String) -> [String] {
        events.filter { (($0["channel"] ?? $0["peer"])?["id"]?.stringValue) == channel }.map(rawSignature)
    }

    static func compare(simulated: [JSONValue], captured: [JSONValue], scenario: String) {
        // Captured ids are the capture's; find them from the first event that names a channel.
        func ids(_ events: [JSONValue]) -> (String, String)? {
            for event in events {
                guard let id = (event["channel"] ?? event["peer"])?["id"]?.stringValue else { continue }
                let base = id.hasSuffix(";2") ? String(id.dropLast(2)) : id
                return (base, base + ";2")
            }
            return nil
        }
        guard let (simulatedID, simulatedPeer) = ids(simulated), let (capturedID, capturedPeer) = ids(captured) else {
            Issue.record("\(scenario): no channel events")
            return
        }
        #expect(
            Self.signatures(simulated, channel: simulatedID) == Self.signatures(captured, channel: capturedID),
            "\(scenario): originated channel"
        )
        #expect(
            Self.signatures(simulated, channel: simulatedPeer) == Self.signatures(captured, channel: capturedPeer),
            "\(scenario): ;2 half"
        )
    }
}
