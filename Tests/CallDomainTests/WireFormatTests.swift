import CallDomain
import Foundation
import TestSupport
import Testing

/// Round trips of every message type, and every produced document checked against its published JSON Schema.
@Suite struct WireFormatTests {
    static let now = Date(timeIntervalSince1970: 1_795_000_000.123)

    static func originate() throws -> OriginateCommand {
        OriginateCommand(
            callID: CallID.generate(now: now), requestedAt: now, expiresAt: now.addingTimeInterval(300),
            to: try DialTarget("+15550100001"), callerID: try CallerID(name: "Acme Support", number: "+15550100"),
            dialplan: try DialplanTarget(context: "outbound", extension: "agents", priority: 1), timeoutSeconds: 30,
            variables: try ChannelVariables(["CAMPAIGN": "c-42", "ATTEMPT": "1"]),
            metadata: try ClientMetadata(["crm_id": .string("abc"), "tags": .array([.string("vip"), .number(3)])]),
            requestedBy: "operator1", requestID: TraceContext.newRequestID())
    }

    static func events(for callID: CallID) -> [CallStatusEvent] {
        [
            CallStatusEvent(
                callID: callID, seq: 1, status: .dispatched, previousStatus: .queued, occurredAt: now, nodeID: "node-a",
                workerID: "w1", channelID: callID.description, to: "+15550100001"),
            CallStatusEvent(
                callID: callID, seq: 4, status: .completed, previousStatus: .answered, occurredAt: now,
                nodeID: "node-a", workerID: "w1", channelID: callID.description, to: "+15550100001",
                hangupCause: HangupCause(code: 16, text: "Normal Clearing"), answeredAt: now.addingTimeInterval(-12),
                endedAt: now, durationSeconds: 12, metadata: try! ClientMetadata(["crm_id": .string("abc")])),
            CallStatusEvent(
                callID: callID, seq: 3, status: .failed, previousStatus: .ringing, occurredAt: now,
                hangupCause: HangupCause(code: 34, text: "Circuit/channel congestion"), failureReason: .congestion,
                detail: "dialstatus CONGESTION", endedAt: now),
        ]
    }

    @Test func originateCommandRoundTrips() throws {
        let command = try Self.originate()
        let decoded = try WireCoding.decode(OriginateCommand.self, from: try WireCoding.encode(command))
        #expect(decoded == command)
    }

    @Test func minimalOriginateCommandRoundTrips() async throws {
        let command = OriginateCommand(
            callID: .generate(), requestedAt: Self.now, expiresAt: Self.now, to: try DialTarget("911"),
            requestedBy: "u")
        let bytes = try WireCoding.encode(command)
        #expect(try WireCoding.decode(OriginateCommand.self, from: bytes) == command)
        #expect(try await SchemaValidator.validate([bytes], against: "originate-command.v1.json") == [nil])
    }

    @Test func decodingRevalidatesInjectedValues() throws {
        var json = String(decoding: try WireCoding.encode(try Self.originate()), as: UTF8.self)
        json = json.replacingOccurrences(of: "\"+15550100001\"", with: "\"123&PJSIP/900@evil\"")
        #expect(throws: DecodingError.self) { try WireCoding.decode(OriginateCommand.self, from: Array(json.utf8)) }
    }

    @Test func statusEventsRoundTripAndMatchTheSchema() async throws {
        let events = Self.events(for: .generate())
        let encoded = try events.map { try WireCoding.encode($0) }
        for (event, bytes) in zip(events, encoded) {
            #expect(try WireCoding.decode(CallStatusEvent.self, from: bytes) == event)
        }
        #expect(try await SchemaValidator.validate(encoded, against: "call-status-event.v1.json") == [nil, nil, nil])
    }

    @Test func originateCommandMatchesTheSchema() async throws {
        let bytes = try WireCoding.encode(try Self.originate())
        #expect(try await SchemaValidator.validate([bytes], against: "originate-command.v1.json") == [nil])
    }

    @Test func theSchemaRejectsWhatTheDomainRejects() async throws {
        var json = String(decoding: try WireCoding.encode(try Self.originate()), as: UTF8.self)
        json = json.replacingOccurrences(of: "\"+15550100001\"", with: "\"1,2\"")
        let result = try await SchemaValidator.validate([Array(json.utf8)], against: "originate-command.v1.json")
        #expect(result[0] != nil)
    }

    @Test func controlCommandsRoundTripAndMatchTheSchemas() async throws {
        let hangup = ControlCommand.hangup(
            HangupCommand(callID: .generate(), requestedAt: Self.now, requestedBy: "op", requestID: "r1"))
        let cancel = ControlCommand.cancel(CancelCommand(callID: .generate(), requestedAt: Self.now, requestedBy: "op"))
        for command in [hangup, cancel] {
            let decoded = try ControlCommand.decode(eventType: command.eventType, payload: try command.encoded())
            #expect(decoded == command)
        }
        #expect(try await SchemaValidator.validate([try hangup.encoded()], against: "hangup-command.v1.json") == [nil])
        #expect(try await SchemaValidator.validate([try cancel.encoded()], against: "cancel-command.v1.json") == [nil])
        #expect(throws: WireError.self) { try ControlCommand.decode(eventType: "other", payload: try hangup.encoded()) }
    }

    @Test func timestampsUseUTCWithMilliseconds() {
        #expect(WireCoding.formatTimestamp(Self.now) == "2026-11-18T11:06:40.123Z")
        #expect(WireCoding.parseTimestamp("2026-11-18T11:06:40.123Z") == Self.now)
        #expect(WireCoding.parseTimestamp("2026-11-18T12:06:40.123+01:00") == Self.now)
        // Asterisk writes offsets without a colon.
        #expect(WireCoding.parseTimestamp("2026-11-18T11:06:40.123+0000") == Self.now)
        #expect(WireCoding.parseTimestamp("2026-11-18T11:06:40Z") == Date(timeIntervalSince1970: 1_795_000_000))
        #expect(WireCoding.formatTimestamp(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        for bad in [
            "yesterday", "", "2026-13-01T00:00:00Z", "2026-11-18T11:06:40", "2026-11-18T11:06:40.Z",
            "2026-11-18 11:06:40Z", "2026-11-18T11:06:40.123+5",
        ] {
            #expect(WireCoding.parseTimestamp(bad) == nil, "\(bad)")
        }
    }

    @Test func cloudEventHeadersRoundTrip() {
        let attributes = CloudEventAttributes(
            id: "e1", source: "/api-gateway/h1", type: OriginateCommand.eventType, time: Self.now, subject: "c1",
            traceParent: TraceContext.traceParent(requestID: "0123456789abcdef0123456789abcdef"))
        let headers = attributes.headers
        #expect(headers.contains { $0.key == "ce_specversion" && $0.value == "1.0" })
        #expect(headers.contains { $0.key == "content-type" && $0.value == "application/json" })
        #expect(CloudEventAttributes(headers: headers) == attributes)
        #expect(TraceContext.traceID(fromTraceParent: attributes.traceParent!) == "0123456789abcdef0123456789abcdef")
        #expect(CloudEventAttributes(headers: [("ce_id", "x")]) == nil)
    }

    @Test func requestIDsThatAreNotHexAreHashedIntoTraceIDs() {
        let traceID = TraceContext.traceID(for: "client-chosen id")
        #expect(traceID.count == 32)
        #expect(traceID == TraceContext.traceID(for: "client-chosen id"))
    }
}

@Suite struct CallIDTests {
    @Test func idsAreVersion7AndTimeOrdered() {
        let earlier = CallID.generate(now: Date(timeIntervalSince1970: 1_000))
        let later = CallID.generate(now: Date(timeIntervalSince1970: 1_000.002))
        #expect(earlier < later)
        #expect(earlier.description.count == 36)
        #expect(Array(earlier.description)[14] == "7")
        #expect(earlier.timestamp == Date(timeIntervalSince1970: 1_000))
        #expect(CallID(earlier.description) == earlier)
    }

    @Test func derivedIDsDependOnUserAndKeyOnly() {
        let user = UUID()
        let first = CallID.derived(userID: user, idempotencyKey: "order-17")
        #expect(first == CallID.derived(userID: user, idempotencyKey: "order-17"))
        #expect(first != CallID.derived(userID: user, idempotencyKey: "order-18"))
        #expect(first != CallID.derived(userID: UUID(), idempotencyKey: "order-17"))
        #expect(Array(first.description)[14] == "8")
    }

    @Test func generatedIDsCarryTheirVariantAndDoNotRepeat() {
        let ids = (0..<10_000).map { _ in CallID.generate(now: Date(timeIntervalSince1970: 1_000)) }
        #expect(Set(ids).count == ids.count, "same millisecond, so only the random bits tell them apart")
        for id in ids.prefix(100) {
            #expect(Array(id.description)[14] == "7")
            #expect("89ab".contains(Array(id.description)[19]))
        }
    }

    @Test func randomUUIDsAreVersion4AndDoNotRepeat() {
        let ids = (0..<10_000).map { _ in UUID.systemRandom() }
        #expect(Set(ids).count == ids.count)
        for id in ids.prefix(100) {
            let text = id.uuidString.lowercased()
            #expect(Array(text)[14] == "4")
            #expect("89ab".contains(Array(text)[19]))
        }
        // Every random bit varies: across many ids no bit outside the version and variant is fixed.
        var ones = [Int](repeating: 0, count: 128)
        for id in ids {
            withUnsafeBytes(of: id.uuid) { bytes in
                for bit in 0..<128 where bytes[bit / 8] & (0x80 >> UInt8(bit % 8)) != 0 { ones[bit] += 1 }
            }
        }
        let fixed: Set<Int> = [48, 49, 50, 51, 64, 65]
        for bit in 0..<128 where !fixed.contains(bit) {
            #expect((3_000...7_000).contains(ones[bit]), "bit \(bit) set in \(ones[bit]) of 10,000")
        }
    }

    @Test func parsingRefusesNonUUIDs() {
        #expect(CallID("not-a-uuid") == nil)
        #expect(CallID("") == nil)
        #expect(CallID("'; DROP TABLE calls; --") == nil)
    }
}
