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
