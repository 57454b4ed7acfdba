import CallDomain
import Crypto
import Foundation
import Testing

@testable import APIGateway

/// An idempotency key reserved before an upgrade must match the same request after it: the fingerprint's canonical
/// form, now written without `JSONEncoder`, is byte for byte what `JSONEncoder` wrote.
@Suite struct CallRequestFingerprintTests {
    static let bodies: [[String: JSONValue]] = [
        ["to": .string("123456")],
        [
            "to": .string("+12125550101"), "caller_id": .string("+15550100"), "timeout_seconds": .number(45),
            "ttl_seconds": .number(60), "record": .bool(true),
        ],
        [
            "to": .string("+12125550101"),
            "caller_id": .object(["name": .string("Ventes é 日本"), "number": .string("+15550100")]),
            "context": .string("outbound"), "extension": .string("agents"), "priority": .number(2),
            "variables": .object(["CAMPAIGN": .string("spring 2027"), "LANG": .string("fr-CA"), "a": .string("%#")]),
            "metadata": .object([
                "crm_id": .string("a\\b\nc\u{1}é/"), "Count": .number(3), "ratio": .number(0.1 + 0.2),
                "_ok": .bool(true), "none": .null, "tags": .array([.string("x"), .number(-0.0), .number(1e21)]),
                "nested": .object(["É": .string("v"), "e": .object(["z": .number(1e-7)])]), "日本": .number(-2),
            ]),
            "status_callback": .string("https://crm.example.com/hooks/calls?id=1&x=/y"),
            "status_callback_events": .array([.string("ringing"), .string("completed"), .string("answered")]),
            "machine_detection": .object([
                "mode": .string("detect_message_end"), "on_machine": .string("continue"),
                "greeting_ms": .number(1500), "silence_threshold": .number(256),
            ]),
        ],
        [
            "to": .string("5550100"), "status_callback": .string("https://hooks.example.com/x"),
            "machine_detection": .string("detect"),
        ],
    ]

    @Test("the canonical form of requests with every field is JSONEncoder's bytes, and so the same fingerprint")
    func canonicalFormIsJSONEncodersBytes() throws {
        for body in Self.bodies {
            let request = try CallRequest(
                body: body, allowedContexts: ["outbound"], defaultTimeoutSeconds: 30, defaultTTLSeconds: 300)
            let written = try request.canonical.jsonBytes()
            let encoded = Array(try WireCoding.encoder.encode(request.canonical))
            #expect(String(decoding: written, as: UTF8.self) == String(decoding: encoded, as: UTF8.self))
            #expect(request.fingerprint == WireCoding.hex(SHA256.hash(data: encoded)))
        }
    }
}

/// How the gateway encoded the canonical request with `JSONEncoder` before the writer: the reference the writer must
/// match byte for byte.
extension CallRequest.Canonical: Encodable {
    enum CodingKeys: String, CodingKey {
        case to
        case callerID = "caller_id"
        case dialplan
        case timeoutSeconds = "timeout_seconds"
        case variables, metadata
        case ttlSeconds = "ttl_seconds"
        case statusCallback = "status_callback"
        case statusCallbackEvents = "status_callback_events"
        case machineDetection = "machine_detection"
        case record
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(to, forKey: .to)
        try container.encode(callerID, forKey: .callerID)
        try container.encode(dialplan, forKey: .dialplan)
        try container.encode(timeoutSeconds, forKey: .timeoutSeconds)
        try container.encode(variables, forKey: .variables)
        try container.encode(metadata, forKey: .metadata)
        try container.encode(ttlSeconds, forKey: .ttlSeconds)
        // Absent without a callback: fingerprints of requests from before callbacks stay the same.
        try container.encodeIfPresent(statusCallback, forKey: .statusCallback)
        try container.encodeIfPresent(statusCallbackEvents, forKey: .statusCallbackEvents)
        try container.encodeIfPresent(machineDetection, forKey: .machineDetection)
        if record { try container.encode(true, forKey: .record) }
    }
}
