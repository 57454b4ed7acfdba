import EmbeddedKafka
import Foundation
import Kafka
import Logging
import Synchronization
import Testing

/// Helpers shared by the Kafka tests: every test gets its own cluster and uniquely named topics and groups.
enum KafkaTest {
    static var logger: Logger {
        var logger = Logger(label: "kafka-tests")
        let level = ProcessInfo.processInfo.environment["KAFKA_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:))
        logger.logLevel = level ?? .critical
        return logger
    }

    /// A name no other test (or run) uses.
    static func unique(_ prefix: String) -> String {
        "\(prefix)-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Client settings that make group membership changes fast enough for tests on a loaded machine.
    static func configuration(_ cluster: EmbeddedKafkaCluster, clientID: String = "kafka-tests") -> KafkaConfiguration {
        KafkaConfiguration(
            bootstrapServers: cluster.bootstrapServers,
            clientID: clientID,
            properties: [
                "heartbeat.interval.ms": "500",
                "session.timeout.ms": "6000",
                "topic.metadata.refresh.interval.ms": "1000",
            ]
        )
    }

    /// Runs `body` with a fresh cluster, shut down afterwards.
    static func withCluster<Result>(
        brokers: Int = 3,
        topics: [String: Int32],
        _ body: (EmbeddedKafkaCluster) async throws -> Result
    ) async throws -> Result {
        let cluster = try EmbeddedKafkaCluster(brokers: brokers, topics: topics, logger: logger)
        defer { cluster.shutdown() }
        return try await body(cluster)
    }

    /// Runs a service's `run()` in a task for the duration of `body`, then cancels it (a graceful close for the
    /// Kafka types) and waits for it to return.
    static func withRunning<Result>(
        _ run: @escaping @Sendable () async throws -> Void,
        _ body: () async throws -> Result
    ) async throws -> Result {
        let task = Task { try await run() }
        do {
            let result = try await body()
            task.cancel()
            try await task.value
            return result
        } catch {
            task.cancel()
            _ = try? await task.value
            throw error
        }
    }

    /// Polls `condition` until it holds or `timeout` passes (then records an issue). Waits, not asserts, on time.
    static func eventually(
        timeout: Duration = .seconds(60),
        _ what: String,
        _ condition: () async throws -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("timed out waiting for: \(what)")
        throw TimeoutError(what: what)
    }

    struct TimeoutError: Error, CustomStringConvertible {
        var what: String
        var description: String { "timed out waiting for \(what)" }
    }

    /// Waits for the next `.assigned` event of a rebalance stream.
    static func firstAssignment(
        _ events: AsyncStream<KafkaRebalanceEvent>,
        timeout: Duration = .seconds(60)
    ) async throws -> [KafkaTopicPartition] {
        try await withThrowingTaskGroup(of: [KafkaTopicPartition]?.self) { group in
            group.addTask {
                for await event in events {
                    if case .assigned(let partitions) = event { return partitions }
                }
                return nil
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            guard let first else { throw TimeoutError(what: "a partition assignment") }
            return first
        }
    }
}

/// Thread-safe accumulation for values observed by concurrently running tasks.
final class Collector<Value: Sendable>: Sendable {
    private let values = Mutex<[Value]>([])

    func append(_ value: Value) {
        values.withLock { $0.append(value) }
    }

    var all: [Value] {
        values.withLock { $0 }
    }

    var count: Int {
        values.withLock { $0.count }
    }
}

extension String {
    var bytes: [UInt8] { Array(utf8) }
}

extension Array where Element == UInt8 {
    var string: String { String(decoding: self, as: UTF8.self) }
}
