import ARI
import Foundation
import NIOHTTP1
import Testing

@testable import ARISimulator

/// Fault controls, in process and over the admin endpoint.
@Suite struct FaultTests {
    @Test func refusesTheNextOriginatesAndCountsThem() async throws {
        try await withSimulator { harness in
            let client = harness.client(application: uniqueName())
            harness.simulator.refuseOriginates(count: 2, status: 503)
            let id = uniqueName("call")
            let request = OriginateRequest(channelID: id, endpoint: "PJSIP/155501090000@carrier", app: "x")
            for _ in 0..<2 {
                await #expect(throws: ARIError.server(status: 503, message: "Service Unavailable")) {
                    try await client.originate(request)
                }
            }
            _ = try await client.originate(request)
            #expect(harness.simulator.originateCount(channelID: id) == 3)
            #expect(harness.simulator.acceptedOriginateCount(channelID: id) == 1)
            #expect(harness.simulator.totalOriginates == 3)
        }
    }

    @Test("a restart drops channels and sockets, then REST answers 503 not booted while WebSockets are accepted")
    func restartBootWindow() async throws {
        try await withSimulator { harness in
            let application = uniqueName()
            let client = harness.client(application: application)
            let recorder = try await EventRecorder.connected(harness.configuration(application: application))
            defer { recorder.stop() }
            let id = uniqueName("call")
            _ = try await client.originate(
                OriginateRequest(channelID: id, endpoint: "PJSIP/155501000090@carrier", app: application))
            try await eventually("the channel is live") { harness.simulator.liveChannelCount == 1 }

            harness.simulator.restart(bootWindow: .seconds(3))
            let restarted = ContinuousClock.now
            #expect(harness.simulator.liveChannelCount == 0, "channels die with the process, without an event")
            // The client reconnects at once: the WebSocket is accepted while REST still refuses.
            try await recorder.waitForState("reconnected") { $0.contains(.reconnected) }
            await #expect(throws: ARIError.server(status: 503, message: "Asterisk not booted")) {
                try await client.ping()
            }
            await #expect(throws: ARIError.server(status: 503, message: "Asterisk not booted")) {
                try await client.originate(
                    OriginateRequest(channelID: uniqueName("call"), endpoint: "PJSIP/155501000090@carrier", app: "x"))
            }
            #expect(harness.simulator.acceptedOriginates == 1, "nothing was created during the boot window")
            #expect(!recorder.events.contains { if case .channelDestroyed = $0 { true } else { false } })
            try await eventually(timeout: .seconds(10), "booted") { (try? await client.ping()) != nil }
            #expect(ContinuousClock.now - restarted >= .seconds(3))
            _ = try await client.asteriskInfo()
            // The admin endpoint does the same for tests in other processes.
            let response = try await httpRequest(
                .POST, harness.baseURL.replacingOccurrences(of: "/ari", with: "/__sim/restart?boot_seconds=1"))
            #expect(response.status == 204)
            await #expect(throws: ARIError.server(status: 503, message: "Asterisk not booted")) {
                try await client.channels()
            }
        }
    }

    @Test("a simulator configured with a boot window refuses REST from its start until the window passes")
    func bootWindowAtStart() async throws {
        try await withSimulator(.init(bootWindow: .seconds(2))) { harness in
            let client = harness.client(application: uniqueName())
            await #expect(throws: ARIError.server(status: 503, message: "Asterisk not booted")) {
                try await client.asteriskInfo()
            }
            try await eventually(timeout: .seconds(10), "booted") { (try? await client.ping()) != nil }
        }
    }

    @Test func refusesOriginatesForADuration() async throws {
        try await withSimulator { harness in
            let client = harness.client(application: uniqueName())
            harness.simulator.refuseOriginates(for: .seconds(60), status: 500)
            let request = OriginateRequest(channelID: uniqueName(), endpoint: "PJSIP/155501090000@carrier", app: "x")
            await #expect(throws: ARIError.server(status: 500, message: "Allocation failed")) {
                try await client.originate(request)
            }
            harness.simulator.resetFaults()
            _ = try await client.originate(request)
        }
    }

    @Test func latencyDelaysResponses() async throws {
        try await withSimulator { harness in
            let client = harness.client(application: uniqueName())
            harness.simulator.setLatency(.milliseconds(300))
            let started = ContinuousClock.now
            _ = try await client.channels()
            #expect(started.duration(to: .now) >= .milliseconds(300))
        }
    }

    @Test func unresponsiveServerTimesTheClientOut() async throws {
        try await withSimulator { harness in
            var configuration = harness.configuration(application: uniqueName())
            configuration.requestTimeout = .milliseconds(300)
            let client = ARIClient(configuration: configuration, logger: testLogger)
            harness.simulator.setUnresponsive(true)
            await #expect {
                try await client.channels()
            } throws: { error in
                if case ARIError.transport = error { true } else { false }
            }
            harness.simulator.setUnresponsive(false)
            let channels = try await client.channels()
            #expect(channels.isEmpty)
        }
    }

    @Test func adminEndpointControlsFaults() async throws {
        try await withSimulator { harness in
            let admin = harness.baseURL.replacingOccurrences(of: "/ari", with: "/__sim")
            let client = harness.client(application: uniqueName())
            let refuse = try await httpRequest(.POST, admin + "/refuse-originates?count=1&status=503", headers: [])
            #expect(refuse.status == 204)
            let id = uniqueName("call")
            await #expect(throws: ARIError.server(status: 503, message: "Service Unavailable")) {
                try await client.originate(.init(channelID: id, endpoint: "PJSIP/155501050000@carrier", app: "x"))
            }
            _ = try await client.originate(.init(channelID: id, endpoint: "PJSIP/155501050000@carrier", app: "x"))
            let counts = try JSONValue.parse(
                try await httpRequest(.GET, admin + "/originates?channel=\(id)", headers: []).body
            )
            #expect(counts["originates"]?.intValue == 2)
            #expect(counts["accepted"]?.intValue == 1)
            let stats = try JSONValue.parse(try await httpRequest(.GET, admin + "/stats", headers: []).body)
            #expect(stats["live_channels"]?.intValue == 1)
            #expect(stats["total_originates"]?.intValue == 2)
            let hangup = try await httpRequest(.POST, admin + "/hangup?channel=\(id)&cause=17", headers: [])
            #expect(hangup.status == 204)
            #expect(harness.simulator.liveChannelCount == 0)
            #expect(try await httpRequest(.POST, admin + "/latency?ms=0", headers: []).status == 204)
            #expect(try await httpRequest(.POST, admin + "/reset", headers: []).status == 204)
            #expect(try await httpRequest(.POST, admin + "/reset-counters", headers: []).status == 204)
            #expect(harness.simulator.totalOriginates == 0)
            #expect(try await httpRequest(.POST, admin + "/nonsense", headers: []).status == 404)
        }
    }

    @Test func earlyEventsPrecedeTheResponseWhenConfigured() async throws {
        try await withSimulator(.init(earlyEvents: .always)) { harness in
            let application = uniqueName()
            let events = try await EventRecorder.connected(harness.configuration(application: application))
            defer { events.stop() }
            let id = uniqueName("call")
            _ = try await harness.client(application: application).originate(
                .init(channelID: id, endpoint: "PJSIP/155501020000@carrier", app: application)
            )
            #expect(harness.simulator.earlyEventOriginates == 1)
            try await events.waitForDestroyed(id)
        }
        try await withSimulator(.init(earlyEvents: .never)) { harness in
            _ = try await harness.client(application: uniqueName()).originate(
                .init(channelID: uniqueName("call"), endpoint: "PJSIP/155501000000@carrier", app: "x")
            )
            #expect(harness.simulator.earlyEventOriginates == 0)
        }
    }
}

/// The rule table and the number extraction (pure logic).
@Suite struct RuleTests {
    @Test func extractsTheDialedNumber() {
        #expect(DialedNumber.from(endpoint: "PJSIP/15550100001@carrier") == "15550100001")
        #expect(DialedNumber.from(endpoint: "PJSIP/+15550100001@carrier") == "15550100001")
        #expect(DialedNumber.from(endpoint: "PJSIP/carrier/sip:+4930123@sip.example.com") == "4930123")
        #expect(DialedNumber.from(endpoint: "Local/busy@dialer-test") == "busy")
        #expect(DialedNumber.from(endpoint: "Local/100@agents/n") == "100")
        #expect(DialedNumber.from(endpoint: "IAX2/trunk/5551234") == "5551234")
    }

    @Test func theNumberingPlanDecodesOutcomes() {
        #expect(
            NumberingPlan.outcome(code: 0, first: 5, second: 3)
                == .answer(ringing: .milliseconds(500), hold: .seconds(3))
        )
        #expect(NumberingPlan.outcome(code: 0, first: 0, second: 0) == .answer(ringing: .zero, hold: nil))
        #expect(
            NumberingPlan.outcome(code: 2, first: 1, second: 0) == .calleeHangup(cause: 17, after: .milliseconds(100))
        )
        #expect(NumberingPlan.outcome(code: 13, first: 0, second: 38) == .calleeHangup(cause: 38, after: .zero))
        #expect(NumberingPlan.outcome(code: 11, first: 0, second: 0) == .refuse(status: 503))
        #expect(NumberingPlan.outcome(code: 42, first: 0, second: 0) == nil)
    }

    @Test("valid North American numbers of the fictional range 555-01XY decide their outcome by X and Y")
    func theFictionalRangeDecodesOutcomes() throws {
        let table = try RuleTable(rules: OutcomeRule.defaults, fallback: OutcomeRule.defaultFallback)
        #expect(table.outcome(for: "12125550105").0 == .answer(ringing: .seconds(1), hold: .seconds(5)))
        #expect(table.outcome(for: "2125550100").0 == .answer(ringing: .seconds(1), hold: .seconds(3)))
        #expect(table.outcome(for: "13125550113").0 == .calleeHangup(cause: 17, after: .milliseconds(300)))
        #expect(table.outcome(for: "14155550120").0 == .noAnswer)
        #expect(table.outcome(for: "18085550140").0 == .calleeHangup(cause: 1, after: .zero))
        #expect(table.outcome(for: "12125550190").0 == .nonexistent)
        #expect(table.outcome(for: "12125550190").1 == "fictional-range")
        // The older numbering plan keeps its numbers; a number outside both falls back.
        #expect(table.outcome(for: "155501000503").1 == "numbering-plan")
        #expect(table.outcome(for: "12125550250").1 == "fallback")
    }

    @Test func rulesFilesParse() throws {
        let json = """
            {"rules": [
              {"name": "vip", "match": "49.*", "outcome": "answer", "ringMs": 1000, "holdMs": 5000},
              {"match": "44.*", "outcome": "hangup", "cause": 38, "afterMs": 200},
              {"match": "33.*", "outcome": "refuse", "status": 503}
            ], "includeDefaults": false, "fallback": {"outcome": "busy"}}
            """
        let file = try RuleFile.parse(Data(json.utf8))
        #expect(file.rules.count == 3)
        #expect(
            file.rules[0]
                == OutcomeRule(name: "vip", pattern: "49.*", outcome: .answer(ringing: .seconds(1), hold: .seconds(5)))
        )
        #expect(file.rules[1].decision == .fixed(.calleeHangup(cause: 38, after: .milliseconds(200))))
        #expect(file.fallback == .busy(after: .zero))
        let withDefaults = try RuleFile.parse(Data(#"{"rules": []}"#.utf8))
        #expect(withDefaults.rules == OutcomeRule.defaults)
        #expect(throws: ARISimulatorError.self) { try RuleFile.parse(Data(#"{"rules": [{"match": "("}]}"#.utf8)) }
        #expect(throws: ARISimulatorError.self) {
            try RuleFile.parse(Data(#"{"rules": [{"match": "1", "outcome": "explode"}]}"#.utf8))
        }
    }
}
