import EmbeddedKafka
import Kafka
import Testing

@Suite struct GroupProgressTests {
    /// A member of another group learns how far a group got: nothing committed reads as the partition's start, and
    /// once the group commits everything it consumed, its committed offsets reach the partitions' ends.
    @Test(.timeLimit(.minutes(3)))
    func groupProgressFollowsTheGroupsCommits() async throws {
        let topic = KafkaTest.unique("progress")
        try await KafkaTest.withCluster(topics: [topic: 3]) { cluster in
            let configuration = KafkaTest.configuration(cluster)
            let group = KafkaTest.unique("progress-group")
            let producer = try KafkaProducer(configuration: configuration, logger: KafkaTest.logger)
            let member = try KafkaConsumer(
                configuration: configuration, groupID: group, topics: [topic], logger: KafkaTest.logger)
            // Never runs: it only asks the coordinator about its group, as a restarted worker does.
            let observer = try KafkaConsumer(
                configuration: configuration, groupID: group, topics: [topic], logger: KafkaTest.logger)
            try await KafkaTest.withRunning({ try await producer.run() }) {
                for index in 0..<60 {
                    _ = try await producer.send(topic: topic, key: "k\(index)".bytes, value: "\(index)".bytes)
                }
                let before = try await observer.groupProgress(on: topic, timeout: .seconds(5))
                #expect(before.count == 3)
                #expect(before.map(\.end).reduce(0, +) == 60, "every message is counted in the ends")
                #expect(before.allSatisfy { $0.committed == 0 }, "nothing committed reads as the start")

                try await KafkaTest.withRunning({ try await member.run() }) {
                    var consumed = 0
                    for try await message in member.messages {
                        try await member.commit(message)
                        consumed += 1
                        if consumed == 60 { break }
                    }
                }
                let after = try await observer.groupProgress(on: topic, timeout: .seconds(5))
                #expect(after.map(\.partition) == before.map(\.partition))
                #expect(after.allSatisfy { $0.committed == $0.end }, "\(after)")
            }
        }
    }
}
