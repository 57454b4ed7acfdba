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

/// Live status over Server-Sent Events, fed from the status topic, with history replay on reconnect.
@Suite struct EventsTests {
    /// The CallStatusEvent of a frame.
    static func event(_ frame: SSEFrame) throws -> CallStatusEvent {
        try WireCoding.decode(CallStatusEvent.self, from: Array(frame.data.utf8))
    }

    @Test func aSubscriberGetsItsCallsEventsInOrderAndAReconnectLosesNone() async throws {
        try await GatewayHarness.run(environment: ["SSE_HEARTBEAT_SECONDS": "0.5"]) { gateway in
            let (_, token) = try await gateway.user(.viewer)
            _ = try await gateway.statusReader.waitUntilReady()
            let history = HistorySimulator(gateway: gateway)
            let callID = CallID.generate()
            let otherCall = CallID.generate()
            try await gateway.withPublisher { publisher in
                try await history.record(callID: callID, statuses: [.dispatched], publish: publisher)

                // A new subscriber first gets what the history holds, then live events, in order.
                let first = try await SSEConnection.open(
                    port: gateway.port, path: "/api/v1/calls/\(callID)/events", token: token)
                #expect(first.status == .ok)
                #expect(first.headers.first(name: "content-type")?.hasPrefix("text/event-stream") == true)
                try await history.record(callID: otherCall, statuses: [.dispatched], publish: publisher)
                try await history.record(callID: callID, statuses: [.initiated, .ringing], publish: publisher)
                let frames = try await first.next(3)
                #expect(frames.map(\.id) == ["1", "2", "3"])
                #expect(frames.allSatisfy { $0.event == "status" })
                let events = try frames.map(Self.event)
                #expect(events.map(\.status) == [.dispatched, .initiated, .ringing])
                #expect(events.allSatisfy { $0.callID == callID })
                #expect(
                    try await SchemaValidator.validate(
                        frames.map { Array($0.data.utf8) }, against: "call-status-event.v1.json")
                        == [nil, nil, nil])
                try await first.nextHeartbeat()
                await first.close()

                // While disconnected, the call moves on; the reconnect replays exactly what was missed, then
                // continues live.
                try await history.record(callID: callID, statuses: [.answered], publish: publisher)
                let second = try await SSEConnection.open(
                    port: gateway.port, path: "/api/v1/calls/\(callID)/events", token: token, lastEventID: "3")
                #expect(second.status == .ok)
                try await history.record(callID: callID, statuses: [.completed], publish: publisher)
                let resumed = try await second.next(2)
                #expect(resumed.map(\.id) == ["4", "5"])
                #expect(try resumed.map(Self.event).map(\.status) == [.answered, .completed])
                await second.close()

                // An event published but not yet recorded by the history writer still reaches a reconnecting
                // client (from the gateway's recent events), once.
                let lateCall = CallID.generate()
                try await history.record(callID: lateCall, statuses: [.dispatched], publish: publisher)
                let watcher = try await SSEConnection.open(port: gateway.port, path: "/api/v1/events", token: token)
                let late = CallStatusEvent(
                    callID: lateCall, seq: 2, status: .initiated, previousStatus: .dispatched, occurredAt: Date())
                try await publisher.publish(late, traceParent: nil)
                // Once the all-calls stream shows it, the gateway has read it.
                while let frame = try await watcher.next(), frame.id != "\(lateCall):2" {}
                await watcher.close()
                let third = try await SSEConnection.open(
                    port: gateway.port, path: "/api/v1/calls/\(lateCall)/events", token: token, lastEventID: "0")
                let replayed = try await third.next(2)
                #expect(replayed.map(\.id) == ["1", "2"])
                await third.close()
            }
        }
    }

    @Test func theAllCallsStreamCarriesEveryCall() async throws {
        try await GatewayHarness.run { gateway in
            let (_, token) = try await gateway.user(.viewer)
            _ = try await gateway.statusReader.waitUntilReady()
            let stream = try await SSEConnection.open(port: gateway.port, path: "/api/v1/events", token: token)
            #expect(stream.status == .ok)
            let calls = [CallID.generate(), CallID.generate(), CallID.generate()]
            try await gateway.withPublisher { publisher in
                for call in calls {
                    let event = CallStatusEvent(
                        callID: call, seq: 1, status: .dispatched, previousStatus: .queued, occurredAt: Date())
                    try await publisher.publish(event, traceParent: nil)
                    // A redelivered duplicate is not shown twice.
                    try await publisher.publish(event, traceParent: nil)
                }
                let last = CallStatusEvent(
                    callID: calls[0], seq: 2, status: .initiated, previousStatus: .dispatched, occurredAt: Date())
                try await publisher.publish(last, traceParent: nil)
            }
            let frames = try await stream.next(4)
            #expect(Set(frames.map { $0.id ?? "" }) == Set(calls.map { "\($0):1" } + ["\(calls[0]):2"]))
            await stream.close()
        }
    }

    /// What CI's stateful fuzzing met: a stream opened right after the call was accepted, while the history writer
    /// recorded the call between the stream's two reads (not in the organization, then in the history). That is the
    /// caller's own call, not another organization's: it is followed, not refused with a 404.
    @Test func aCallRecordedBetweenTheStreamsTwoReadsIsFollowed() async throws {
        try await GatewayHarness.run { gateway in
            let acme = try await gateway.organization("acme")
            let history = HistorySimulator(gateway: gateway)
            let callID = CallID.generate()
            let repository = RecordedAfterTheFirstRead(store: gateway.store) {
                try await history.record(callID: callID, statuses: [.dispatched])
            }
            let events = EventsController(
                hub: StatusHub(bufferSize: 8, metrics: GatewayMetrics()), repository: repository, heartbeat: .seconds(1)
            )
            let replayed = try await events.replay(callID, after: 0, in: .default)
            #expect(replayed?.map(\.status) == [.dispatched])
            #expect(repository.reads.withLock { $0 } == 2)

            // Another organization's call is still refused, and a call nobody recorded is waited for.
            #expect(try await events.replay(callID, after: 0, in: acme.id) == nil)
            #expect(try await events.replay(CallID.generate(), after: 0, in: .default) == [])
        }
    }

    @Test func aMalformedLastEventIDIsAClientError() async throws {
        try await GatewayHarness.run { gateway in
            let (_, token) = try await gateway.user(.viewer)
            let response = try await gateway.request(
                .get, "/api/v1/calls/\(CallID.generate())/events", token: token, headers: [.lastEventID: "abc"])
            #expect(response.status == .unprocessableContent)
            #expect(response.errorFields == ["Last-Event-ID"])
        }
    }
}

/// The hub's fan-out and its bounded buffers, as pure logic.
@Suite struct StatusHubTests {
    static func event(_ call: CallID, _ seq: Int) -> CallStatusEvent {
        CallStatusEvent(callID: call, seq: seq, status: .ringing, previousStatus: .initiated, occurredAt: Date())
    }

    @Test func aSlowSubscriberIsDroppedWithoutHoldingUpTheOthers() async throws {
        let hub = StatusHub(bufferSize: 8, metrics: GatewayMetrics())
        let call = CallID.generate()
        let dropped = Mutex(false)
        let slow = hub.subscribe(callID: call) { dropped.withLock { $0 = true } }
        let fast = hub.subscribe(callID: nil) {}
        let unrelated = hub.subscribe(callID: CallID.generate()) {}
        let received = Mutex<[Int]>([])
        let reader = Task {
            for await element in fast.elements {
                if case .event(let event, _) = element { received.withLock { $0.append(event.seq) } }
                if received.withLock({ $0.count }) == 50 { break }
            }
        }
        for seq in 1...50 {
            hub.publish(Self.event(call, seq))
            // The fast subscriber reads each event before the next, as a connected client keeping up would.
            while received.withLock({ $0.count }) < seq { try await Task.sleep(for: .milliseconds(1)) }
        }
        await reader.value
        #expect(received.withLock { $0 } == Array(1...50))
        #expect(dropped.withLock { $0 }, "the subscriber that never read was dropped")
        var slowReceived = 0
        for await _ in slow.elements { slowReceived += 1 }
        #expect(slowReceived == 8, "it got its buffer's worth, then its stream ended")
        #expect(hub.subscriberCount == 2)
        hub.unsubscribe(unrelated.id)
        hub.unsubscribe(fast.id)
        #expect(hub.subscriberCount == 0)
    }

    @Test func recentEventsAreOfferedToNewSubscribers() {
        let hub = StatusHub(bufferSize: 8, recentCapacity: 4, metrics: GatewayMetrics())
        let call = CallID.generate()
        let other = CallID.generate()
        for seq in 1...3 { hub.publish(Self.event(call, seq)) }
        for seq in 1...3 { hub.publish(Self.event(other, seq)) }
        let subscription = hub.subscribe(callID: other) {}
        #expect(subscription.recent.map(\.seq) == [1, 2, 3])
        #expect(hub.subscribe(callID: call) {}.recent.map(\.seq) == [3], "only the last 4 events are kept")
        hub.close()
        #expect(hub.subscriberCount == 0)
    }
}

/// The real store, except that the first read of a call in an organization misses and records the call right after
/// (the history writer winning the race against a stream being opened).
final class RecordedAfterTheFirstRead: CallRepository {
    let store: CallStore
    let recordCall: @Sendable () async throws -> Void
    let reads = Mutex(0)

    init(store: CallStore, recordCall: @escaping @Sendable () async throws -> Void) {
        self.store = store
        self.recordCall = recordCall
    }

    func call(id: CallID, in organization: OrganizationID) async throws -> CallRecord? {
        let read = reads.withLock { reads in
            reads += 1
            return reads
        }
        guard read > 1 else {
            try await recordCall()
            return nil
        }
        return try await store.call(id: id, in: organization)
    }

    func organization(ofCall id: CallID) async throws -> OrganizationID? {
        try await store.organization(ofCall: id)
    }

    func timeline(of id: CallID, afterSeq: Int) async throws -> [CallTimelineEntry] {
        try await store.timeline(of: id, afterSeq: afterSeq)
    }

    func listCalls(
        in organization: OrganizationID, filter: CallFilter, limit: Int, cursor: CallCursor?
    ) async throws -> CallPage {
        try await store.listCalls(in: organization, filter: filter, limit: limit, cursor: cursor)
    }

    func reserveIdempotencyKey(
        userID: UUID, key: String, fingerprint: String, callID: CallID
    ) async throws -> IdempotencyReservation {
        try await store.reserveIdempotencyKey(userID: userID, key: key, fingerprint: fingerprint, callID: callID)
    }

    func releaseIdempotencyKey(userID: UUID, key: String) async throws {
        try await store.releaseIdempotencyKey(userID: userID, key: key)
    }

    func ping() async throws {
        try await store.ping()
    }
}
