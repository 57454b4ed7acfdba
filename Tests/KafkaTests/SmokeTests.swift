import EmbeddedKafka
import Kafka
import Testing

@Suite struct SmokeTests {
    @Test func producedMessageIsConsumed() async throws {
        let topic = KafkaTest.unique("smoke")
        try await KafkaTest.withCluster(topics: [topic: 3]) { cluster in
            let configuration = KafkaTest.configuration(cluster)
            let producer = try KafkaProducer(configuration: configuration, logger: KafkaTest.logger)
            let consumer = try KafkaConsumer(
                configuration: configuration,
                groupID: KafkaTest.unique("group"),
                topics: [topic],
                logger: KafkaTest.logger
            )
            try await KafkaTest.withRunning({ try await producer.run() }) {
                let receipt = try await producer.send(
                    topic: topic,
                    key: "k1".bytes,
                    value: "hello".bytes,
                    headers: [KafkaHeader(key: "h", value: "v")]
                )
                #expect(receipt.topic == topic)
                #expect(receipt.offset == 0)
                try await KafkaTest.withRunning({ try await consumer.run() }) {
                    var iterator = consumer.messages.makeAsyncIterator()
                    let message = try #require(try await iterator.next())
                    #expect(message.key == "k1".bytes)
                    #expect(message.value == "hello".bytes)
                    #expect(message.header("h") == "v".bytes)
                    #expect(message.partition == receipt.partition)
                    try await consumer.commit(message)
                }
            }
        }
    }
}
