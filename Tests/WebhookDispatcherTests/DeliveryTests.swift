import CallDomain
import CallStore
import DevStack
import Foundation
import PostgresNIO
import Synchronization
import TestSupport
import Testing
import Webhooks

@testable import WebhookDispatcher

/// The dispatcher against real PostgreSQL, the embedded Kafka broker and HTTP receivers on loopback.
@Suite(.timeLimit(.minutes(4)))
struct DeliveryTests {
    @Test("status events become signed webhooks with seq, for subscriptions and for the call's own status_callback")
    func deliversSignedEvents() async throws {
        try await DispatcherTestEnvironment.run { environment in
            try await environment.withReceiver { receiver, url in
                let (organization, endpoint, secret) = try await environment.subscribe(url: url + "/all")
                let callbackSecret = WebhookSecret.generate()
                _ = try await environment.store.rotateWebhookSecret(
                    owner: organization.uuid, in: organization, secret: callbackSecret, overlap: .seconds(60),
                    at: Date(), by: AuditActor(name: "test"))
                receiver.setSecrets([secret, callbackSecret])
                // The call asked for its own callback, for `answered` and the final statuses.
                let callID = CallID.generate()
                try await environment.store.recordQueued([
                    OriginateCommand(
                        callID: callID, requestedAt: Date(), expiresAt: Date().addingTimeInterval(60),
                        to: try DialTarget("+15550100"), requestedBy: "test", organizationID: organization,
                        statusCallback: try StatusCallback(url: url + "/call", events: [.answered, .completed]))
                ])
                try await environment.withDispatcher(environment.configuration()) {
                    let statuses: [(CallStatus, CallStatus)] = [
                        (.dispatched, .queued), (.ringing, .dispatched), (.answered, .ringing), (.completed, .answered),
                    ]
                    var events: [CallStatusEvent] = []
                    for (index, (status, previous)) in statuses.enumerated() {
                        events.append(
                            try await environment.publish(
                                callID, seq: index + 1, status, previous: previous, organization: organization))
                    }
                    // The same event again (a worker's retried publication): no second delivery.
                    _ = try await environment.publish(
                        callID, seq: 4, .completed, previous: .answered, organization: organization,
                        eventID: events[3].eventID)
                    try await eventually("six deliveries") { receiver.deliveries.count >= 6 }
                    try await Task.sleep(for: .milliseconds(500))
                    let received = receiver.deliveries
                    #expect(received.count == 6)
                    #expect(received.allSatisfy { $0.verified }, "every delivery verifies with its secret")
                    #expect(Set(received.map(\.id)).count == 6, "webhook-id is unique per delivery")
                    let all = received.filter { $0.path == "/all" }.compactMap(\.json)
                    #expect(all.compactMap { ($0["data"] as? [String: Any])?["seq"] as? Int }.sorted() == [1, 2, 3, 4])
                    #expect(
                        Set(all.compactMap { $0["type"] as? String })
                            == ["call.dispatched", "call.ringing", "call.answered", "call.completed"])
                    let own = received.filter { $0.path == "/call" }.compactMap(\.json)
                    #expect(Set(own.compactMap { $0["type"] as? String }) == ["call.answered", "call.completed"])
                    for payload in all + own {
                        let data = try #require(payload["data"] as? [String: Any])
                        #expect(data["call_id"] as? String == callID.description)
                        #expect(data["organization_id"] as? String == organization.description)
                    }
                    // The log: delivered after one attempt, with the receiver's status.
                    try await eventually("the outcomes stored") {
                        try await environment.deliveries(of: endpoint).allSatisfy { $0.state == .delivered }
                    }
                    for delivery in try await environment.deliveries(of: endpoint) {
                        let (stored, attempts) = try await environment.delivery(delivery)
                        #expect(stored.attempts == 1 && attempts.count == 1 && attempts[0].responseStatus == 204)
                    }
                    let callDeliveries = try await environment.store.webhookDeliveries(call: callID, in: organization)
                    #expect(callDeliveries.count == 6)
                }
            }
        }
    }

    @Test("finished deliveries are deleted with their attempts after the retention period; pending ones stay")
    func retentionPurge() async throws {
        try await DispatcherTestEnvironment.run { environment in
            try await environment.withReceiver { receiver, url in
                let (organization, healthy, secret) = try await environment.subscribe(url: url)
                receiver.setSecrets([secret])
                let closedPort = try FreePort.pick()
                let (_, failing, _) = try await environment.subscribe(
                    url: "http://127.0.0.1:\(closedPort)/", organization: organization)
                try await environment.withDispatcher(environment.configuration()) {
                    for _ in 1...3 {
                        _ = try await environment.publish(
                            CallID.generate(), seq: 1, .dispatched, previous: .queued, organization: organization)
                    }
                    try await eventually("delivered, and failed once") {
                        let delivered = try await environment.deliveries(of: healthy)
                        let retried = try await environment.deliveries(of: failing)
                        return delivered.count == 3 && delivered.allSatisfy { $0.state == .delivered }
                            && retried.count == 3 && retried.allSatisfy { $0.attempts == 1 }
                    }
                }
                let finished = try await environment.deliveries(of: healthy).map(\.id)
                // A day and an hour later, with a retention of one day: the first house-keeping round deletes the
                // delivered ones; the pending ones (well within their retry schedule) stay.
                let later = ManualClock(Date().addingTimeInterval(25 * 3600))
                try await environment.withDispatcher(
                    environment.configuration { $0.retention = .seconds(86_400) }, clock: later
                ) {
                    try await eventually("the purge") { try await environment.deliveries(of: healthy).isEmpty }
                }
                let pending = try await environment.deliveries(of: failing)
                #expect(pending.count == 3 && pending.allSatisfy { $0.state == .pending })
                let rows = try await environment.store.client.query(
                    "SELECT count(*) FROM webhook_attempts WHERE delivery_id = ANY(\(finished)::uuid[])")
                for try await count in rows.decode(Int.self) { #expect(count == 0) }
            }
        }
    }

    @Test("an endpoint's filter takes only its event types; another organization's events never reach it")
    func filtersAndIsolation() async throws {
        try await DispatcherTestEnvironment.run { environment in
            try await environment.withReceiver { receiver, url in
                let (organization, _, secret) = try await environment.subscribe(
                    url: url, eventTypes: [WebhookEventType(status: .completed)])
                receiver.setSecrets([secret])
                let other = try await environment.store.createOrganization(
                    name: unique("other"), by: AuditActor(name: "test"))
                try await environment.withDispatcher(environment.configuration()) {
                    let mine = CallID.generate()
                    _ = try await environment.publish(
                        mine, seq: 1, .dispatched, previous: .queued, organization: organization)
                    _ = try await environment.publish(
                        CallID.generate(), seq: 1, .completed, previous: .answered, organization: other.id)
                    _ = try await environment.publish(
                        mine, seq: 2, .completed, previous: .dispatched, organization: organization)
                    try await eventually("the completed delivery") { !receiver.deliveries.isEmpty }
                    try await Task.sleep(for: .seconds(1))
                    let received = receiver.deliveries.compactMap(\.json)
                    #expect(received.count == 1)
                    #expect(received.first?["type"] as? String == "call.completed")
                    #expect((received.first?["data"] as? [String: Any])?["call_id"] as? String == mine.description)
                }
            }
        }
    }

    @Test("failed attempts follow the schedule 0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, then the delivery fails")
    func retryScheduleWithInjectedClock() async throws {
        try await DispatcherTestEnvironment.run { environment in
            let clock = ManualClock(Date(timeIntervalSince1970: 1_900_000_000))
            try await environment.withReceiver(respond: { _ in .init(status: 500) }, clock: clock.now) {
                receiver, url in
                let (organization, endpoint, secret) = try await environment.subscribe(url: url)
                receiver.setSecrets([secret])
                try await environment.withDispatcher(environment.configuration(), clock: clock) {
                    _ = try await environment.publish(
                        CallID.generate(), seq: 1, .failed, previous: .dispatched, organization: organization)
                    var expectedStart = clock.now()
                    for attempt in 1...WebhookRetrySchedule.attempts {
                        try await eventually("attempt \(attempt)") {
                            let delivery = try await environment.deliveries(of: endpoint).first
                            return delivery?.attempts == attempt
                        }
                        let delivery = try #require(try await environment.deliveries(of: endpoint).first)
                        let (stored, attempts) = try await environment.delivery(delivery)
                        #expect(attempts.count == attempt && attempts.last?.responseStatus == 500)
                        #expect(attempts.last?.startedAt == expectedStart, "attempt \(attempt) started on schedule")
                        #expect(receiver.deliveries.count == attempt)
                        #expect(receiver.deliveries.allSatisfy { $0.verified }, "signed with the dispatcher's clock")
                        guard let wait = WebhookRetrySchedule.delay(after: attempt - 1) else {
                            #expect(stored.state == .failed && stored.nextAttemptAt == nil)
                            break
                        }
                        #expect(stored.state == .pending)
                        #expect(stored.nextAttemptAt == expectedStart.addingTimeInterval(wait.timeInterval))
                        // Nothing happens a second early.
                        clock.advance(by: wait - .seconds(1))
                        try await Task.sleep(for: .milliseconds(300))
                        #expect(receiver.deliveries.count == attempt, "attempt \(attempt + 1) waited for its time")
                        clock.advance(by: .seconds(1))
                        expectedStart = clock.now()
                    }
                    // Exhausted: no ninth attempt, however long we wait.
                    clock.advance(by: .seconds(48 * 3600))
                    try await Task.sleep(for: .milliseconds(500))
                    #expect(receiver.deliveries.count == WebhookRetrySchedule.attempts)
                    // All eight attempts were consecutive failures: the circuit opened along the way.
                    #expect(try await environment.endpoint(endpoint).consecutiveFailures == 8)
                }
            }
        }
    }

    @Test("Retry-After is honoured; 410 Gone disables the endpoint and cancels what it still had pending")
    func retryAfterAndGone() async throws {
        try await DispatcherTestEnvironment.run { environment in
            let clock = ManualClock()
            let answers: @Sendable (WebhookReceiver.Delivery) -> WebhookReceiver.Answer = { delivery in
                let seq = (delivery.json?["data"] as? [String: Any])?["seq"] as? Int
                return seq == 1 ? .init(status: 503, headers: ["Retry-After": "600"]) : .init(status: 410)
            }
            try await environment.withReceiver(respond: answers, clock: clock.now) { receiver, url in
                let (organization, endpoint, secret) = try await environment.subscribe(url: url)
                receiver.setSecrets([secret])
                try await environment.withDispatcher(environment.configuration(), clock: clock) {
                    let callID = CallID.generate()
                    _ = try await environment.publish(
                        callID, seq: 1, .dispatched, previous: .queued, organization: organization)
                    try await eventually("the first attempt") {
                        try await environment.deliveries(of: endpoint).first?.attempts == 1
                    }
                    let first = try #require(try await environment.deliveries(of: endpoint).first)
                    #expect(first.lastStatus == 503)
                    #expect(first.nextAttemptAt == clock.now().addingTimeInterval(600), "600 s, not the schedule's 5 s")
                    _ = try await environment.publish(
                        callID, seq: 2, .ringing, previous: .dispatched, organization: organization)
                    try await eventually("the endpoint disabled") {
                        try await environment.endpoint(endpoint).enabled == false
                    }
                    try await eventually("its deliveries settled") {
                        try await environment.deliveries(of: endpoint).allSatisfy { $0.state != .pending }
                    }
                    let deliveries = try await environment.deliveries(of: endpoint)
                    #expect(deliveries.count == 2)
                    #expect(deliveries.first { $0.id == first.id }?.state == .canceled, "the one waiting to retry")
                    #expect(deliveries.first { $0.id != first.id }?.state == .failed, "the one answered 410")
                    #expect(try await environment.endpoint(endpoint).disabledReason?.contains("410") == true)
                    // A later event makes no delivery to the disabled endpoint.
                    _ = try await environment.publish(
                        callID, seq: 3, .answered, previous: .ringing, organization: organization)
                    clock.advance(by: .seconds(3600))
                    try await Task.sleep(for: .seconds(1))
                    #expect(try await environment.deliveries(of: endpoint).count == 2)
                    #expect(receiver.deliveries.count == 2)
                }
            }
        }
    }

    @Test("a dead endpoint holds only its own slots: a healthy one's deliveries go through meanwhile")
    func deadEndpointDoesNotDelayOthers() async throws {
        try await DispatcherTestEnvironment.run { environment in
            // The dead endpoint accepts connections and never answers within the attempt timeout.
            try await environment.withReceiver(respond: { _ in .init(status: 204, delay: .seconds(90)) }) {
                _, deadURL in
                try await environment.withReceiver { healthy, healthyURL in
                    let (organization, _, secret) = try await environment.subscribe(url: healthyURL)
                    healthy.setSecrets([secret])
                    _ = try await environment.subscribe(url: deadURL, organization: organization)
                    // Four slots in all, two per endpoint: without the per-endpoint limit the dead endpoint's
                    // attempts would take every slot for the whole attempt timeout.
                    let configuration = environment.configuration {
                        $0.maxInFlight = 4
                        $0.endpointConcurrency = 2
                        // Long enough that twenty deliveries fit inside it on a loaded machine (they take well
                        // under a second alone).
                        $0.attemptTimeout = .seconds(30)
                    }
                    try await environment.withDispatcher(configuration) {
                        let started = ContinuousClock.now
                        for seq in 1...20 {
                            _ = try await environment.publish(
                                CallID.generate(), seq: 1, .dispatched, previous: .queued, organization: organization)
                            _ = seq
                        }
                        try await eventually("twenty healthy deliveries", timeout: .seconds(29)) {
                            healthy.deliveries.count >= 20
                        }
                        // Inside the dead endpoint's first attempt timeout: its slots were still held.
                        #expect(ContinuousClock.now - started < configuration.attemptTimeout)
                        #expect(healthy.deliveries.allSatisfy { $0.verified })
                    }
                }
            }
        }
    }

    @Test("after five failures in a row the circuit opens: the endpoint's deliveries wait without spending attempts")
    func circuitBreaker() async throws {
        try await DispatcherTestEnvironment.run { environment in
            let clock = ManualClock()
            // A port nothing listens on: every attempt fails at once.
            let closedPort = try FreePort.pick()
            let (organization, endpoint, _) = try await environment.subscribe(url: "http://127.0.0.1:\(closedPort)/")
            try await environment.withDispatcher(environment.configuration { $0.endpointConcurrency = 1 }, clock: clock)
            {
                for _ in 1...10 {
                    _ = try await environment.publish(
                        CallID.generate(), seq: 1, .dispatched, previous: .queued, organization: organization)
                }
                try await eventually("the circuit open") {
                    try await environment.endpoint(endpoint).circuitOpenUntil != nil
                }
                try await Task.sleep(for: .milliseconds(500))
                let open = try await environment.endpoint(endpoint)
                let openUntil = try #require(open.circuitOpenUntil)
                #expect(open.consecutiveFailures == WebhookCircuit.threshold)
                #expect(openUntil == clock.now().addingTimeInterval(WebhookCircuit.firstCooldown.timeInterval))
                let deliveries = try await environment.deliveries(of: endpoint)
                #expect(deliveries.count == 10)
                #expect(deliveries.map(\.attempts).reduce(0, +) == WebhookCircuit.threshold)
                let waiting = deliveries.filter { $0.attempts == 0 }
                #expect(waiting.allSatisfy { ($0.nextAttemptAt ?? .distantPast) >= openUntil })
                // After the cool-down one probe goes; it fails, and the circuit stays open twice as long.
                clock.advance(by: WebhookCircuit.firstCooldown)
                try await eventually("the probe") {
                    try await environment.endpoint(endpoint).consecutiveFailures == WebhookCircuit.threshold + 1
                }
                try await Task.sleep(for: .milliseconds(500))
                let reopened = try await environment.endpoint(endpoint)
                #expect(reopened.consecutiveFailures == WebhookCircuit.threshold + 1)
                #expect(
                    reopened.circuitOpenUntil
                        == clock.now().addingTimeInterval((WebhookCircuit.firstCooldown * 2).timeInterval))
            }
        }
    }
}
