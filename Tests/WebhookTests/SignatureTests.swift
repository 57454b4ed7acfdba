import CallDomain
import Foundation
import TestSupport
import Testing
import Webhooks

/// Standard Webhooks signing and verifying, against the specification's own example and its reference library.
@Suite struct SignatureTests {
    /// The example of the Standard Webhooks specification and its reference libraries' tests.
    static let secret = WebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")!
    static let id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    static let timestamp: Int64 = 1_614_265_330
    static let body = Array(#"{"test": 2432232314}"#.utf8)

    @Test("the specification's example signs to its published signature")
    func specificationExample() {
        let header = WebhookSignature.sign(
            id: Self.id, timestamp: Self.timestamp, body: Self.body, secrets: [Self.secret])
        #expect(header == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }

    @Test("a message verifies; a changed body, id or timestamp does not")
    func verification() throws {
        let now = Date(timeIntervalSince1970: TimeInterval(Self.timestamp))
        let signature = WebhookSignature.sign(
            id: Self.id, timestamp: Self.timestamp, body: Self.body, secrets: [Self.secret])
        try WebhookSignature.verify(
            id: Self.id, timestamp: String(Self.timestamp), signatures: signature, body: Self.body,
            secrets: [Self.secret], now: now)
        #expect(throws: WebhookSignature.VerificationError.noMatchingSignature) {
            try WebhookSignature.verify(
                id: Self.id, timestamp: String(Self.timestamp), signatures: signature,
                body: Array(#"{"test": 2432232315}"#.utf8), secrets: [Self.secret], now: now)
        }
        #expect(throws: WebhookSignature.VerificationError.noMatchingSignature) {
            try WebhookSignature.verify(
                id: "msg_other", timestamp: String(Self.timestamp), signatures: signature, body: Self.body,
                secrets: [Self.secret], now: now)
        }
        #expect(throws: WebhookSignature.VerificationError.noMatchingSignature) {
            try WebhookSignature.verify(
                id: Self.id, timestamp: String(Self.timestamp + 1), signatures: signature, body: Self.body,
                secrets: [Self.secret], now: now)
        }
        #expect(throws: WebhookSignature.VerificationError.missingHeaders) {
            try WebhookSignature.verify(
                id: Self.id, timestamp: nil, signatures: signature, body: Self.body, secrets: [Self.secret], now: now)
        }
    }

    @Test("a timestamp more than five minutes from the receiver's clock is refused (replays)")
    func tolerance() throws {
        let signature = WebhookSignature.sign(
            id: Self.id, timestamp: Self.timestamp, body: Self.body, secrets: [Self.secret])
        let sent = Date(timeIntervalSince1970: TimeInterval(Self.timestamp))
        for offset in [-299.0, 299.0] {
            try WebhookSignature.verify(
                id: Self.id, timestamp: String(Self.timestamp), signatures: signature, body: Self.body,
                secrets: [Self.secret], now: sent.addingTimeInterval(offset))
        }
        for offset in [-301.0, 301.0] {
            #expect(throws: WebhookSignature.VerificationError.timestampOutOfTolerance) {
                try WebhookSignature.verify(
                    id: Self.id, timestamp: String(Self.timestamp), signatures: signature, body: Self.body,
                    secrets: [Self.secret], now: sent.addingTimeInterval(offset))
            }
        }
    }

    @Test("during a rotation a message carries a signature per secret; a receiver with either one accepts it")
    func rotation() throws {
        let old = WebhookSecret.generate()
        let new = WebhookSecret.generate()
        let header = WebhookSignature.sign(id: "m", timestamp: Self.timestamp, body: Self.body, secrets: [new, old])
        #expect(header.split(separator: " ").count == 2)
        let now = Date(timeIntervalSince1970: TimeInterval(Self.timestamp))
        for secrets in [[old], [new], [old, new]] {
            try WebhookSignature.verify(
                id: "m", timestamp: String(Self.timestamp), signatures: header, body: Self.body, secrets: secrets,
                now: now)
        }
        #expect(throws: WebhookSignature.VerificationError.noMatchingSignature) {
            try WebhookSignature.verify(
                id: "m", timestamp: String(Self.timestamp), signatures: header, body: Self.body,
                secrets: [WebhookSecret.generate()], now: now)
        }
    }

    @Test("secrets are whsec_ and the base64 of 24 to 64 bytes; a secret never prints itself")
    func secrets() {
        let secret = WebhookSecret.generate()
        #expect(secret.text.hasPrefix("whsec_"))
        #expect(WebhookSecret(secret.text) == secret)
        #expect(secret.key.count == 32)
        #expect(WebhookSecret("whsec_" + Data(repeating: 1, count: 16).base64EncodedString()) == nil)
        #expect(WebhookSecret("whsec_not base64!") == nil)
        #expect(!"\(secret)".contains(secret.text.dropFirst(6)))
    }

    @Test("deliveries verify with the reference library (PyPI standardwebhooks), and its signatures verify here")
    func referenceLibraryInteroperability() async throws {
        let secret = WebhookSecret.generate()
        let event = CallStatusEvent(
            callID: .generate(), seq: 3, status: .answered, previousStatus: .ringing, occurredAt: Date(),
            to: "+15550100", metadata: .empty, organizationID: .default)
        let body = try WebhookPayload.body(for: event)
        let id = UUID().uuidString.lowercased()
        let timestamp = Int64(Date().timeIntervalSince1970)
        let signature = WebhookSignature.sign(
            id: id, timestamp: timestamp, body: Array(body.utf8), secrets: [WebhookSecret.generate(), secret])
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swh-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("message.json")
        let message: [String: String] = [
            "secret": secret.text, "id": id, "timestamp": String(timestamp), "signature": signature, "body": body,
        ]
        try JSONSerialization.data(withJSONObject: message).write(to: input)
        let script = """
            import json, sys, datetime
            from standardwebhooks.webhooks import Webhook
            m = json.load(open(sys.argv[1]))
            hook = Webhook(m["secret"])
            data = hook.verify(m["body"], {"webhook-id": m["id"], "webhook-timestamp": m["timestamp"],
                                           "webhook-signature": m["signature"]})
            assert data["type"] == "call.answered" and data["data"]["seq"] == 3, data
            try:
                hook.verify(m["body"] + " ", {"webhook-id": m["id"], "webhook-timestamp": m["timestamp"],
                                              "webhook-signature": m["signature"]})
                sys.exit("a changed body verified")
            except Exception:
                pass
            when = datetime.datetime.now(tz=datetime.timezone.utc)
            print(json.dumps({"signature": hook.sign("msg_from_python", when, m["body"]),
                              "timestamp": str(int(when.timestamp()))}))
            """
        let (status, output) = try await Python.run(["-c", script, input.path])
        try #require(status == 0, "the reference library refused our delivery: \(output)")
        let answer = try #require(
            try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: String], "\(output)")
        try WebhookSignature.verify(
            id: "msg_from_python", timestamp: answer["timestamp"], signatures: answer["signature"],
            body: Array(body.utf8), secrets: [secret])
    }
}

/// The retry schedule and the circuit breaker's cool-downs.
@Suite struct ScheduleTests {
    @Test("attempts at 0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h, then none")
    func schedule() {
        let waits = (0..<8).map { WebhookRetrySchedule.delay(after: $0) }
        #expect(
            waits == [
                .seconds(5), .seconds(300), .seconds(1800), .seconds(7200), .seconds(18_000), .seconds(36_000),
                .seconds(36_000), nil,
            ])
        #expect(WebhookRetrySchedule.attempts == 8)
    }

    @Test("event types are call.<status> for every status but queued, and the test type")
    func eventTypes() {
        #expect(WebhookEventType(rawValue: "call.answered") == WebhookEventType(status: .answered))
        #expect(WebhookEventType(rawValue: "call.queued") == nil)
        #expect(WebhookEventType(rawValue: "call.nonsense") == nil)
        #expect(WebhookEventType.subscribable.count == CallStatus.allCases.count - 1)
        #expect(WebhookEventType.test.status == nil)
    }
}
