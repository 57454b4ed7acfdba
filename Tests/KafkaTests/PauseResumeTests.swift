import EmbeddedKafka
import Kafka
import Testing

@Suite struct PauseResumeTests {
    /// Pause stops delivery from the assigned partitions while messages are available (a reader of the same topic
    /// proves they are there), resume restarts it, and nothing is lost or duplicated across the pause.
    @Test(.timeLimit(.minutes(3)))
    func pauseStopsDeliveryAndResumeDeliversEverythingOnce() async throws {
        let topic = KafkaTest.unique("pause")
        try await KafkaTest.withCluster(topics: [topic: 3]) { cluster in
            let configuration = KafkaTest.configuration(cluster)
            let producer = try KafkaProducer(configuration: configuration, logger: KafkaTest.logger)
            let consumer = try KafkaConsumer(
                configuration: configuration,
                groupID: KafkaTest.unique("pausers"),
                topics: [topic],
                logger: KafkaTest.logger
            )
            let witness = try KafkaFanOutReader(
                configuration: configuration,
                topic: topic,
                start: .beginning,
                logger: KafkaTest.logger
            )
            let received = Collector<KafkaMessage>()
            let witnessed = Collector<KafkaMessage>()
            try await KafkaTest.withRunning({ try await producer.run() }) {
                try await KafkaTest.withRunning({ try await witness.run() }) {
                    try await KafkaTest.withRunning({ try await consumer.run() }) {
                        let reading = Task {
                            for try await message in consumer.messages {
                                received.append(message)
                            }
                        }
                        let watching = Task {
                            for try await message in witness.messages {
                                witnessed.append(message)
                            }
                        }
                        _ = try await KafkaTest.firstAssignment(consumer.rebalanceEvents)
                        for index in 0..<100 {
                            _ = try await producer.send(
                                topic: topic, key: "k\(index % 7)".bytes, value: "a\(index)".bytes)
                        }
                        try await KafkaTest.eventually("the first 100 messages") { received.count == 100 }

                        try consumer.pause()
                        #expect(consumer.isPaused)
                        let countAtPause = received.count
                        for index in 0..<100 {
                            _ = try await producer.send(
                                topic: topic, key: "k\(index % 7)".bytes, value: "b\(index)".bytes)
                        }
                        try await KafkaTest.eventually("the witness to see the messages sent while paused") {
                            witnessed.count == 200
                        }
                        // The messages are in the brokers and a reader gets them; give the paused consumer ample
                        // opportunity to (wrongly) deliver them too.
                        try await Task.sleep(for: .seconds(2))
                        #expect(received.count == countAtPause, "delivered while paused")

                        try consumer.resume()
                        #expect(!consumer.isPaused)
                        try await KafkaTest.eventually("every message after resume") { received.count >= 200 }
                        reading.cancel()
                        watching.cancel()
                        _ = try? await reading.value
                        _ = try? await watching.value
                    }
                }
            }
            let values = received.all.map(\.value.string)
            #expect(values.count == 200)
            #expect(Set(values) == Set((0..<100).map { "a\($0)" } + (0..<100).map { "b\($0)" }))
        }
    }

    /// Partitions assigned while paused stay paused until resume.
    @Test(.timeLimit(.minutes(2)))
    func consumerPausedBeforeItsAssignmentStaysPaused() async throws {
        let topic = KafkaTest.unique("paused-start")
        try await KafkaTest.withCluster(topics: [topic: 2]) { cluster in
            let configuration = KafkaTest.configuration(cluster)
            let producer = try KafkaProducer(configuration: configuration, logger: KafkaTest.logger)
            let consumer = try KafkaConsumer(
                configuration: configuration,
                groupID: KafkaTest.unique("paused-start"),
                topics: [topic],
                logger: KafkaTest.logger
            )
            try consumer.pause()
            let received = Collector<KafkaMessage>()
            try await KafkaTest.withRunning({ try await producer.run() }) {
                for index in 0..<20 {
                    _ = try await producer.send(topic: topic, key: "k\(index)".bytes, value: "\(index)".bytes)
                }
                try await KafkaTest.withRunning({ try await consumer.run() }) {
                    let reading = Task {
                        for try await message in consumer.messages {
                            received.append(message)
                        }
                    }
                    _ = try await KafkaTest.firstAssignment(consumer.rebalanceEvents)
                    try await Task.sleep(for: .seconds(2))
                    #expect(received.count == 0, "delivered while paused")
                    try consumer.resume()
                    try await KafkaTest.eventually("every message after resume") { received.count == 20 }
                    reading.cancel()
                    _ = try? await reading.value
                }
            }
        }
    }

    /// A partition paused, then taken away by a rebalance, delivers again when it comes back after the pause was
    /// lifted elsewhere: librdkafka keeps a partition's pause across unassign and assign, so the consumer sets it
    /// on every assignment. (A worker whose partitions came back after a broker outage never consumed them again.)
    @Test(.timeLimit(.minutes(3)))
    func partitionPausedBeforeARebalanceDeliversWhenItComesBackResumed() async throws {
        let topic = KafkaTest.unique("pause-rebalance")
        try await KafkaTest.withCluster(topics: [topic: 2]) { cluster in
            let configuration = KafkaTest.configuration(cluster)
            let group = KafkaTest.unique("pause-rebalance")
            let producer = try KafkaProducer(configuration: configuration, logger: KafkaTest.logger)
            let first = try KafkaConsumer(
                configuration: configuration, groupID: group, topics: [topic], logger: KafkaTest.logger)
            let second = try KafkaConsumer(
                configuration: configuration, groupID: group, topics: [topic], logger: KafkaTest.logger)
            let received = Collector<KafkaMessage>()
            var partitionsSent = Set<Int32>()
            try await KafkaTest.withRunning({ try await producer.run() }) {
                try await KafkaTest.withRunning({ try await first.run() }) {
                    let reading = Task {
                        for try await message in first.messages { received.append(message) }
                    }
                    try await KafkaTest.eventually("both partitions assigned to the first consumer") {
                        first.assignment.count == 2
                    }
                    // Paused with both partitions; the poll thread applies it within its next turn.
                    try first.pause()
                    try await Task.sleep(for: .seconds(1))
                    try await KafkaTest.withRunning({ try await second.run() }) {
                        try await KafkaTest.eventually("one partition each") {
                            first.assignment.count == 1 && second.assignment.count == 1
                        }
                        // Lifted while the other partition belongs to the second consumer.
                        try first.resume()
                        try await Task.sleep(for: .seconds(1))
                    }
                    try await KafkaTest.eventually("both partitions back with the first consumer") {
                        first.assignment.count == 2
                    }
                    for index in 0..<20 {
                        let receipt = try await producer.send(
                            topic: topic, key: "key-\(index)".bytes, value: "\(index)".bytes)
                        partitionsSent.insert(receipt.partition)
                    }
                    try await KafkaTest.eventually(timeout: .seconds(30), "every message, from both partitions") {
                        received.count == 20
                    }
                    reading.cancel()
                    _ = try? await reading.value
                }
            }
            #expect(partitionsSent == [0, 1])
            #expect(Set(received.all.map(\.partition)) == [0, 1])
            #expect(received.all.map(\.value.string).sorted() == (0..<20).map { "\($0)" }.sorted())
        }
    }
}
