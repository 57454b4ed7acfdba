import ArgumentParser
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
    var messages: Int = 200_000

    @Option(help: "Value size in bytes.")
    var valueSize: Int = 100

    @Option(help: "Distinct keys (messages are keyed key-0 ... key-<n-1>).")
    var keys: Int = 1000

    @Option(help: "Concurrent sends in flight through the wrapper.")
    var inFlight: Int = 5000

    @Option(help: "Partitions of each benchmark topic.")
    var partitions: Int32 = 12

    @Option(help: "Brokers of the embedded cluster.")
    var brokers: Int = 3

    @Option(help: "Rounds (each runs kcat then the wrapper on fresh topics).")
    var rounds: Int = 3

    @Option(help: "Path of the kcat executable.")
    var kcat: String = "/usr/bin/kcat"

    func run() async throws {
        var logger = Logger(label: "kafka-bench")
        logger.logLevel = .warning
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

        print("kafka-bench: \(messages) messages of \(valueSize) bytes, \(keys) keys, \(partitions) partitions,")
        print("  \(brokers) embedded brokers at \(cluster.bootstrapServers)")
        print("  both producers: enable.idempotence=true, acks=all; wrapper: \(inFlight) sends in flight")
        print("")
        print("round  kcat -P (msg/s)  wrapper (msg/s)  wrapper/kcat")
        var kcatRates: [Double] = []
        var wrapperRates: [Double] = []
        for round in 1...rounds {
            let kcatTopic = "bench-kcat-\(round)"
            let wrapperTopic = "bench-wrapper-\(round)"
            try cluster.createTopic(kcatTopic, partitions: partitions)
            try cluster.createTopic(wrapperTopic, partitions: partitions)
            let kcatSeconds = try runKcat(bootstrap: cluster.bootstrapServers, topic: kcatTopic, input: input)
            try await verifyCount(cluster: cluster, topic: kcatTopic, logger: logger)
            let wrapperSeconds = try await runWrapper(
                bootstrap: cluster.bootstrapServers,
                topic: wrapperTopic,
                value: Array(value.utf8),
                logger: logger
            )
            try await verifyCount(cluster: cluster, topic: wrapperTopic, logger: logger)
            let kcatRate = Double(messages) / kcatSeconds
            let wrapperRate = Double(messages) / wrapperSeconds
            kcatRates.append(kcatRate)
            wrapperRates.append(wrapperRate)
            print(
                pad("\(round)", 5), pad(format(kcatRate), 16), pad(format(wrapperRate), 16),
                pad(String(format: "%.0f%%", wrapperRate / kcatRate * 100), 13)
            )
        }
        let kcatMedian = median(kcatRates)
        let wrapperMedian = median(wrapperRates)
        print(
            pad("median", 5), pad(format(kcatMedian), 16), pad(format(wrapperMedian), 16),
            pad(String(format: "%.0f%%", wrapperMedian / kcatMedian * 100), 13)
        )
        print("goal: wrapper >= 80% of kcat")
    }

    /// Runs `kcat -P` over the input file; returns its wall-clock time (process start to exit, which kcat reaches
    /// only after every message was acknowledged).
    private func runKcat(bootstrap: String, topic: String, input: URL) throws -> Double {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: kcat)
        process.arguments = [
            "-P", "-b", bootstrap, "-t", topic, "-K", ":", "-l", input.path,
            "-X", "enable.idempotence=true", "-X", "acks=all",
        ]
        let errors = Pipe()
        process.standardError = errors
        let start = ContinuousClock.now
        try process.run()
        let errorOutput = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let elapsed = ContinuousClock.now - start
        guard process.terminationStatus == 0 else {
            throw ValidationError("kcat failed (\(process.terminationStatus)): \(String(decoding: errorOutput, as: UTF8.self))")
        }
        return elapsed.seconds
    }

    /// Sends every message through the wrapper with `inFlight` concurrent senders; returns the time from creating
    /// the producer (so connection set-up counts, as it does for kcat) to the last acknowledgement.
    private func runWrapper(bootstrap: String, topic: String, value: [UInt8], logger: Logger) async throws -> Double {
        let start = ContinuousClock.now
        let producer = try KafkaProducer(
            configuration: KafkaConfiguration(bootstrapServers: bootstrap, clientID: "kafka-bench"),
            logger: logger
        )
        let runner = Task { try await producer.run() }
        let keyBytes = (0..<keys).map { Array("key-\($0)".utf8) }
        let total = messages
        let senders = min(inFlight, total)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sender in 0..<senders {
                group.addTask {
                    var index = sender
                    while index < total {
                        _ = try await producer.send(topic: topic, key: keyBytes[index % keyBytes.count], value: value)
                        index += senders
                    }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = ContinuousClock.now - start
        runner.cancel()
        try await runner.value
        return elapsed.seconds
    }

    /// Reads the topic from the beginning until every message is there (a check that both producers delivered
    /// everything; not timed).
    private func verifyCount(cluster: EmbeddedKafkaCluster, topic: String, logger: Logger) async throws {
        let reader = try KafkaFanOutReader(
            configuration: KafkaConfiguration(bootstrapServers: cluster.bootstrapServers, clientID: "kafka-bench-check"),
            topic: topic,
            start: .beginning,
            logger: logger
        )
        let runner = Task { try await reader.run() }
        defer { runner.cancel() }
        var count = 0
        let expected = messages
        let counted = try await withThrowingTaskGroup(of: Int?.self) { group in
            group.addTask {
                for try await _ in reader.messages {
                    count += 1
                    if count == expected { return count }
                }
                return count
            }
            group.addTask {
                try await Task.sleep(for: .seconds(120))
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard counted == expected else {
            throw ValidationError("topic \(topic) holds \(counted.map(String.init) ?? "too few") messages, expected \(expected)")
        }
    }

    private func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted[sorted.count / 2]
    }

    private func format(_ rate: Double) -> String {
        String(format: "%.0f", rate)
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
