import ArgumentParser
import DevStack
import EmbeddedKafka
import Foundation
import Kafka
import Logging

/// `loadgen kafka`: the Kafka layer. Produce: runs the Kafka helper's `kafka-bench` (the wrapper's acknowledged
/// sends against `kcat -P` on the same embedded broker) and keeps its figures. Consume: the wrapper's fan-out reader
/// against `kcat -C`, both assigning themselves every partition (a group join takes seconds and would dominate),
/// reading the same topic of the same embedded broker from the beginning.
struct KafkaBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka",
        abstract: "Kafka produce (via kafka-bench) and consume rates, wrapper versus kcat."
    )

    @Option(help: "The kafka-bench executable (empty: skip the produce comparison).")
    var kafkaBench: String = ""

    @Option(help: "Messages per run.")
    var messages: Int = 200_000

    @Option(help: "Value size in bytes.")
    var valueSize: Int = 100

    @Option(help: "Partitions of the topic.")
    var partitions: Int32 = 12

    @Option(help: "Rounds.")
    var rounds: Int = 3

    @Option(help: "Path of the kcat executable.")
    var kcat: String = "/usr/bin/kcat"

    @Option(help: "Write the figures as JSON to this file.")
    var out: String

    struct ConsumeRound: Codable, Sendable {
        /// Messages per second from starting the reader to its last message (client start-up included).
        var kcatPerSecond: Double
        var wrapperPerSecond: Double
    }

    struct Produce: Codable, Sendable {
        /// Median messages per second of `kcat -P`, the wrapper's `send()` and its `send(batch)`.
        var kcatPerSecond: Double?
        var sendPerSecond: Double?
        var batchPerSecond: Double?
        /// kafka-bench's own output, as printed.
        var output: String
    }

    struct Result: Codable, Sendable {
        var produce: Produce?
        var consume: [ConsumeRound]
        var consumeKcatPerSecond: Double
        var consumeWrapperPerSecond: Double
        var messages: Int
        var valueSize: Int
        var partitions: Int32
    }

    func run() async throws {
        var logger = Logger(label: "loadgen.kafka")
        logger.logLevel = .warning
        var produce: Produce?
        if !kafkaBench.isEmpty {
            progress("kafka: produce, kafka-bench (\(messages) messages, \(rounds) rounds)")
            produce = try await runKafkaBench()
        }
        let cluster = try EmbeddedKafkaCluster(brokers: 3, logger: logger)
        defer { cluster.shutdown() }
        let topic = "bench-consume"
        try cluster.createTopic(topic, partitions: partitions)
        try await fill(topic: topic, bootstrap: cluster.bootstrapServers)
        var measured: [ConsumeRound] = []
        for round in 1...rounds {
            let kcatSeconds = try await consumeWithKcat(topic: topic, bootstrap: cluster.bootstrapServers)
            let wrapperSeconds = try await consumeWithWrapper(
                topic: topic, bootstrap: cluster.bootstrapServers, logger: logger)
            let row = ConsumeRound(
                kcatPerSecond: Double(messages) / kcatSeconds, wrapperPerSecond: Double(messages) / wrapperSeconds)
            progress(
                String(
                    format: "kafka consume round %d: kcat -C %.0f msg/s, wrapper %.0f msg/s", round, row.kcatPerSecond,
                    row.wrapperPerSecond))
            measured.append(row)
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        try writeJSON(
            Result(
                produce: produce, consume: measured, consumeKcatPerSecond: median(measured.map(\.kcatPerSecond)),
                consumeWrapperPerSecond: median(measured.map(\.wrapperPerSecond)), messages: messages,
                valueSize: valueSize, partitions: partitions),
            to: out)
    }

    /// Runs kafka-bench and reads its `median` row (`kcat -P`, `send()`, `send(batch)`, then ratios).
    private func runKafkaBench() async throws -> Produce {
        let run = try await ChildProcess.run(
            executable: kafkaBench,
            arguments: [
                "--messages", "\(messages)", "--value-size", "\(valueSize)", "--partitions", "\(partitions)",
                "--rounds", "\(rounds)",
            ])
        let text = run.output + run.errors
        guard run.termination == .exited(0) else {
            return Produce(output: "kafka-bench \(run.termination):\n\(text)")
        }
        let median = text.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix("median") }
        let numbers = median.map { $0.split(separator: " ").dropFirst().map { Double($0) } } ?? []
        func value(_ index: Int) -> Double? { index < numbers.count ? numbers[index] : nil }
        return Produce(kcatPerSecond: value(0), sendPerSecond: value(1), batchPerSecond: value(2), output: text)
    }

    /// Writes the messages with `kcat -P` (untimed set-up).
    private func fill(topic: String, bootstrap: String) async throws {
        let value = String(repeating: "x", count: valueSize)
        var lines = ""
        lines.reserveCapacity(messages * (valueSize + 12))
        for index in 0..<messages { lines += "key-\(index % 1000):\(value)\n" }
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("loadgen-kafka-\(getpid()).txt")
        try Data(lines.utf8).write(to: input)
        defer { try? FileManager.default.removeItem(at: input) }
        let run = try await ChildProcess.run(
            executable: kcat, arguments: ["-P", "-b", bootstrap, "-t", topic, "-K", ":", "-l", input.path])
        guard run.termination == .exited(0) else { throw BenchError("kcat -P \(run.termination): \(run.errors)") }
    }

    /// `kcat -C` (all partitions assigned, no group) from the beginning to the end of every partition: the time
    /// from starting the process to its exit, which it reaches after the last message.
    private func consumeWithKcat(topic: String, bootstrap: String) async throws -> Double {
        let start = ContinuousClock.now
        // A short fetch wait: otherwise noticing the end of the last partition (-e) waits for a 500 ms fetch.
        let run = try await ChildProcess.run(
            executable: kcat,
            arguments: [
                "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%o\n", "-X",
                "fetch.wait.max.ms=10",
            ])
        let elapsed = (ContinuousClock.now - start).seconds
        let lines = run.outputBytes.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
        guard lines == messages else { throw BenchError("kcat -C read \(lines) of \(messages) messages") }
        return elapsed
    }

    /// The wrapper's fan-out reader (all partitions assigned, no group) from the beginning until every message was
    /// delivered: the time from creating it to the last message.
    private func consumeWithWrapper(topic: String, bootstrap: String, logger: Logger) async throws -> Double {
        let start = ContinuousClock.now
        let reader = try KafkaFanOutReader(
            configuration: KafkaConfiguration(bootstrapServers: bootstrap, clientID: "loadgen"), topic: topic,
            start: .beginning, logger: logger)
        let runner = Task { try await reader.run() }
        var count = 0
        for try await _ in reader.messages {
            count += 1
            if count == messages { break }
        }
        let elapsed = (ContinuousClock.now - start).seconds
        runner.cancel()
        _ = await runner.result
        guard count == messages else { throw BenchError("the wrapper read \(count) of \(messages)") }
        return elapsed
    }
}
