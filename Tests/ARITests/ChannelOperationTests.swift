import ARI
import ARISimulator
import Foundation
import NIOHTTP1
import Testing

/// Duplicate ids, hangup reasons and `continue`, through the client.
@Suite struct ChannelOperationTests {
    @Test func duplicateLiveIDIsAConflictAndTheIDIsReusableAfterDestroy() async throws {
        try await withSimulatorApplication { harness, application, events, client in
            let id = uniqueName("call")
            _ = try await client.originate(
                .init(channelID: id, endpoint: "Local/answer-long@dialer-test", app: application)
            )
            let conflict = ARIError.conflict("Channel with given unique ID already exists")
            await #expect(throws: conflict) {
                try await client.originate(
                    .init(channelID: id, endpoint: "PJSIP/155501000000@carrier", app: application)
                )
            }
            await #expect(throws: conflict) {
                try await client.originate(
                    .init(channelID: id, endpoint: "PJSIP/1@carrier", context: "agents", extension: "s")
                )
            }
            await #expect(throws: conflict) {
                try await client.originate(.init(channelID: id + ";2", endpoint: "PJSIP/1@carrier", app: application))
            }
            let other = try await httpRequest(
                .POST,
                harness.baseURL + "/channels?endpoint=Local/answer@dialer-test&app=\(application)"
                    + "&channelId=\(uniqueName("call"))&otherChannelId=\(id)"
            )
            #expect(other.status == 409)
            #expect(harness.simulator.originateCount(channelID: id) == 3)
            #expect(harness.simulator.originateCount(channelID: id + ";2") == 1)
            #expect(harness.simulator.acceptedOriginateCount(channelID: id) == 1)
            try await client.hangup(channelID: id)
            try await events.waitForDestroyed(id)
            await #expect(throws: ARIError.notFound("Channel not found")) { try await client.hangup(channelID: id) }
            let again = try await client.originate(
                .init(channelID: id, endpoint: "PJSIP/155501000000@carrier", app: application)
            )
            #expect(again.id == id)
            #expect(harness.simulator.originateCount(channelID: id) == 4)
            #expect(harness.simulator.acceptedOriginateCount(channelID: id) == 2)
            try await client.hangup(channelID: id)
        }
    }

    @Test func channelVariablesAreReadOrAbsent() async throws {
        try await withSimulatorApplication { harness, application, events, client in
            let id = uniqueName("call")
            _ = try await client.originate(
                .init(
                    channelID: id, endpoint: "PJSIP/155501000000@carrier", app: application,
                    variables: ["DIALER_AMD_MODE": "detect"]))
            #expect(try await client.variable("DIALER_AMD_MODE", channelID: id) == "detect")
            #expect(try await client.variable("AMDSTATUS", channelID: id) == nil, "a variable never set")
            await #expect(throws: ARIError.notFound("Provided channel was not found")) {
                try await client.variable("AMDSTATUS", channelID: uniqueName("gone"))
            }
            try await client.hangup(channelID: id)
        }
    }

    @Test func hangupReasonsBecomeTheDestroyCause() async throws {
        try await withSimulatorApplication { harness, application, events, client in
            for (reason, cause) in [("busy", 17), ("congestion", 34), ("no_answer", 19), ("normal", 16)] {
                let id = uniqueName("call")
                _ = try await client.originate(
                    .init(channelID: id, endpoint: "PJSIP/155501000000@carrier", app: application)
                )
                try await events.waitForEvents("StasisStart") { events in
                    events.contains { if case .stasisStart(let e) = $0 { e.channel.id == id } else { false } }
                }
                try await client.hangup(channelID: id, reason: reason)
                let all = try await events.waitForDestroyed(id)
                #expect(
                    all.suffix(4).map(signature) == [
                        "HangupRequest(32,soft)", "StasisEnd", "Varset(STASISSTATUS=SUCCESS)", "Destroyed(\(cause))",
                    ]
                )
            }
            let ringing = uniqueName("call")
            _ = try await client.originate(
                .init(channelID: ringing, endpoint: "PJSIP/155501050000@carrier", app: application)
            )
            try await events.waitForEvents("ringing") { events in
                events.contains {
                    if case .dial(let e) = $0 { e.peer.id == ringing && e.dialstatus == "RINGING" } else { false }
                }
            }
            try await client.hangup(channelID: ringing, reasonCode: 21)
            let ringingEvents = try await events.waitForDestroyed(ringing)
            #expect(
                ringingEvents.map(signature) == [
                    "Dial()", "State(Ringing)", "Dial(RINGING)", "HangupRequest(32,soft)", "Dial(NOANSWER)",
                    "Destroyed(21)",
                ]
            )
        }
    }

    @Test func invalidHangupReasonsAreRejected() async throws {
        try await withSimulator { harness in
            let application = uniqueName()
            let client = harness.client(application: application)
            let id = uniqueName("call")
            _ = try await client.originate(
                .init(channelID: id, endpoint: "PJSIP/155501050000@carrier", app: application, timeout: -1)
            )
            await #expect(throws: ARIError.invalidRequest("Invalid reason for hangup reason provided")) {
                try await client.hangup(channelID: id, reason: "bored")
            }
            let both = try await httpRequest(.DELETE, harness.baseURL + "/channels/\(id)?reason=busy&reason_code=17")
            #expect(both.status == 400)
            #expect(
                try JSONValue.parse(both.body)["message"]?.stringValue
                    == "The reason and reason_code can't both be specified"
            )
            #expect(harness.simulator.liveChannelCount == 1)
            try await client.hangup(channelID: id)
            try await eventually("hung up") { harness.simulator.liveChannelCount == 0 }
        }
    }

    @Test func continueLeavesStasisAndKeepsTheChannelUp() async throws {
        try await withSimulatorApplication { harness, application, events, client in
            let id = uniqueName("call")
            _ = try await client.originate(
                .init(channelID: id, endpoint: "PJSIP/155501001000@carrier", app: application)
            )
            try await events.waitForEvents("ringing") { events in
                events.contains {
                    if case .dial(let e) = $0 { e.peer.id == id && e.dialstatus == "RINGING" } else { false }
                }
            }
            await #expect(throws: ARIError.conflict("Channel not in Stasis application")) {
                try await client.continueInDialplan(channelID: id, context: "agents", extension: "s", priority: 1)
            }
            await #expect(throws: ARIError.notFound("Channel not found")) {
                try await client.continueInDialplan(
                    channelID: uniqueName(),
                    context: "agents",
                    extension: "s",
                    priority: 1
                )
            }
            try await events.waitForEvents("StasisStart") { events in
                events.contains { if case .stasisStart(let e) = $0 { e.channel.id == id } else { false } }
            }
            try await client.continueInDialplan(channelID: id, context: "agents", extension: "100", priority: 1)
            try await events.waitForEvents("dialplan Wait") { events in
                events.contains {
                    if case .channelDialplan(let e) = $0 {
                        e.channel.id == id && e.dialplanApp == "Wait"
                    } else {
                        false
                    }
                }
            }
            let channel = try await client.channel(id: id)
            #expect(channel.dialplan.context == "agents")
            #expect(channel.dialplan.exten == "100")
            #expect(channel.dialplan.priority == 2)
            await #expect(throws: ARIError.conflict("Channel not in Stasis application")) {
                try await client.continueInDialplan(channelID: id, context: "agents", extension: "s", priority: 1)
            }
            try await client.hangup(channelID: id)
            let all = try await events.waitForDestroyed(id)
            #expect(
                all.map(signature) == [
                    "Dial()", "State(Ringing)", "Dial(RINGING)", "State(Up)", "Dial(ANSWER)", "Varset(STASISSTATUS=)",
                    "StasisStart", "StasisEnd", "Dialplan(Answer)", "Dialplan(Wait)", "HangupRequest(32,soft)",
                    "HangupRequest(16,soft)", "Varset(STASISSTATUS=SUCCESS)", "Destroyed(16)",
                ]
            )
        }
    }

    /// Events of a Local originate's second half carry `<id>;2`: a filter by exact id keeps them apart.
    @Test func localSecondHalfIsDistinguishable() async throws {
        try await withSimulatorApplication { harness, application, events, client in
            let id = uniqueName("call")
            let created = try await client.originate(
                .init(channelID: id, endpoint: "Local/155501020000@dialer-test", app: application)
            )
            #expect(created.name.hasSuffix(";1"))
            try await events.waitForDestroyed(id + ";2")
            let own = events.events(for: id)
            let half = events.events(for: id + ";2")
            #expect(own.map(signature) == ["Dial()", "HangupRequest(17)", "Dial(BUSY)", "Destroyed(17)"])
            #expect(half.map(signature).last == "Destroyed(17)")
            #expect(
                half.allSatisfy { event in
                    switch event {
                    case .channelHangupRequest(let e): e.channel.isLocalSecondHalf
                    case .channelDestroyed(let e): e.channel.isLocalSecondHalf
                    default: true
                    }
                }
            )
        }
    }
}
