import CallDomain
import Foundation
import TestSupport
import Testing

@testable import APIGateway

/// The call resource's JSON (every call answer) is what `JSONEncoder` wrote with the wire conventions before the
/// gateway wrote it by hand (`Tests/Fixtures/call-resource`): byte for byte where the conventions fix the bytes, the
/// same JSON value where they do not (the order of a client's own keys, the spelling of a fractional number).
@Suite
struct CallResourceJSONTests {
    static let requestedAt = Date(timeIntervalSince1970: 1_796_000_000.123)

    static func accepted() throws -> CallResource {
        CallResource(
            accepted: OriginateCommand(
                callID: CallID(uuid: UUID(uuidString: "0192A6E8-5F4C-7CC1-9D2E-3A1F6B7C8D90")!),
                requestedAt: requestedAt, expiresAt: requestedAt.addingTimeInterval(300),
                to: try DialTarget("+12125550101"), requestedBy: "crm", requestID: "b1c2d3e4"))
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

    static func fixture(_ name: String) throws -> String {
        try String(contentsOfFile: "\(TestFixtures.callResources)/\(name).json", encoding: .utf8)
            .trimmingCharacters(in: .newlines)
    }

    static func parsed(_ text: String) throws -> NSDictionary {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? NSDictionary)
    }

    static func text(_ resource: CallResource) throws -> String {
        String(decoding: try resource.jsonBytes(), as: UTF8.self)
    }

    @Test("the 202 of an accepted call is byte for byte the fixture")
    func acceptedIsTheSameBytes() throws {
        #expect(try Self.text(try Self.accepted()) == Self.fixture("accepted"))
    }

    @Test(
        "a call with every field and a machine verdict: the fixture's bytes, and its value with metadata and timeline")
    func everythingIsTheSame() throws {
        var resource = try Self.everything()
        let written = try Self.parsed(try Self.text(resource))
        #expect(written == (try Self.parsed(try Self.fixture("every-field"))))
        #expect(written["retryable"] as? Bool == false)
        // Without a client's own keys and numbers, the bytes are fixed by the conventions too.
        resource.timeline = nil
        resource.metadata = [:]
        #expect(try Self.text(resource) == Self.fixture("every-field-no-timeline-no-metadata"))
    }
}
