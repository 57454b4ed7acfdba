import EmbeddedKafka
import Kafka
import Testing

@Suite struct FanOutReaderTests {
    /// Two readers that started at the end each receive every message produced after they were ready, and none
    /// produced before.
    @Test(.timeLimit(.minutes(2)))
    func twoReadersEachReceiveEveryMessageProducedAfterTheyStarted() async throws {
        let topic = KafkaTest.unique("fanout")
        try await KafkaTest.withCluster(topics: [topic: 4]) { cluster in
            let configuration = KafkaTest.configuration(cluster)
            let producer = try KafkaProducer(configuration: configuration, logger: KafkaTest.logger)
            try await KafkaTest.withRunning({ try await producer.run() }) {
                for index in 0..<40 {
                    _ = try await producer.send(topic: topic, key: "before-\(index)".bytes, value: "before".bytes)
                }
                let readers = try (0..<2).map { _ in
                    try KafkaFanOutReader(configuration: configuration, topic: topic, logger: KafkaTest.logger)
                }
                let received = [Collector<KafkaMessage>(), Collector<KafkaMessage>()]
                let tasks = readers.enumerated().map { index, reader in
                    (
                        Task { try await reader.run() },
                        Task {
                            for try await message in reader.messages {
                                received[index].append(message)
                            }
                        }
                    )
                }
                for reader in readers {
                    let offsets = try await reader.waitUntilReady()
                    #expect(offsets.count == 4)
                    #expect(offsets.values.reduce(0, +) == 40)
                }
                let total = 400
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for key in 0..<20 {
                        group.addTask {
                            for sequence in 0..<(total / 20) {
                                _ = try await producer.send(
                                    topic: topic, key: "k\(key)".bytes, value: "\(key):\(sequence)".bytes)
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                try await KafkaTest.eventually("both readers to receive every message") {
                    received.allSatisfy { $0.count >= total }
                }
                for (run, read) in tasks {
                    run.cancel()
                    try await run.value
                    try await read.value
                }
                for collector in received {
                    let values = collector.all.map(\.value.string)
                    #expect(collector.count == total)
                    #expect(Set(values).count == total)
                    #expect(!values.contains("before"))
                }
            }
        }
    }

    /// A reader given explicit offsets starts there; unlisted partitions start at the end.
    @Test(.timeLimit(.minutes(2)))
    func readerStartsAtGivenOffsets() async throws {
        let topic = KafkaTest.unique("offsets")
        try await KafkaTest.withCluster(topics: [topic: 1]) { cluster in
            let configuration = KafkaTest.configuration(cluster)
            let producer = try KafkaProducer(configuration: configuration, logger: KafkaTest.logger)
            try await KafkaTest.withRunning({ try await producer.run() }) {
                for index in 0..<10 {
                    _ = try await producer.send(topic: topic, key: nil, value: "\(index)".bytes)
                }
                let reader = try KafkaFanOutReader(
                    configuration: configuration,
                    topic: topic,
                    start: .offsets([0: 7]),
                    logger: KafkaTest.logger
                )
                try await KafkaTest.withRunning({ try await reader.run() }) {
                    #expect(try await reader.waitUntilReady() == [0: 7])
                    var iterator = reader.messages.makeAsyncIterator()
                    let first = try #require(try await iterator.next())
                    #expect(first.offset == 7)
                    #expect(first.value.string == "7")
                }
            }
        }
    }
}
