import DevStack
import EmbeddedKafka
import Foundation
import Kafka
import Testing

/// Interoperability with kcat, a Kafka client nobody here wrote: what one writes, the other reads identically.
@Suite struct KcatInteropTests {
    static let kcat = "/usr/bin/kcat"

    /// Runs kcat with `arguments`, feeding `input` on stdin; returns stdout, failing on a non-zero exit.
    static func runKcat(_ arguments: [String], input: Data? = nil) async throws -> Data {
        let run = try await ChildProcess.run(
            executable: kcat, arguments: arguments, input: input.map { [UInt8]($0) } ?? [])
        guard run.termination == .exited(0) else {
            throw KcatError(status: run.termination.status, stderr: run.errors)
        }
        return Data(run.outputBytes)
    }

    struct KcatError: Error, CustomStringConvertible {
        var status: Int32
        var stderr: String
        var description: String { "kcat exited with \(status): \(stderr)" }
    }

    @Test(.timeLimit(.minutes(2)))
    func messageProducedByTheWrapperIsReadByKcat() async throws {
        let topic = KafkaTest.unique("to-kcat")
        try await KafkaTest.withCluster(topics: [topic: 3]) { cluster in
            let producer = try KafkaProducer(configuration: KafkaTest.configuration(cluster), logger: KafkaTest.logger)
            let value = #"{"call_id":"c-42","to":"+15551234567","note":"ünïcode ✓"}"#
            let receipt = try await KafkaTest.withRunning({ try await producer.run() }) {
                try await producer.send(
                    topic: topic,
                    key: "c-42".bytes,
                    value: value.bytes,
                    headers: [
                        KafkaHeader(key: "ce_type", value: "calls.originate.v1"),
                        KafkaHeader(key: "content-type", value: "application/json"),
                        KafkaHeader(
                            key: "traceparent", value: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                    ]
                )
            }
            let output = try await Self.runKcat([
                "-C", "-b", cluster.bootstrapServers, "-t", topic,
                "-p", "\(receipt.partition)", "-o", "\(receipt.offset)", "-c", "1", "-e", "-q", "-J",
            ])
            let json = try #require(
                try JSONSerialization.jsonObject(with: output) as? [String: Any],
                "kcat -J output: \(String(decoding: output, as: UTF8.self))"
            )
            #expect(json["key"] as? String == "c-42")
            #expect(json["payload"] as? String == value)
            #expect(json["partition"] as? Int == Int(receipt.partition))
            #expect(json["offset"] as? Int == Int(receipt.offset))
            // kcat -J lists headers as a flat array: name, value, name, value, ...
            let headers = try #require(json["headers"] as? [String])
            #expect(
                headers == [
                    "ce_type", "calls.originate.v1",
                    "content-type", "application/json",
                    "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                ])
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func messageProducedByKcatIsReadByTheWrapper() async throws {
        let topic = KafkaTest.unique("from-kcat")
        try await KafkaTest.withCluster(topics: [topic: 3]) { cluster in
            let reader = try KafkaFanOutReader(
                configuration: KafkaTest.configuration(cluster),
                topic: topic,
                start: .beginning,
                logger: KafkaTest.logger
            )
            try await KafkaTest.withRunning({ try await reader.run() }) {
                _ = try await reader.waitUntilReady()
                _ = try await Self.runKcat(
                    [
                        "-P", "-b", cluster.bootstrapServers, "-t", topic, "-k", "c-7",
                        "-H", "ce_type=calls.status.v1", "-H", "ce_id=e-1",
                    ],
                    input: Data(#"{"status":"ringing"}"#.utf8)
                )
                var iterator = reader.messages.makeAsyncIterator()
                let message = try #require(try await iterator.next())
                #expect(message.topic == topic)
                #expect(message.keyString == "c-7")
                #expect(message.value.string == #"{"status":"ringing"}"#)
                #expect(
                    message.headers == [
                        KafkaHeader(key: "ce_type", value: "calls.status.v1"),
                        KafkaHeader(key: "ce_id", value: "e-1"),
                    ])
                #expect(message.timestamp != nil)
            }
        }
    }
}
