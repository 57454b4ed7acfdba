import EmbeddedKafka
import Kafka
import Synchronization
import Testing

/// A consumer group member's processing loop: records every message, commits every `commitEvery` messages, and
/// remembers which commits succeeded (the offsets that must never be delivered again).
/// A flag tasks share.
private final class Flag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}

private final class Member: Sendable {
    let name: String
    let consumer: KafkaConsumer
    let received = Collector<KafkaMessage>()
    let committed = Mutex<[KafkaTopicPartition: Int64]>([:])
    private let pending = Mutex<[KafkaTopicPartition: Int64]>([:])

    init(name: String, consumer: KafkaConsumer) {
        self.name = name
        self.consumer = consumer
    }

    /// Consumes until cancelled, calling `onMessage` for each message (the test's global order check); after each
    /// message it waits while `holdWhile` says so.
    func process(
        commitEvery: Int, holdWhile: @Sendable () -> Bool = { false }, onMessage: @Sendable (KafkaMessage) -> Void
    ) async throws {
        var sinceCommit = 0
        for try await message in consumer.messages {
            onMessage(message)
            received.append(message)
            pending.withLock { $0[message.topicPartition] = message.offset + 1 }
            // Simulated work, so that the second member joins while the first is mid-stream.
            try? await Task.sleep(for: .milliseconds(1))
            while holdWhile(), !Task.isCancelled { try? await Task.sleep(for: .milliseconds(10)) }
            sinceCommit += 1
            if sinceCommit >= commitEvery {
                sinceCommit = 0
                await commitPending(retries: 0)
            }
        }
    }

    /// Commits the positions processed so far on partitions still assigned; a commit refused because of a
    /// rebalance is fine (at-least-once), the messages are redelivered.
    func commitPending(retries: Int) async {
        let assigned = Set(consumer.assignment)
        let offsets = pending.withLock { pending in
            let owned = pending.filter { assigned.contains($0.key) }
            pending = [:]
            return owned
        }
        guard !offsets.isEmpty else { return }
        let positions = offsets.map {
            KafkaTopicPartitionOffset(topic: $0.key.topic, partition: $0.key.partition, offset: $0.value)
        }
        for attempt in 0...retries {
            do {
                try await consumer.commit(positions)
                committed.withLock { committed in
                    for (partition, offset) in offsets {
                        committed[partition] = max(committed[partition] ?? 0, offset)
                    }
                }
                return
            } catch let error as KafkaError where error.isRetriable && attempt < retries {
                try? await Task.sleep(for: .milliseconds(200))
            } catch {
                return
            }
        }
    }
}

/// Checks, at the moment each message is received (by either member), that every earlier message of its key was
/// already received: the order per key holds across members and rebalances (redeliveries are allowed).
private final class OrderChecker: Sendable {
    private struct State {
        var contiguous: [String: Int] = [:]
        var seen: Set<String> = []
        var violations: [String] = []
    }

    private let state = Mutex(State())

    func record(_ message: KafkaMessage) {
        let (key, sequence) = KeyedPayload.parse(message.value)
        state.withLock { state in
            let highestContiguous = state.contiguous[key] ?? -1
            if sequence > highestContiguous + 1 {
                state.violations.append("\(key) #\(sequence) received before #\(highestContiguous + 1)")
            }
            state.seen.insert("\(key)#\(sequence)")
            var next = highestContiguous + 1
            while state.seen.contains("\(key)#\(next)") {
                next += 1
            }
            state.contiguous[key] = next - 1
        }
    }

    var distinctCount: Int { state.withLock { $0.seen.count } }
    var violations: [String] { state.withLock { $0.violations } }
}

/// Message values `key#sequence`: the sequence increases per key in production order.
enum KeyedPayload {
    static func make(key: String, sequence: Int) -> [UInt8] {
        Array("\(key)#\(sequence)".utf8)
    }

    static func parse(_ value: [UInt8]) -> (key: String, sequence: Int) {
        let text = String(decoding: value, as: UTF8.self)
        let parts = text.split(separator: "#")
        return (String(parts[0]), Int(parts[1]) ?? -1)
    }
}

@Suite struct GroupConsumerTests {
    /// 10,000 keyed messages read by a group whose second member joins half-way: every message is consumed at
    /// least once, no message of a key is received before an earlier one of that key, and after both members
    /// stop, a new member of the group receives nothing at or below a committed offset.
    @Test(.timeLimit(.minutes(8)))
    func tenThousandKeyedMessagesTwoMembersKeepOrderAndCommittedStayCommitted() async throws {
        let topic = KafkaTest.unique("group")
        let keys = (0..<100).map { "call-\($0)" }
        let perKey = 100
        try await KafkaTest.withCluster(topics: [topic: 6]) { cluster in
            let configuration = KafkaTest.configuration(cluster)
            let producer = try KafkaProducer(configuration: configuration, logger: KafkaTest.logger)
            let group = KafkaTest.unique("members")
            try await KafkaTest.withRunning({ try await producer.run() }) {
                // Each key's messages are sent one after the other, so the sequence matches the produce order.
                try await withThrowingTaskGroup(of: Void.self) { tasks in
                    for key in keys {
                        tasks.addTask {
                            for sequence in 0..<perKey {
                                _ = try await producer.send(
                                    topic: topic,
                                    key: key.bytes,
                                    value: KeyedPayload.make(key: key, sequence: sequence)
                                )
                            }
                        }
                    }
                    try await tasks.waitForAll()
                }

                let checker = OrderChecker()
                let total = keys.count * perKey
                let first = Member(
                    name: "first",
                    consumer: try KafkaConsumer(
                        configuration: configuration, groupID: group, topics: [topic], logger: KafkaTest.logger)
                )
                let second = Member(
                    name: "second",
                    consumer: try KafkaConsumer(
                        configuration: configuration, groupID: group, topics: [topic], logger: KafkaTest.logger)
                )
                // Past half, the first member waits for the second one's partitions: however slow the rebalance, the
                // first cannot consume everything before the second takes part.
                let secondAssigned = Flag()
                let firstRun = Task { try await first.consumer.run() }
                let firstWork = Task {
                    try await first.process(
                        commitEvery: 100,
                        holdWhile: { checker.distinctCount >= total / 2 && !secondAssigned.isSet }
                    ) { checker.record($0) }
                }
                try await KafkaTest.eventually("the first member to consume half") {
                    checker.distinctCount >= total / 2
                }

                let assignment = Task {
                    _ = try? await KafkaTest.firstAssignment(second.consumer.rebalanceEvents, timeout: .seconds(120))
                    secondAssigned.set()
                }
                let secondRun = Task { try await second.consumer.run() }
                let secondWork = Task { try await second.process(commitEvery: 100) { checker.record($0) } }
                try await KafkaTest.eventually(timeout: .seconds(240), "every message to be consumed") {
                    checker.distinctCount == total
                }
                await assignment.value
                firstWork.cancel()
                secondWork.cancel()
                try await firstWork.value
                try await secondWork.value
                await first.commitPending(retries: 10)
                await second.commitPending(retries: 10)

                #expect(checker.violations.isEmpty, "order per key: \(checker.violations.prefix(5))")
                #expect(second.received.count > 0, "the second member received part of the messages")
                #expect(first.received.count + second.received.count >= total)

                // Both members leave the group cleanly (close commits stored offsets).
                firstRun.cancel()
                secondRun.cancel()
                try await firstRun.value
                try await secondRun.value

                var committed = first.committed.withLock { $0 }
                committed.merge(second.committed.withLock { $0 }) { max($0, $1) }
                #expect(!committed.isEmpty)

                // A restarted member reads only what was not committed, then the new messages.
                let restarted = try KafkaConsumer(
                    configuration: configuration,
                    groupID: group,
                    topics: [topic],
                    logger: KafkaTest.logger
                )
                let received = Collector<KafkaMessage>()
                try await KafkaTest.withRunning({ try await restarted.run() }) {
                    let reader = Task {
                        for try await message in restarted.messages {
                            received.append(message)
                        }
                    }
                    _ = try await KafkaTest.firstAssignment(restarted.rebalanceEvents)
                    for key in keys {
                        _ = try await producer.send(
                            topic: topic,
                            key: key.bytes,
                            value: KeyedPayload.make(key: key, sequence: perKey)
                        )
                    }
                    try await KafkaTest.eventually("the restarted member to read the new messages") {
                        received.all.filter { KeyedPayload.parse($0.value).sequence == perKey }.count == keys.count
                    }
                    reader.cancel()
                    _ = try? await reader.value
                }
                let redelivered = received.all.filter { message in
                    message.offset < (committed[message.topicPartition] ?? 0)
                }
                #expect(redelivered.isEmpty, "committed messages delivered again: \(redelivered.prefix(5))")
            }
        }
    }

    /// A reader that commits each message before reading the next works through a backlog larger than the
    /// consumer's buffer (commit results must not wait behind the messages held back in librdkafka).
    @Test(.timeLimit(.minutes(4)))
    func committingEveryMessageThroughABacklogLargerThanTheBuffer() async throws {
        let topic = KafkaTest.unique("backlog")
        try await KafkaTest.withCluster(topics: [topic: 2]) { cluster in
            let configuration = KafkaTest.configuration(cluster)
            let producer = try KafkaProducer(configuration: configuration, logger: KafkaTest.logger)
            let total = 5000
            try await KafkaTest.withRunning({ try await producer.run() }) {
                let batch = (0..<total).map {
                    KafkaOutgoingMessage(topic: topic, key: "k\($0 % 10)".bytes, value: "\($0)".bytes)
                }
                for result in try await producer.send(batch) {
                    _ = try result.get()
                }
            }
            let consumer = try KafkaConsumer(
                configuration: configuration,
                groupID: KafkaTest.unique("committers"),
                topics: [topic],
                logger: KafkaTest.logger
            )
            let count = try await KafkaTest.withRunning({ try await consumer.run() }) {
                var count = 0
                for try await message in consumer.messages {
                    try await consumer.commit(message)
                    count += 1
                    if count == total { break }
                }
                return count
            }
            #expect(count == total)
        }
    }

    /// Revoked partitions are announced and, when a member leaves, the remaining one takes every partition.
    @Test(.timeLimit(.minutes(3)))
    func leavingMemberHandsItsPartitionsOver() async throws {
        let topic = KafkaTest.unique("handover")
        try await KafkaTest.withCluster(topics: [topic: 4]) { cluster in
            let configuration = KafkaTest.configuration(cluster)
            let group = KafkaTest.unique("handover-group")
            let stayer = try KafkaConsumer(
                configuration: configuration, groupID: group, topics: [topic], logger: KafkaTest.logger)
            let leaver = try KafkaConsumer(
                configuration: configuration, groupID: group, topics: [topic], logger: KafkaTest.logger)
            try await KafkaTest.withRunning({ try await stayer.run() }) {
                _ = try await KafkaTest.firstAssignment(stayer.rebalanceEvents)
                #expect(stayer.assignment.count == 4)
                try await KafkaTest.withRunning({ try await leaver.run() }) {
                    try await KafkaTest.eventually("the partitions to be shared") {
                        stayer.assignment.count + leaver.assignment.count == 4 && !leaver.assignment.isEmpty
                            && !stayer.assignment.isEmpty
                    }
                }
                try await KafkaTest.eventually("the remaining member to own every partition") {
                    stayer.assignment.count == 4
                }
            }
        }
    }
}
