import CallDomain
import Foundation
import Testing

@testable import APIGateway

/// The call resource written by hand (`jsonBytes()`, the answer of call requests) is the same JSON as its `Encodable`
/// form through `WireCoding` (the list answers): byte for byte where the conventions fix the bytes, as the same
/// JSON value where they do not (the order of a client's own keys, the spelling of a fractional number).
@Suite
struct CallResourceJSONTests {
    static let requestedAt = Date(timeIntervalSince1970: 1_796_000_000.123)

    static func accepted() throws -> CallResource {
        CallResource(
            accepted: OriginateCommand(
                callID: .generate(now: requestedAt), requestedAt: requestedAt,
                expiresAt: requestedAt.addingTimeInterval(300), to: try DialTarget("+12125550101"),
                requestedBy: "crm", requestID: "b1c2d3e4"))
    }

    /// Every field set, the failed branch (retryable), nested values and strings that need escaping.
    static func everything() throws -> CallResource {
        var resource = try accepted()
        resource.status = .failed
        resource.seq = 7
        resource.callerID = .init(name: "Sales \"Team\"", number: "+12125550199")
        resource.context = "agents"
        resource.extension = "s"
        resource.priority = 1
        resource.timeoutSeconds = 30
        resource.variables = ["CAMPAIGN": "spring/2027", "LANG": "fr-CA"]
        resource.metadata = [
            "crm_id": .string("a\\b\nc\u{1}é"), "count": .number(3), "ratio": .number(0.25), "ok": .bool(true),
            "none": .null, "tags": .array([.string("x"), .number(-2)]), "nested": .object(["k": .string("v")]),
        ]
        resource.nodeID = "node-a"
        resource.workerID = "worker-1"
        resource.channelID = "1796000000.42"
        resource.hangupCause = HangupCause(code: 17, text: "User busy")
        resource.failureReason = .invalidNumber
        resource.detail = "tab\there"
        resource.dispatchedAt = requestedAt.addingTimeInterval(0.5)
        resource.answeredAt = requestedAt.addingTimeInterval(3)
        resource.endedAt = requestedAt.addingTimeInterval(9.999)
        resource.updatedAt = requestedAt.addingTimeInterval(9.999)
        resource.machineDetection = try MachineDetection(
            mode: .detectMessageEnd, onMachine: .continue, timings: [.greeting: 1500, .silenceThreshold: 256])
        resource.answeredBy = .machine
        resource.timeline?.append(
            CallResource.TimelineEntry(
                seq: 7, status: .failed, previousStatus: .ringing, occurredAt: requestedAt.addingTimeInterval(9.999),
                nodeID: "node-a", workerID: "worker-1", hangupCause: HangupCause(code: 17, text: "User busy"),
                failureReason: .invalidNumber, detail: nil))
        return resource
    }

    static func parsed(_ bytes: some Collection<UInt8>) throws -> NSDictionary {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? NSDictionary)
    }

    @Test("the 202 of an accepted call is byte for byte JSONEncoder's")
    func acceptedIsTheSameBytes() throws {
        let resource = try Self.accepted()
        #expect(String(decoding: try resource.jsonBytes(), as: UTF8.self) == (try WireCoding.encodeText(resource)))
    }

    @Test("a call with every field, without and with its timeline and a machine verdict: the same JSON value")
    func everythingIsTheSameValue() throws {
        var resource = try Self.everything()
        for includeTimeline in [true, false] {
            if !includeTimeline { resource.timeline = nil }
            let written = try Self.parsed(try resource.jsonBytes())
            #expect(written == (try Self.parsed(try WireCoding.encode(resource))))
            #expect(written["retryable"] as? Bool == false)
            #expect((written["timeline"] != nil) == includeTimeline)
        }
        // Without a client's own keys and numbers, the bytes are fixed by the conventions too.
        resource.metadata = [:]
        #expect(String(decoding: try resource.jsonBytes(), as: UTF8.self) == (try WireCoding.encodeText(resource)))
    }
}
