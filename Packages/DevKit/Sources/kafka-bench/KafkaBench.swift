import ArgumentParser
import DevStack
import EmbeddedKafka
import Foundation
import Kafka
import Logging

/// `kafka-bench`: acknowledged messages per second through the Kafka wrapper versus `kcat -P`, against the same
/// embedded broker in the same run, printed side by side. A benchmark, not a test: the figures depend on the machine.
@main
struct KafkaBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka-bench",
        abstract: "Compare the wrapper's producer throughput with kcat -P against one embedded Kafka cluster."
    )

    @Option(help: "Messages per run.")
    var messages: Int = 1_000_000

    @Option(help: "Value size in bytes.")
    var valueSize: Int = 100

    @Option(help: "Distinct keys (messages are keyed key-0 ... key-<n-1>).")
    var keys: Int = 1000

    @Option(help: "Concurrent sends in flight through the wrapper.")
    var inFlight: Int = 20000

    @Option(help: "Partitions of each benchmark topic.")
    var partitions: Int32 = 12

    @Option(help: "Brokers of the embedded cluster.")
    var brokers: Int = 3

    @Option(help: "Rounds (each runs kcat then the wrapper on fresh topics).")
    var rounds: Int = 3

    @Option(help: "Path of the kcat executable.")
    var kcat: String = "/usr/bin/kcat"

    @Option(help: "Concurrent batch senders for send(batch).")
    var batchSenders: Int = 40

    @Option(help: "Messages per batch for send(batch).")
    var batchSize: Int = 2000

    @Option(help: "Which producers to run, comma-separated: kcat, send, batch (fewer for profiling one of them).")
    var modes: String = "kcat,send,batch"

    func run() async throws {
        var logger = Logger(label: "kafka-bench")
        logger.logLevel =
            ProcessInfo.processInfo.environment["KAFKA_BENCH_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) }
            ?? .warning
        let cluster = try EmbeddedKafkaCluster(brokers: brokers, logger: logger)
        defer { cluster.shutdown() }
        let value = String(repeating: "x", count: valueSize)
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("kafka-bench-\(getpid()).txt")
        var lines = ""
        lines.reserveCapacity(messages * (valueSize + 12))
        for index in 0..<messages {
            lines += "key-\(index % keys):\(value)\n"
        }
        try Data(lines.utf8).write(to: input)
        defer { try? FileManager.default.removeItem(at: input) }

        emit("kafka-bench: \(messages) messages of \(valueSize) bytes, \(keys) keys, \(partitions) partitions,")
        emit("  \(brokers) embedded brokers at \(cluster.bootstrapServers)")
        emit("  every producer: enable.idempotence=true, acks=all; a message counts when acknowledged")
        emit("  kcat -P: reads the messages from a file (-l), exits once all are acknowledged")
        emit("  send(): \(inFlight) tasks, each awaiting one acknowledged send after the other")
        emit("  send(batch): \(batchSenders) tasks, each awaiting batches of \(batchSize) messages")
        emit("")
        let header = ["round", "kcat -P", "send()", "send(batch)", "send()/kcat", "batch/kcat"]
        emit(row(header))
        var results: [[Double]] = []
        var cpu: [[Double]] = [[], [], []]
        for round in 1...rounds {
            var rates = [Double.nan, .nan, .nan]
            let selected = Set(modes.split(separator: ",").map(String.init))
            if selected.contains("kcat") {
                let topic = "bench-kcat-\(round)"
                try cluster.createTopic(topic, partitions: partitions)
                let cpuBefore = cpuSeconds()
                let seconds = try await runKcat(bootstrap: cluster.bootstrapServers, topic: topic, input: input)
                cpu[0].append((cpuSeconds() - cpuBefore) / seconds)
                try await verifyCount(cluster: cluster, topic: topic, logger: logger)
                rates[0] = Double(messages) / seconds
            }
            for (column, batched) in [(1, false), (2, true)] where selected.contains(batched ? "batch" : "send") {
                let topic = "bench-wrapper-\(round)-\(batched ? "batch" : "single")"
                try cluster.createTopic(topic, partitions: partitions)
                let cpuBefore = cpuSeconds()
                let seconds = try await runWrapper(
                    bootstrap: cluster.bootstrapServers,
                    topic: topic,
                    value: Array(value.utf8),
                    batched: batched,
                    logger: logger
                )
                cpu[column].append((cpuSeconds() - cpuBefore) / seconds)
                try await verifyCount(cluster: cluster, topic: topic, logger: logger)
                rates[column] = Double(messages) / seconds
            }
            results.append(rates)
            emit(row(["\(round)"] + rates.map(format) + [percent(rates[1], rates[0]), percent(rates[2], rates[0])]))
        }
        let medians = (0..<3).map { column in median(results.map { $0[column] }) }
        emit(
            row(["median"] + medians.map(format) + [percent(medians[1], medians[0]), percent(medians[2], medians[0])]))
        emit("(messages per second; goal: wrapper >= 80% of kcat)")
        let busy = cpu.map { $0.isEmpty ? "-" : String(format: "%.0f%%", median($0) * 100) }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        emit(
            "CPU busy while producing (this process and kcat, 100% = one of \(cores) cores): "
                + "kcat -P \(busy[0]), send() \(busy[1]), send(batch) \(busy[2])")
    }

    /// Runs `kcat -P` over the input file; returns its wall-clock time (process start to exit, which kcat reaches
    /// only after every message was acknowledged).
    private func runKcat(bootstrap: String, topic: String, input: URL) async throws -> Double {
        let start = ContinuousClock.now
        let run = try await ChildProcess.run(
            executable: kcat,
            arguments: [
                "-P", "-b", bootstrap, "-t", topic, "-K", ":", "-l", input.path,
                "-X", "enable.idempotence=true", "-X", "acks=all",
            ])
        let elapsed = ContinuousClock.now - start
        guard run.termination == .exited(0) else {
            throw ValidationError("kcat failed (\(run.termination)): \(run.errors)")
        }
        return elapsed.seconds
    }

    /// Sends every message through the wrapper, with `send()` from `inFlight` tasks or `send(batch)` from
    /// `batchSenders` tasks; returns the time from creating the producer (so connection set-up counts, as it does
    /// for kcat) to the last acknowledgement.
    private func runWrapper(
        bootstrap: String,
        topic: String,
        value: [UInt8],
        batched: Bool,
        logger: Logger
    ) async throws -> Double {
        let start = ContinuousClock.now
        let producer = try KafkaProducer(
            configuration: KafkaConfiguration(bootstrapServers: bootstrap, clientID: "kafka-bench"),
            logger: logger
        )
        let runner = Task { try await producer.run() }
        let keyBytes = (0..<keys).map { Array("key-\($0)".utf8) }
        let total = messages
        let senders = min(batched ? batchSenders : inFlight, total)
        let batchSize = batchSize
        // Unstructured tasks: a task group's bookkeeping of tens of thousands of children costs more than the
        // sends being measured (removing a finished child is linear in the number of children).
        let tasks = (0..<senders).map { sender in
            Task {
                if batched {
                    var first = sender * batchSize
                    while first < total {
                        let batch = (first..<min(first + batchSize, total)).map { index in
                            KafkaOutgoingMessage(topic: topic, key: keyBytes[index % keyBytes.count], value: value)
                        }
                        for result in try await producer.send(batch) {
                            _ = try result.get()
                        }
                        first += senders * batchSize
                    }
                } else {
                    var index = sender
                    while index < total {
                        _ = try await producer.send(topic: topic, key: keyBytes[index % keyBytes.count], value: value)
                        index += senders
                    }
                }
            }
        }
        for task in tasks {
            try await task.value
        }
        let elapsed = ContinuousClock.now - start
        runner.cancel()
        try await runner.value
        return elapsed.seconds
    }

    /// Checks that the topic's partitions end where they should: the sum of their high watermarks (the offsets a
    /// reader starting at the end resolves) equals the number of messages produced. Not timed. (Counting by reading
    /// would not work for large runs: the embedded broker keeps only the last few megabytes of each partition.)
    private func verifyCount(cluster: EmbeddedKafkaCluster, topic: String, logger: Logger) async throws {
        let reader = try KafkaFanOutReader(
            configuration: KafkaConfiguration(
                bootstrapServers: cluster.bootstrapServers, clientID: "kafka-bench-check"),
            topic: topic,
            start: .end,
            logger: logger
        )
        let runner = Task { try await reader.run() }
        let ends = try await reader.waitUntilReady()
        runner.cancel()
        try await runner.value
        let total = ends.values.reduce(0, +)
        guard total == Int64(messages) else {
            throw ValidationError("topic \(topic) holds \(total) messages, expected \(messages)")
        }
    }

    /// CPU time (user and system) of this process and its finished children (kcat), in seconds.
    private func cpuSeconds() -> Double {
        func seconds(_ who: Int32) -> Double {
            var usage = rusage()
            getrusage(__rusage_who_t(who), &usage)
            return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
                + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        }
        return seconds(RUSAGE_SELF.rawValue) + seconds(RUSAGE_CHILDREN.rawValue)
    }

    /// Prints a line at once (stdout is block-buffered when piped, and a long run should show its progress).
    private func emit(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    private func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted[sorted.count / 2]
    }

    private func format(_ rate: Double) -> String {
        rate.isNaN ? "-" : String(format: "%.0f", rate)
    }

    private func percent(_ part: Double, _ whole: Double) -> String {
        part.isNaN || whole.isNaN ? "-" : String(format: "%.0f%%", part / whole * 100)
    }

    private func row(_ cells: [String]) -> String {
        zip(cells, [6, 10, 10, 12, 12, 11]).map { pad($0, $1) }.joined(separator: " ")
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }
}

extension Duration {
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
