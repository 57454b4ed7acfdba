import CallDomain
import CallStore
import DevStack
import EmbeddedKafka
import Foundation
import PostgresNIO
import Synchronization
import TestSupport
import Testing
import Webhooks

@Suite(.timeLimit(.minutes(4)))
struct KillTests {
    @Test("SIGKILL of a dispatcher mid-retry: another dispatcher delivers everything; nothing lost, repeats bounded")
    func killMidRetry() async throws {
        try await DispatcherTestEnvironment.run { environment in
            // The first four messages fail once (500: fewer than open the circuit), and every other request is
            // answered slowly, so that their retries 5 s later are in flight with others when the dispatcher is
            // killed.
            let seen = Mutex<[String: Int]>([:])
            let answer: @Sendable (WebhookReceiver.Delivery) -> WebhookReceiver.Answer = { delivery in
                let (count, order) = seen.withLock { counts in
                    counts[delivery.id, default: 0] += 1
                    return (counts[delivery.id]!, counts.count)
                }
                return count == 1 && order <= 4 ? .init(status: 500) : .init(status: 204, delay: .milliseconds(1500))
            }
            try await environment.withReceiver(respond: answer) { receiver, url in
                let (organization, endpoint, secret) = try await environment.subscribe(url: url)
                receiver.setSecrets([secret])
                let processEnvironment = [
                    "DATABASE_URL": environment.databaseURL,
                    "KAFKA_BOOTSTRAP_SERVERS": environment.kafka.bootstrapServers,
                    "KAFKA_TOPIC_STATUS": environment.topics.status,
                    "KAFKA_PROP_SESSION_TIMEOUT_MS": "6000",
                    "KAFKA_PROP_HEARTBEAT_INTERVAL_MS": "500",
                    "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
                    "WEBHOOK_TIMEOUT_SECONDS": "3",
                    "WEBHOOK_POLL_INTERVAL_MS": "50",
                    "DISPATCHER_HOST": "127.0.0.1",
                    "DISPATCHER_PORT": "0",
                    "LOG_LEVEL": "info",
                ]
                let first = try await ServiceProcess(
                    executable: "webhook-dispatcher", idVariable: "DISPATCHER_ID", id: unique("dispatcher-a"),
                    environment: processEnvironment)
                let messages = 40
                var events: [CallStatusEvent] = []
                for _ in 1...messages {
                    events.append(
                        try await environment.publish(
                            CallID.generate(), seq: 1, .answered, previous: .ringing, organization: organization))
                }
                // Killed once retries are in flight (a second request for some message has arrived).
                do {
                    try await eventually("retries in flight", timeout: .seconds(60)) {
                        seen.withLock { $0.values.contains { $0 >= 2 } }
                    }
                } catch {
                    first.kill()
                    Issue.record("the dispatcher's log:\n\(first.log.suffix(4000))")
                    throw error
                }
                first.kill()
                let delivered = try await environment.deliveries(of: endpoint).filter { $0.state == .delivered }.count
                // What the killed dispatcher had attempted without storing the outcome: its leases still held.
                var orphaned = 0
                for try await count in try await environment.store.client.query(
                    "SELECT count(*) FROM webhook_deliveries WHERE leased_by = \(first.id) AND state = 'pending'"
                ).decode(Int.self) {
                    orphaned = count
                }
                let second = try await ServiceProcess(
                    executable: "webhook-dispatcher", idVariable: "DISPATCHER_ID", id: unique("dispatcher-b"),
                    environment: processEnvironment)
                defer { second.kill() }
                do {
                    try await eventually("every delivery delivered", timeout: .seconds(120)) {
                        let deliveries = try await environment.deliveries(of: endpoint)
                        return deliveries.count == messages && deliveries.allSatisfy { $0.state == .delivered }
                    }
                } catch {
                    Issue.record("first dispatcher:\n\(first.log.suffix(3000))\nsecond:\n\(second.log.suffix(3000))")
                    throw error
                }
                await second.terminate()
                let deliveries = try await environment.deliveries(of: endpoint)
                // Nothing lost: one delivery per event, each received by the endpoint with a valid signature.
                #expect(Set(deliveries.compactMap(\.eventID)) == Set(events.map(\.eventID)))
                let received = receiver.deliveries
                #expect(received.allSatisfy { $0.verified })
                #expect(Set(received.map(\.id)) == Set(deliveries.map { $0.id.uuidString.lowercased() }))
                // At least once: beyond the planned failures, a message is sent again only if the killed dispatcher
                // had attempted it without storing the outcome (its lease was still held).
                // Requests beyond one per message and the planned retry of the first four.
                let repeats = seen.withLock { counts in counts.values.map { $0 - 1 }.reduce(0, +) } - 4
                #expect(
                    repeats >= 0 && repeats <= orphaned, "\(repeats) repeated requests, \(orphaned) orphaned attempts")
                #expect(
                    orphaned <= 24,
                    "at most a claim window (twice the endpoint concurrency of 8) and a batch of unstored outcomes")
                #expect(delivered < messages, "the kill came before everything was delivered")
                for delivery in deliveries {
                    let (_, attempts) = try await environment.delivery(delivery)
                    #expect(attempts.filter { $0.responseStatus == 204 }.count >= 1)
                }
            }
        }
    }
}
