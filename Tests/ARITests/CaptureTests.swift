import ARI
import Foundation
import Testing

/// The client and the schema validator against what a real Asterisk 22.10.1 sent.
@Suite struct CaptureTests {
    @Test func everyCapturedEventDecodesWithTheClient() throws {
        var typed = 0
        for capture in try Capture.all() {
            for event in capture.events() {
                let decoded = try ARIEvent.decode(json: event.description)
                #expect(decoded.type == event["type"]?.stringValue, "\(capture.scenario)")
                #expect(decoded.timestamp != nil, "\(capture.scenario): \(decoded.type) without timestamp")
                if case .other = decoded { continue }
                typed += 1
                if let channel = event["channel"]?["id"]?.stringValue ?? event["peer"]?["id"]?.stringValue {
                    #expect(decoded.channelID == channel)
                }
            }
        }
        #expect(typed > 500)
    }

    @Test func capturedDialEventsNameTheOriginatedChannelAsPeer() throws {
        let capture = try Capture.named("A02_app_style_ring-answer")
        let originated = capture.httpExchanges.first { $0.method == "POST" }?.body?["id"]?.stringValue
        let dials = try capture.events(on: "app").filter { $0["type"]?.stringValue == "Dial" }
            .map { try ARIEvent.decode(json: $0.description) }
        #expect(dials.count == 3)
        for case .dial(let dial) in dials {
            #expect(dial.peer.id == originated)
            #expect(dial.caller == nil)
        }
        #expect(dials.map(signature) == ["Dial()", "Dial(RINGING)", "Dial(ANSWER)"])
    }

    @Test func capturedSecondHalfEventsAreDistinguishable() throws {
        let capture = try Capture.named("A01_app_style_answer")
        let originated = try #require(capture.httpExchanges.first { $0.method == "POST" }?.body?["id"]?.stringValue)
        let decoded = try capture.events(on: "app").map { try ARIEvent.decode(json: $0.description) }
        let halves = decoded.filter { $0.channelID == originated + ";2" }
        #expect(!halves.isEmpty)
        #expect(decoded.filter { $0.channelID == originated }.map(signature).last == "Destroyed(16)")
    }

    @Test func capturedRESTChannelsDecode() throws {
        var decoded = 0
        for capture in try Capture.all() {
            for exchange in capture.httpExchanges where exchange.status == 200 {
                guard let body = exchange.body else { continue }
                if body["dialplan"] != nil {
                    let channel = try JSONDecoder().decode(ARIChannel.self, from: Data(body.description.utf8))
                    #expect(channel.id == body["id"]?.stringValue)
                    decoded += 1
                } else if case .array(let list) = body, list.first?["dialplan"] != nil {
                    _ = try JSONDecoder().decode([ARIChannel].self, from: Data(body.description.utf8))
                    decoded += 1
                }
            }
        }
        #expect(decoded > 20)
    }

    /// The validator is strict (undeclared properties are errors): real Asterisk output must pass it, or
    /// it would prove nothing about the simulator's.
    @Test func theSchemaValidatorAcceptsRealAsteriskOutput() throws {
        let schema = try SpecSchema.load()
        #expect(schema.models["Channel"] != nil)
        #expect(schema.isKind("StasisStart", of: "Event"))
        var checked = 0
        for capture in try Capture.all() {
            for event in capture.events() {
                let errors = schema.validateEvent(event.description)
                #expect(errors.isEmpty, "\(capture.scenario): \(errors)")
                checked += 1
            }
            for exchange in capture.httpExchanges where exchange.status == 200 {
                guard let body = exchange.body else { continue }
                if body["dialplan"] != nil {
                    #expect(schema.validate(body, as: "Channel", path: "Channel").isEmpty)
                } else if body["channel_ids"] != nil {
                    #expect(schema.validate(body, as: "Application", path: "Application").isEmpty)
                }
            }
        }
        #expect(checked > 1000)
    }

    @Test func theSchemaValidatorRejectsBrokenEvents() throws {
        let schema = try SpecSchema.load()
        let missingCause =
            #"{"type":"ChannelDestroyed","timestamp":"2026-11-26T18:59:58.449+0000","#
            + #""cause_txt":"x","channel":{"id":"a"},"application":"a"}"#
        let errors = schema.validateEvent(missingCause)
        #expect(errors.contains { $0.contains("cause: required") })
        #expect(errors.contains { $0.contains("channel.name: required") })
        let wrongType =
            #"{"type":"ChannelHangupRequest","timestamp":"2026-11-26T18:59:58.449+0000","#
            + #""cause":"16","soft":1,"application":"a","channel":{}}"#
        let typeErrors = schema.validateEvent(wrongType)
        #expect(typeErrors.contains { $0.contains("cause: expected integer") })
        #expect(typeErrors.contains { $0.contains("soft: expected boolean") })
    }
}

@Suite struct TimestampTests {
    @Test func parsesAsteriskTimestamps() throws {
        let date = try #require(ARITimestamp.parse("2026-11-26T18:59:58.449+0000"))
        #expect(abs(date.timeIntervalSince1970 - 1_795_719_598.449) < 0.0005)
        #expect(ARITimestamp.parse("2026-11-26T19:59:58.449+0100") == date)
        #expect(ARITimestamp.parse("2026-11-26T18:59:58.449Z") == date)
        #expect(ARITimestamp.parse("2026-11-26T19:29:58.449+00:30") == date)
        #expect(ARITimestamp.parse("2026-11-26T18:59:58+0000") != nil)
        #expect(ARITimestamp.parse("2026-11-26 18:59:58") != nil)
        #expect(ARITimestamp.parse("2026-13-26T18:59:58.449+0000") == nil)
        #expect(ARITimestamp.parse("yesterday") == nil)
    }

    @Test func formatsAsAsteriskDoes() throws {
        let date = try #require(ARITimestamp.parse("2026-11-26T18:59:58.449+0000"))
        #expect(ARITimestamp.format(date) == "2026-11-26T18:59:58.449+0000")
        #expect(ARITimestamp.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000+0000")
        let leap = try #require(ARITimestamp.parse("2024-02-29T23:59:59.999+0000"))
        #expect(ARITimestamp.format(leap) == "2024-02-29T23:59:59.999+0000")
    }

    @Test func backoffStaysWithinItsBounds() {
        let backoff = ARIConfiguration.ReconnectBackoff(initial: .milliseconds(100), max: .seconds(1))
        #expect(backoff.bound(forAttempt: 0) == .milliseconds(100))
        #expect(backoff.bound(forAttempt: 3) == .milliseconds(800))
        #expect(backoff.bound(forAttempt: 10) == .seconds(1))
        for attempt in 0..<12 {
            let delay = backoff.delay(forAttempt: attempt)
            #expect(delay <= backoff.bound(forAttempt: attempt))
            #expect(delay >= backoff.bound(forAttempt: attempt) / 2)
        }
    }
}
