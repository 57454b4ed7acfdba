import CallDomain
import CallMessaging
import CallStore
import EmbeddedKafka
import Foundation
import HTTPTypes
import HummingbirdTesting
import Kafka
import NIOCore
import NIOHTTP1
import Synchronization
import TestSupport
import Testing

@testable import APIGateway

/// Placing, querying and hanging up calls, with the real broker and database.
@Suite struct CallsTests {
    // MARK: - Accepting

    @Test func anAcceptedCallIsInKafkaWithItsHeadersAndMatchesTheSchema() async throws {
        try await GatewayHarness.run { gateway in
            let (user, token) = try await gateway.user(.operator, name: "alice")
            let requestID = "0af7651916cd43dd8448eb211c80319c"
            let response = try await gateway.request(
                .post, "/api/v1/calls", token: token,
                json: #"""
                    {"to":"+4930123456","caller_id":{"name":"Acme","number":"+4930999"},"context":"outbound",
                     "extension":"100","timeout_seconds":25,"ttl_seconds":60,"variables":{"CAMPAIGN":"x1"},
                     "metadata":{"crm":"C-1"}}
                    """#,
                headers: [.requestID: requestID])
            #expect(response.status == .accepted)
            #expect(response.headers[.requestID] == requestID)
            let id = try #require(response.json["id"] as? String)
            #expect(response.headers[.location] == "/api/v1/calls/\(id)")
            #expect(response.json["status"] as? String == "queued")
            #expect(response.json["requested_by"] as? String == "alice")
            #expect(CallID(id)?.timestamp != nil, "a call without a key gets a time-ordered UUIDv7")

            let messages = try await gateway.messages(on: gateway.topics.originate)
            #expect(messages.count == 1)
            let message = try #require(messages.first)
            #expect(message.keyString == id)
            let (command, attributes) = try CallMessageDecoder.originate(message)
            #expect(command.callID.description == id)
            #expect(command.to.value == "+4930123456")
            #expect(command.callerID == (try CallerID(name: "Acme", number: "+4930999")))
            #expect(command.dialplan == (try DialplanTarget(context: "outbound", extension: "100", priority: 1)))
            #expect(command.timeoutSeconds == 25)
            #expect(abs(command.expiresAt.timeIntervalSince(command.requestedAt) - 60) < 0.01)
            #expect(command.variables.values == ["CAMPAIGN": "x1"])
            #expect(command.requestedBy == "alice")
            #expect(command.requestID == requestID)
            #expect(attributes.source == "/api-gateway/\(gateway.configuration.instanceID)")
            #expect(attributes.traceParent.flatMap(TraceContext.traceID(fromTraceParent:)) == requestID)
            #expect(message.header("content-type").map { String(decoding: $0, as: UTF8.self) } == "application/json")
            #expect(try await SchemaValidator.validate([message.value], against: "originate-command.v1.json") == [nil])
            _ = user
        }
    }

    @Test func defaultsComeFromTheConfiguration() async throws {
        try await GatewayHarness.run(environment: ["DEFAULT_TIMEOUT": "42", "CALL_TTL_SECONDS": "120"]) { gateway in
            let (_, token) = try await gateway.user(.operator)
            #expect(try await gateway.postCall(#"{"to":"123"}"#, token: token).status == .accepted)
            let (command, _) = try CallMessageDecoder.originate(
                try #require(try await gateway.messages(on: gateway.topics.originate).first))
            #expect(command.timeoutSeconds == 42)
            #expect(abs(command.expiresAt.timeIntervalSince(command.requestedAt) - 120) < 0.01)
            #expect(command.dialplan == nil && command.callerID == nil)
        }
    }

    // MARK: - Reading

    @Test func aCallIsFoundOnceTheHistoryRecordedItWithItsTimeline() async throws {
        try await GatewayHarness.run { gateway in
            let (_, token) = try await gateway.user(.viewer)
            let (_, operatorToken) = try await gateway.user(.operator)
            let accepted = try await gateway.postCall(#"{"to":"555123","metadata":{"k":"v"}}"#, token: operatorToken)
            let id = try #require(CallID(accepted.json["id"] as? String ?? ""))

            // Accepted but not yet recorded by the history writer: 404 (documented).
            let early = try await gateway.request(.get, "/api/v1/calls/\(id)", token: token)
            #expect(early.status == .notFound)
            #expect(early.problemType == "https://outbound-dialer.example/problems/not-found")

            try await HistorySimulator(gateway: gateway).record(
                callID: id, to: "555123", statuses: [.dispatched, .initiated, .ringing])
            let found = try await gateway.request(.get, "/api/v1/calls/\(id)", token: token)
            #expect(found.status == .ok)
            #expect(found.json["status"] as? String == "ringing")
            #expect(found.json["to"] as? String == "555123")
            #expect((found.json["metadata"] as? [String: Any])?["k"] as? String == "v")
            let timeline = found.json["timeline"] as? [[String: Any]] ?? []
            #expect(
                timeline.compactMap { $0["status"] as? String } == ["queued", "dispatched", "initiated", "ringing"])
            #expect(timeline.compactMap { $0["seq"] as? Int } == [0, 1, 2, 3])

            let badID = try await gateway.request(.get, "/api/v1/calls/not-a-uuid", token: token)
            #expect(badID.status == .unprocessableContent)
            #expect(badID.errorFields == ["id"])
        }
    }

    @Test func listingFiltersAndPagesWithoutGapsOrRepeats() async throws {
        try await GatewayHarness.run { gateway in
            let (_, token) = try await gateway.user(.viewer)
            let history = HistorySimulator(gateway: gateway)
            var ids: [CallID] = []
            let base = Date()
            for index in 0..<7 {
                let id = CallID.generate(now: base.addingTimeInterval(Double(index) - 100))
                ids.append(id)
                try await history.record(callID: id, to: index.isMultiple(of: 2) ? "111222" : "333444", statuses: [])
            }
            try await history.record(callID: ids[0], statuses: [.dispatched])

            var seen: [String] = []
            var cursor: String?
            repeat {
                let query = "/api/v1/calls?limit=3" + (cursor.map { "&cursor=\($0)" } ?? "")
                let page = try await gateway.request(.get, query, token: token)
                #expect(page.status == .ok)
                let calls = page.json["calls"] as? [[String: Any]] ?? []
                #expect(calls.count <= 3)
                #expect(calls.allSatisfy { $0["timeline"] == nil })
                seen += calls.compactMap { $0["id"] as? String }
                cursor = page.json["next_cursor"] as? String
            } while cursor != nil
            #expect(seen == ids.reversed().map(\.description), "newest first, every call once")

            let filtered = try await gateway.request(.get, "/api/v1/calls?to=111222&status=queued", token: token)
            let filteredIDs = (filtered.json["calls"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            #expect(filteredIDs == [ids[6], ids[4], ids[2]].map(\.description))

            let after = WireCoding.formatTimestamp(base.addingTimeInterval(-97.5))
            let before = WireCoding.formatTimestamp(base.addingTimeInterval(-95.5))
            let ranged = try await gateway.request(
                .get, "/api/v1/calls?created_after=\(after)&created_before=\(before)", token: token)
            #expect((ranged.json["calls"] as? [[String: Any]])?.count == 2)

            let bad = try await gateway.request(
                .get, "/api/v1/calls?status=lost&limit=500&created_after=yesterday&to=1%262&colour=red", token: token)
            #expect(bad.status == .unprocessableContent)
            #expect(Set(bad.errorFields) == ["status", "limit", "created_after", "to", "colour"])
            let zero = try await gateway.request(.get, "/api/v1/calls?limit=0", token: token)
            #expect(zero.status == .unprocessableContent)
            let cursorJunk = try await gateway.request(.get, "/api/v1/calls?cursor=%00%01garbage", token: token)
            #expect(cursorJunk.status == .badRequest)
            #expect(cursorJunk.headers[.contentType] == "application/problem+json")
        }
    }

    // MARK: - Hangup

    @Test func hangupCancelsQueuedCallsHangsUpLiveOnesAndRefusesEndedOnes() async throws {
        try await GatewayHarness.run { gateway in
            let (_, token) = try await gateway.user(.operator, name: "bob")
            let history = HistorySimulator(gateway: gateway)
            let queued = CallID.generate()
            let live = CallID.generate()
            let ended = CallID.generate()
            try await history.record(callID: queued, statuses: [])
            try await history.record(callID: live, statuses: [.dispatched, .initiated, .ringing])
            try await history.record(callID: ended, statuses: [.dispatched, .initiated, .busy])

            let unknown = try await gateway.request(.post, "/api/v1/calls/\(CallID.generate())/hangup", token: token)
            #expect(unknown.status == .notFound)
            let over = try await gateway.request(.post, "/api/v1/calls/\(ended)/hangup", token: token)
            #expect(over.status == .conflict)
            #expect(over.problemType == "https://outbound-dialer.example/problems/call-ended")

            let cancel = try await gateway.request(.post, "/api/v1/calls/\(queued)/hangup", token: token)
            #expect(cancel.status == .accepted)
            let hangup = try await gateway.request(
                .post, "/api/v1/calls/\(live)/hangup", token: token, headers: [.requestID: "hangup-req-1"])
            #expect(hangup.status == .accepted)

            let messages = try await gateway.messages(on: gateway.topics.control)
            let commands = try messages.map { try CallMessageDecoder.control($0) }
            #expect(commands.count == 2)
            guard case .cancel(let cancelCommand)? = commands.first?.0 else {
                Issue.record("expected a cancel first, got \(commands)")
                return
            }
            #expect(cancelCommand.callID == queued && cancelCommand.requestedBy == "bob")
            guard case .hangup(let hangupCommand)? = commands.last?.0 else {
                Issue.record("expected a hangup second, got \(commands)")
                return
            }
            #expect(hangupCommand.callID == live && hangupCommand.requestID == "hangup-req-1")
            #expect(messages.map(\.keyString) == [queued.description, live.description])
            #expect(try await SchemaValidator.validate([messages[0].value], against: "cancel-command.v1.json") == [nil])
            #expect(try await SchemaValidator.validate([messages[1].value], against: "hangup-command.v1.json") == [nil])
        }
    }

    // MARK: - Idempotency

    @Test func twentyConcurrentRequestsWithOneKeyMakeOneCallAndOneCommand() async throws {
        try await GatewayHarness.run { gateway in
            let (user, token) = try await gateway.user(.operator)
            let body = #"{"to":"+4930123456","metadata":{"attempt":1}}"#
            let responses = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
                for _ in 0..<20 {
                    group.addTask {
                        let response = try await gateway.postCall(body, token: token, idempotencyKey: "order-4711")
                        return (Int(response.status.code), response.json["id"] as? String)
                    }
                }
                var collected: [(Int, String?)] = []
                for try await response in group { collected.append(response) }
                return collected
            }
            let expected = CallID.derived(userID: user.id, idempotencyKey: "order-4711").description
            #expect(responses.allSatisfy { $0.0 == 202 || $0.0 == 200 }, "\(responses)")
            #expect(Set(responses.compactMap(\.1)) == [expected])
            let messages = try await gateway.messages(on: gateway.topics.originate)
            #expect(messages.count == 1, "one command on the topic, got \(messages.count)")
            #expect(messages.first?.keyString == expected)

            // A later replay whose call is in the history answers its current state, without publishing again.
            try await HistorySimulator(gateway: gateway).record(
                callID: CallID(expected)!, to: "+4930123456", statuses: [.dispatched])
            let replay = try await gateway.postCall(
                #"{"metadata":{"attempt":1},"to":"+4930123456"}"#, token: token, idempotencyKey: "order-4711")
            #expect(replay.headers[.idempotentReplayed] == "true")
            #expect(replay.json["id"] as? String == expected)
            #expect(try await gateway.messages(on: gateway.topics.originate).count == 1)

            // The same key with another body is a conflict; another user's same key is another call.
            let conflict = try await gateway.postCall(
                #"{"to":"+4930999999"}"#, token: token, idempotencyKey: "order-4711")
            #expect(conflict.status == .conflict)
            #expect(conflict.problemType == "https://outbound-dialer.example/problems/idempotency-conflict")
            let (other, otherToken) = try await gateway.user(.operator)
            let otherCall = try await gateway.postCall(body, token: otherToken, idempotencyKey: "order-4711")
            #expect(otherCall.status == .accepted)
            #expect(
                otherCall.json["id"] as? String
                    == CallID.derived(userID: other.id, idempotencyKey: "order-4711").description)
        }
    }

    @Test func aReplayOfAKeyFromAnotherInstanceRepublishesUnderTheSameID() async throws {
        // A key reserved (by another gateway instance) whose call the history does not hold yet: the command is
        // published again under the derived id, which the workers claim once.
        try await GatewayHarness.run { gateway in
            let (user, token) = try await gateway.user(.operator)
            let body = #"{"to":"123456"}"#
            let request = try CallRequest(
                body: ["to": .string("123456")], allowedContexts: [], defaultTimeoutSeconds: 30, defaultTTLSeconds: 300)
            let id = CallID.derived(userID: user.id, idempotencyKey: "k-1")
            let reservation = try await gateway.store.reserveIdempotencyKey(
                userID: user.id, key: "k-1", fingerprint: request.fingerprint, callID: id)
            #expect(reservation == .reserved)
            let response = try await gateway.postCall(body, token: token, idempotencyKey: "k-1")
            #expect(response.status == .accepted)
            #expect(response.headers[.idempotentReplayed] == "true")
            #expect(response.json["id"] as? String == id.description)
            let keys = try await gateway.messages(on: gateway.topics.originate).map(\.keyString)
            #expect(keys == [id.description])

            // A key whose call the history already holds: its current state (200), nothing published.
            let recorded = CallID.derived(userID: user.id, idempotencyKey: "k-2")
            _ = try await gateway.store.reserveIdempotencyKey(
                userID: user.id, key: "k-2", fingerprint: request.fingerprint, callID: recorded)
            try await HistorySimulator(gateway: gateway).record(callID: recorded, statuses: [.dispatched, .initiated])
            let fromHistory = try await gateway.postCall(body, token: token, idempotencyKey: "k-2")
            #expect(fromHistory.status == .ok)
            #expect(fromHistory.headers[.idempotentReplayed] == "true")
            #expect(fromHistory.json["status"] as? String == "initiated")
            #expect(fromHistory.json["id"] as? String == recorded.description)
            #expect(try await gateway.messages(on: gateway.topics.originate).count == 1)
        }
    }

    // MARK: - Broker down

    @Test func brokerDownAnswers503WithinTheBoundAndRecovers() async throws {
        try await GatewayHarness.run(environment: ["PUBLISH_TIMEOUT_SECONDS": "2"]) { gateway in
            let (user, token) = try await gateway.user(.operator)
            #expect(try await gateway.postCall(#"{"to":"123"}"#, token: token).status == .accepted)

            try gateway.cluster.setBrokersDown()
            let start = ContinuousClock.now
            let refused = try await gateway.postCall(#"{"to":"124"}"#, token: token)
            let elapsed = ContinuousClock.now - start
            #expect(refused.status == .serviceUnavailable)
            #expect(refused.problemType == "https://outbound-dialer.example/problems/kafka-unavailable")
            #expect(refused.headers[.retryAfter] == "2")
            // The bound is 2 s; generous slack for a loaded machine, but far from a hang.
            #expect(elapsed < .seconds(10), "answered after \(elapsed)")

            // A keyed request refused while the broker is down releases its key ...
            let keyed = try await gateway.postCall(#"{"to":"125"}"#, token: token, idempotencyKey: "retry-me")
            #expect(keyed.status == .serviceUnavailable)
            let ready = try await gateway.request(.get, "/ready")
            #expect(ready.status == .serviceUnavailable)

            try gateway.cluster.setBrokersUp()
            try await eventually("a call is accepted after the broker is back") {
                try await gateway.postCall(#"{"to":"126"}"#, token: token).status == .accepted
            }
            // ... so the retry with the same key succeeds, under the id derived from the key.
            let retried = try await gateway.postCall(#"{"to":"125"}"#, token: token, idempotencyKey: "retry-me")
            #expect(retried.status == .accepted)
            #expect(
                retried.json["id"] as? String == CallID.derived(userID: user.id, idempotencyKey: "retry-me").description
            )
            #expect(retried.headers[.idempotentReplayed] == nil)
            try await eventually("ready again") { try await gateway.request(.get, "/ready").status == .ok }
        }
    }
}

/// Plays the dialer and the history writer: records calls and applies status events to PostgreSQL, and
/// publishes the events on the status topic when asked.
struct HistorySimulator {
    let gateway: Gateway

    /// Records the call as queued (if new) and applies `statuses` in order after what it has; returns the events.
    @discardableResult
    func record(
        callID: CallID, to: String = "123456", statuses: [CallStatus], publish: CallMessagePublisher? = nil,
        organization: OrganizationID = .default
    ) async throws -> [CallStatusEvent] {
        let now = callID.timestamp ?? Date()
        let command = OriginateCommand(
            callID: callID, requestedAt: now, expiresAt: now.addingTimeInterval(300), to: try DialTarget(to),
            metadata: try ClientMetadata(["k": .string("v")]), requestedBy: "simulator",
            organizationID: organization)
        try await gateway.store.recordQueued([command])
        let current = try await gateway.store.call(id: callID)
        var previous = current?.status ?? .queued
        var seq = current?.seq ?? 0
        var events: [CallStatusEvent] = []
        for status in statuses {
            seq += 1
            let event = CallStatusEvent(
                callID: callID, seq: seq, status: status, previousStatus: previous, occurredAt: Date(),
                nodeID: "node-a", workerID: "worker-1", channelID: callID.description, to: to,
                hangupCause: status.isTerminal ? HangupCause(code: 16, text: "Normal Clearing") : nil,
                metadata: command.metadata, organizationID: organization)
            if let publish { try await publish.publish(event, traceParent: nil) }
            #expect(try await gateway.store.apply(event) == .applied)
            events.append(event)
            previous = status
        }
        return events
    }
}
