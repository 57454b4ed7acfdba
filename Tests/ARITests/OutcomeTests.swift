import ARI
import ARISimulator
import Foundation
import NIOHTTP1
import Testing

/// The client against the simulator, one outcome at a time: the exact events of the originated channel
/// (PJSIP endpoints: no `;2` half) and the hangup causes.
@Suite struct OutcomeTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var number: String
        var timeout: Int? = nil
        var expected: [String]
        var causeText: String

        var testDescription: String { self.name }
    }

    static let cases: [Case] = [
        Case(
            name: "answer after ringing, callee hangs up",
            number: "155501000201",
            expected: [
                "Dial()", "State(Ringing)", "Dial(RINGING)", "State(Up)", "Dial(ANSWER)", "Varset(STASISSTATUS=)",
                "StasisStart", "HangupRequest(16)", "StasisEnd", "Varset(STASISSTATUS=SUCCESS)", "Destroyed(16)",
            ],
            causeText: "Normal Clearing"
        ),
        Case(
            name: "busy, Busy() style",
            number: "155501010000",
            expected: ["Dial()", "Dial(BUSY)", "Destroyed(0)"],
            causeText: "Unknown"
        ),
        Case(
            name: "busy after ringing, Busy() style",
            number: "155501010300",
            expected: ["Dial()", "State(Ringing)", "Dial(RINGING)", "Dial(BUSY)", "Destroyed(0)"],
            causeText: "Unknown"
        ),
        Case(
            name: "busy, cause 17",
            number: "155501020000",
            expected: ["Dial()", "HangupRequest(17)", "Dial(BUSY)", "Destroyed(17)"],
            causeText: "User busy"
        ),
        Case(
            name: "congestion, Congestion() style",
            number: "155501030000",
            expected: ["Dial()", "Dial(CONGESTION)", "Destroyed(0)"],
            causeText: "Unknown"
        ),
        Case(
            name: "congestion, cause 34",
            number: "155501040000",
            expected: ["Dial()", "HangupRequest(34)", "Dial(CONGESTION)", "Destroyed(34)"],
            causeText: "Circuit/channel congestion"
        ),
        Case(
            name: "no answer until the originate timeout",
            number: "155501050000",
            timeout: 1,
            expected: ["Dial()", "State(Ringing)", "Dial(RINGING)", "Destroyed(19)"],
            causeText: "User alerting, no answer"
        ),
        Case(
            name: "rejected, cause 21",
            number: "155501060000",
            expected: ["Dial()", "HangupRequest(21)", "Dial(NOANSWER)", "Destroyed(21)"],
            causeText: "Call Rejected"
        ),
        Case(
            name: "unallocated number, cause 1",
            number: "155501070000",
            expected: ["Dial()", "HangupRequest(1)", "Dial(NOANSWER)", "Destroyed(1)"],
            causeText: "Unallocated (unassigned) number"
        ),
        Case(
            name: "unavailable, cause 20",
            number: "155501080000",
            expected: ["Dial()", "HangupRequest(20)", "Dial(CHANUNAVAIL)", "Destroyed(20)"],
            causeText: "Subscriber absent"
        ),
        Case(
            name: "nonexistent extension",
            number: "155501090000",
            expected: ["Destroyed(0)"],
            causeText: "Unknown"
        ),
        Case(
            name: "any cause, here 38",
            number: "155501130038",
            expected: ["Dial()", "HangupRequest(38)", "Dial(CONGESTION)", "Destroyed(38)"],
            causeText: "Network out of order"
        ),
        Case(
            name: "a ring timeout shorter than the ring time wins",
            number: "155501003000",
            timeout: 1,
            expected: ["Dial()", "State(Ringing)", "Dial(RINGING)", "Destroyed(19)"],
            causeText: "User alerting, no answer"
        ),
    ]

    @Test(arguments: OutcomeTests.cases)
    func outcome(_ testCase: Case) async throws {
        try await withSimulatorApplication { harness, application, events, client in
            let id = uniqueName("call")
            let created = try await client.originate(
                OriginateRequest(
                    channelID: id,
                    endpoint: "PJSIP/+\(testCase.number)@carrier",
                    app: application,
                    appArgs: "x",
                    callerID: "Dialer <5551000>",
                    timeout: testCase.timeout
                )
            )
            #expect(created.id == id)
            #expect(created.name.hasPrefix("PJSIP/carrier-"))
            #expect(created.state == "Down")
            let channelEvents = try await events.waitForDestroyed(id)
            #expect(channelEvents.map(signature) == testCase.expected)
            guard case .channelDestroyed(let destroyed)? = channelEvents.last else {
                Issue.record("no ChannelDestroyed last")
                return
            }
            #expect(destroyed.causeText == testCase.causeText)
            #expect(destroyed.application == application)
            await #expect(throws: ARIError.notFound("Channel not found")) { try await client.channel(id: id) }
            #expect(harness.simulator.liveChannelCount == 0)
        }
    }

    @Test func refusedOriginatesMapToTypedErrors() async throws {
        try await withSimulator { harness in
            let client = harness.client(application: uniqueName())
            func originate(_ endpoint: String) async throws {
                _ = try await client.originate(.init(channelID: uniqueName("call"), endpoint: endpoint, app: "x"))
            }
            await #expect(throws: ARIError.invalidRequest("Invalid endpoint specified")) {
                try await originate("PJSIP/155501100000@carrier")
            }
            await #expect(throws: ARIError.server(status: 503, message: "Service Unavailable")) {
                try await originate("PJSIP/155501110000@carrier")
            }
            await #expect(throws: ARIError.server(status: 500, message: "Allocation failed")) {
                try await originate("PJSIP/155501120000@carrier")
            }
            await #expect(throws: ARIError.server(status: 500, message: "Allocation failed")) {
                try await originate("Bogus/155501000000")
            }
            #expect(harness.simulator.liveChannelCount == 0)
            #expect(harness.simulator.totalOriginates == 4)
            #expect(harness.simulator.acceptedOriginates == 0)
        }
    }

    /// A number without a rule rings briefly, answers and stays up until hung up.
    @Test func unmatchedNumbersAnswerAndStayUp() async throws {
        try await withSimulatorApplication { harness, application, events, client in
            let id = uniqueName("call")
            _ = try await client.originate(.init(channelID: id, endpoint: "PJSIP/4930123456@carrier", app: application))
            try await events.waitForEvents("StasisStart") { events in
                events.contains { if case .stasisStart(let e) = $0 { e.channel.id == id } else { false } }
            }
            #expect(
                events.events(for: id).map(signature) == [
                    "Dial()", "State(Ringing)", "Dial(RINGING)", "State(Up)", "Dial(ANSWER)",
                    "Varset(STASISSTATUS=)", "StasisStart",
                ]
            )
            let live = try await client.channel(id: id)
            #expect(live.state == "Up")
            #expect(live.dialplan.appName == "Stasis")
            #expect(try await client.channels().map(\.id) == [id])
            try await client.hangup(channelID: id)
            let all = try await events.waitForDestroyed(id)
            #expect(
                all.suffix(4).map(signature) == [
                    "HangupRequest(32,soft)", "StasisEnd", "Varset(STASISSTATUS=SUCCESS)", "Destroyed(16)",
                ]
            )
            await #expect(throws: ARIError.notFound("Channel not found")) { try await client.hangup(channelID: id) }
        }
    }

    /// An app-style originate while the application has no WebSocket: Stasis fails, the call ends.
    @Test func answeredCallWithoutApplicationWebSocketEnds() async throws {
        try await withSimulator { harness in
            let client = harness.client(application: uniqueName())
            let id = uniqueName("call")
            _ = try await client.originate(
                .init(channelID: id, endpoint: "PJSIP/155501000000@carrier", app: uniqueName("nobody"))
            )
            try await eventually("the call ends") { harness.simulator.liveChannelCount == 0 }
            await #expect(throws: ARIError.notFound("Channel not found")) { try await client.channel(id: id) }
        }
    }

    /// A dialplan-style originate sends the application nothing unless it subscribes.
    @Test func dialplanStyleOriginateNeedsASubscription() async throws {
        try await withSimulatorApplication { harness, application, events, client in
            let silent = uniqueName("call")
            _ = try await client.originate(
                .init(channelID: silent, endpoint: "PJSIP/155501000001@carrier", context: "agents", extension: "s")
            )
            let watched = uniqueName("call")
            _ = try await client.originate(
                .init(channelID: watched, endpoint: "PJSIP/155501003001@carrier", context: "agents", extension: "s")
            )
            let subscribed = try await client.subscribe(application: application, eventSource: "channel:\(watched)")
            #expect(subscribed.channelIDs == [watched])
            // The first events (Dial, Ringing) may precede the subscription; from the answer on, all arrive.
            let watchedEvents = try await events.waitForDestroyed(watched)
            #expect(
                watchedEvents.map(signature).suffix(7) == [
                    "State(Up)", "Dial(ANSWER)", "Dialplan(Answer)", "Dialplan(Wait)", "HangupRequest(16)",
                    "HangupRequest(16,soft)", "Destroyed(16)",
                ]
            )
            try await eventually("the silent call ends") { harness.simulator.liveChannelCount == 0 }
            #expect(events.events(for: silent).isEmpty)
            await #expect(throws: ARIError.notFound("Application not found")) {
                try await client.subscribe(application: uniqueName("unknown"), eventSource: "channel:\(watched)")
            }
        }
    }
}
