import EmbeddedKafka
import Foundation
import Kafka
import Testing

@Suite struct ProducerTests {
    /// A new producer is prepared before its first send: the topic's metadata fetched and the idempotent producer id
    /// assigned (read from librdkafka's statistics). With the brokers down, preparation fails within its timeout and
    /// succeeds once they are back; without idempotence there is no id to wait for.
    @Test(.timeLimit(.minutes(3)))
    func preparationWaitsForTheTopicMetadataAndTheProducerID() async throws {
        let topic = KafkaTest.unique("prepare")
        try await KafkaTest.withCluster(topics: [topic: 3]) { cluster in
            let producer = try KafkaProducer(
                configuration: KafkaTest.configuration(cluster), deliveryTimeout: .seconds(10), logger: KafkaTest.logger
            )
            try await KafkaTest.withRunning({ try await producer.run() }) {
                #expect(!producer.isPrepared)
                try await producer.prepare(topics: [topic], timeout: .seconds(30))
                #expect(producer.isPrepared)
                let receipt = try await producer.send(topic: topic, key: "k".bytes, value: "after".bytes)
                #expect(receipt.topic == topic)
            }

            var plain = KafkaTest.configuration(cluster)
            plain.properties["enable.idempotence"] = "false"
            let notIdempotent = try KafkaProducer(configuration: plain, logger: KafkaTest.logger)
            try await KafkaTest.withRunning({ try await notIdempotent.run() }) {
                try await notIdempotent.prepare(topics: [topic], timeout: .seconds(30))
                #expect(notIdempotent.isPrepared)
            }

            try cluster.setBrokersDown()
            let late = try KafkaProducer(
                configuration: KafkaTest.configuration(cluster), deliveryTimeout: .seconds(10), logger: KafkaTest.logger
            )
            try await KafkaTest.withRunning({ try await late.run() }) {
                let start = ContinuousClock.now
                await #expect(throws: KafkaError.self) { try await late.prepare(topics: [topic], timeout: .seconds(3)) }
                #expect(ContinuousClock.now - start < .seconds(20), "bounded by the timeout, not a hang")
                #expect(!late.isPrepared)
                try cluster.setBrokersUp()
                try await KafkaTest.eventually(timeout: .seconds(90), "prepared once the brokers are back") {
                    (try? await late.prepare(topics: [topic], timeout: .seconds(5))) != nil
                }
                #expect(late.isPrepared)
            }
        }
    }

    /// With every broker down, a send fails with librdkafka's timeout error within the delivery timeout (it does
    /// not hang), and sends succeed again once the brokers are back.
    @Test(.timeLimit(.minutes(3)))
    func sendFailsWhileBrokersAreDownAndSucceedsWhenTheyAreBack() async throws {
        let topic = KafkaTest.unique("down")
        try await KafkaTest.withCluster(topics: [topic: 3]) { cluster in
            let deliveryTimeout = Duration.seconds(3)
            let producer = try KafkaProducer(
                configuration: KafkaTest.configuration(cluster),
                deliveryTimeout: deliveryTimeout,
                logger: KafkaTest.logger
            )
            try await KafkaTest.withRunning({ try await producer.run() }) {
                _ = try await producer.send(topic: topic, key: "warm-up".bytes, value: "1".bytes)

                try cluster.setBrokersDown()
                let start = ContinuousClock.now
                let error = await #expect(throws: KafkaError.self) {
                    try await producer.send(topic: topic, key: "c-1".bytes, value: "while down".bytes)
                }
                let elapsed = ContinuousClock.now - start
                #expect(error?.code == .messageTimedOut, "\(String(describing: error))")
                #expect(error?.isRetriable == true)
                #expect(error?.description.contains("_MSG_TIMED_OUT") == true)
                // Bounded by the delivery timeout (plus scheduling slack on a loaded machine), not a hang.
                #expect(elapsed < deliveryTimeout + .seconds(10), "failed after \(elapsed)")

                try cluster.setBrokersUp()
                var delivered: KafkaDeliveryReceipt?
                try await KafkaTest.eventually(timeout: .seconds(90), "a send to succeed after the brokers are up") {
                    delivered = try? await producer.send(topic: topic, key: "c-2".bytes, value: "after".bytes)
                    return delivered != nil
                }
                #expect(delivered?.topic == topic)
            }
        }
    }

    /// Shutdown with sends in flight: each send returns (acknowledged, or failed with a clear error), none hangs,
    /// `run()` returns, and later sends are refused.
    @Test(.timeLimit(.minutes(3)))
    func shutdownLetsSendsInFlightFinish() async throws {
        let topic = KafkaTest.unique("shutdown")
        try await KafkaTest.withCluster(topics: [topic: 3]) { cluster in
            let producer = try KafkaProducer(
                configuration: KafkaTest.configuration(cluster),
                deliveryTimeout: .seconds(10),
                logger: KafkaTest.logger
            )
            let runner = Task { try await producer.run() }
            _ = try await producer.send(topic: topic, key: "warm-up".bytes, value: "1".bytes)
            // Slow brokers keep the messages in flight for a while.
            try cluster.setRoundTripTime(.milliseconds(1500))
            let total = 3000
            let outcomes = SendOutcomes()
            let sends = Task { await outcomes.send(total, through: producer, topic: topic) }
            try await KafkaTest.eventually("the sends to be under way") { outcomes.started.count == total }
            #expect(outcomes.acknowledged.count < total, "still in flight at shutdown")
            runner.cancel()
            try await runner.value
            await sends.value
            #expect(outcomes.acknowledged.count + outcomes.failed.count == total)
            #expect(outcomes.acknowledged.count > total / 2)
            // What was handed to librdkafka before the shutdown was delivered; only sends that started after it
            // were refused.
            for error in outcomes.failed.all {
                #expect(error.code == .shutdown, "\(error)")
            }
            let late = await #expect(throws: KafkaError.self) {
                try await producer.send(topic: topic, key: nil, value: "late".bytes)
            }
            #expect(late?.code == .shutdown)
        }
    }

    /// Shutdown while the brokers are unreachable: the sends in flight fail (timed out or purged) instead of
    /// hanging, within the delivery timeout, and `run()` returns.
    @Test(.timeLimit(.minutes(3)))
    func shutdownFailsSendsThatCannotBeDelivered() async throws {
        let topic = KafkaTest.unique("shutdown-down")
        try await KafkaTest.withCluster(topics: [topic: 3]) { cluster in
            let deliveryTimeout = Duration.seconds(4)
            let producer = try KafkaProducer(
                configuration: KafkaTest.configuration(cluster),
                deliveryTimeout: deliveryTimeout,
                logger: KafkaTest.logger
            )
            let runner = Task { try await producer.run() }
            _ = try await producer.send(topic: topic, key: "warm-up".bytes, value: "1".bytes)
            try cluster.setBrokersDown()
            let total = 500
            let outcomes = SendOutcomes()
            let sends = Task { await outcomes.send(total, through: producer, topic: topic) }
            try await KafkaTest.eventually("the sends to be under way") { outcomes.started.count == total }
            let start = ContinuousClock.now
            runner.cancel()
            try await runner.value
            await sends.value
            let elapsed = ContinuousClock.now - start
            #expect(outcomes.acknowledged.count == 0)
            #expect(outcomes.failed.count == total)
            for error in outcomes.failed.all {
                #expect(
                    [.messageTimedOut, .purgedFromQueue, .purgedInFlight, .shutdown].contains(error.code), "\(error)")
            }
            #expect(elapsed < deliveryTimeout + .seconds(15), "shutdown took \(elapsed)")
        }
    }

    /// A batch send returns one result per message, in order, and per-key order holds on the wire.
    @Test(.timeLimit(.minutes(2)))
    func batchSendReturnsOneReceiptPerMessageInOrder() async throws {
        let topic = KafkaTest.unique("batch")
        try await KafkaTest.withCluster(topics: [topic: 1]) { cluster in
            let producer = try KafkaProducer(configuration: KafkaTest.configuration(cluster), logger: KafkaTest.logger)
            try await KafkaTest.withRunning({ try await producer.run() }) {
                let batch = (0..<500).map {
                    KafkaOutgoingMessage(
                        topic: topic, key: "same".bytes, value: "\($0)".bytes,
                        headers: [KafkaHeader(key: "i", value: "\($0)")])
                }
                let results = try await producer.send(batch)
                let receipts = try results.map { try $0.get() }
                #expect(receipts.count == 500)
                #expect(receipts.map(\.offset) == (0..<500).map(Int64.init))
                #expect(try await producer.send([]).isEmpty)
            }
        }
    }

    @Test func invalidPropertyIsRejectedWithLibrdkafkasMessage() throws {
        let configuration = KafkaConfiguration(
            bootstrapServers: "127.0.0.1:9",
            properties: ["no.such.property": "1"]
        )
        let error = #expect(throws: KafkaError.self) {
            try KafkaProducer(configuration: configuration, logger: KafkaTest.logger)
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("no.such.property") == true)
    }
}

/// Runs many concurrent sends and sorts their outcomes.
private final class SendOutcomes: Sendable {
    let started = Collector<Int>()
    let acknowledged = Collector<KafkaDeliveryReceipt>()
    let failed = Collector<KafkaError>()

    func send(_ count: Int, through producer: KafkaProducer, topic: String) async {
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                group.addTask {
                    self.started.append(index)
                    do {
                        let receipt = try await producer.send(
                            topic: topic, key: "k\(index % 50)".bytes, value: "\(index)".bytes)
                        self.acknowledged.append(receipt)
                    } catch let error as KafkaError {
                        self.failed.append(error)
                    } catch {
                        Issue.record("unexpected error \(error)")
                    }
                }
            }
        }
    }
}
