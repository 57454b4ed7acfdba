import CallDomain
import CallMessaging
import CallStore
import Foundation
import Kafka
import ServiceSupport
import Synchronization
import TestSupport
import Testing

@testable import DialerWorker

/// Poison messages: copied to the dead-letter topic with the reason in their headers, never stalling a partition.
@Suite("Dead letters", .serialized, .timeLimit(.minutes(4)))
struct DeadLetterTests {
    @Test("an undecodable command and a status event out of range go to the dead-letter topic; the partition goes on")
    func poisonMessagesAreDeadLettered() async throws {
        try await WorkerTestEnvironment.run(partitions: 1) { environment in
            let collected = try await DeadLetterLog.reading(environment)
            defer { collected.stop() }

            try await withWorker(try environment.workerConfiguration()) { _ in
                let producer = environment.publisher.producer
                let garbageKey = CallID.generate().description
                // Valid CloudEvents headers, a body that is not a command.
                let commandHeaders = CloudEventAttributes(
                    id: UUID().uuidString, source: "/tests", type: OriginateCommand.eventType, time: Date(),
                    subject: garbageKey, traceParent: nil
                ).headers.map { KafkaHeader(key: $0.key, value: $0.value) }
                _ = try await producer.send(
                    topic: environment.topics.originate, key: garbageKey, value: Array(#"{"to": 5}"#.utf8),
                    headers: commandHeaders)
                // A status event whose seq does not fit PostgreSQL's integer.
                let bigSeqCall = CallID.generate()
                let event = CallStatusEvent(
                    callID: bigSeqCall, seq: 1, status: .dispatched, previousStatus: .queued, occurredAt: Date())
                var json = String(decoding: try WireCoding.encode(event), as: UTF8.self)
                json = json.replacingOccurrences(of: #""seq":1"#, with: #""seq":2147483653"#)
                #expect(json.contains("2147483653"))
                let statusHeaders = CloudEventAttributes(
                    id: UUID().uuidString, source: "/tests", type: CallStatusEvent.eventType, time: Date(),
                    subject: bigSeqCall.description, traceParent: nil
                ).headers.map { KafkaHeader(key: $0.key, value: $0.value) }
                _ = try await producer.send(
                    topic: environment.topics.status, key: bigSeqCall.description, value: Array(json.utf8),
                    headers: statusHeaders)

                // Behind the poison, on the same (only) partition, a good command is dialed and stored.
                let good = try environment.command(TestNumber.answer(holdSeconds: 1))
                try await environment.publish(good)
                let record = try await environment.waitForEnd(good.callID)
                #expect(record.status == .completed)

                // The command was read by two groups (dialer and history): one copy each; the event by the history.
                try await eventually(timeout: .seconds(20), "three dead letters") {
                    collected.count >= 3
                }
                let letters = collected.messages
                #expect(letters.count == 3)
                func header(_ message: KafkaMessage, _ key: String) -> String? {
                    message.headers.first { $0.key == key }?.value.map { String(decoding: $0, as: UTF8.self) }
                }
                let commandCopies = letters.filter { $0.keyString == garbageKey }
                #expect(
                    Set(commandCopies.compactMap { header($0, "dlq_consumer_group") }) == [
                        "dialer-workers", "call-history",
                    ])
                for copy in commandCopies {
                    #expect(copy.value == Array(#"{"to": 5}"#.utf8), "the original value, unchanged")
                    #expect(header(copy, "dlq_reason") == "undecodable")
                    #expect(header(copy, "dlq_source_topic") == environment.topics.originate)
                    #expect(header(copy, "dlq_source_offset") == "0")
                    #expect(header(copy, "ce_type") == OriginateCommand.eventType, "the original headers are kept")
                }
                let eventCopy = try #require(letters.first { $0.keyString == bigSeqCall.description })
                #expect(header(eventCopy, "dlq_reason") == "undecodable")
                #expect(header(eventCopy, "dlq_consumer_group") == "call-history")
                #expect(header(eventCopy, "dlq_detail")?.contains("seq") == true)
                #expect(try await environment.store.call(id: bigSeqCall) == nil, "nothing of it was stored")
            }
        }
    }

    @Test(
        "a status event whose data PostgreSQL refuses (a cause beyond integer) is dead-lettered; the partition goes on")
    func dataRefusedByTheStore() async throws {
        try await WorkerTestEnvironment.run(partitions: 1) { environment in
            let collected = try await DeadLetterLog.reading(environment)
            defer { collected.stop() }

            try await withWorker(try environment.workerConfiguration()) { _ in
                // Decodes (a cause is any integer on the wire), but PostgreSQL's integer column refuses it
                // (SQLSTATE 22003, a data exception): storing it can never succeed.
                let poison = CallStatusEvent(
                    callID: .generate(), seq: 1, status: .dispatched, previousStatus: .queued, occurredAt: Date(),
                    hangupCause: HangupCause(code: 3_000_000_000, text: "out of range"))
                try await environment.publisher.publish(poison, traceParent: nil)
                // Behind it, on the same (only) partition of the status topic, the history goes on.
                let good = try environment.command(TestNumber.answer(holdSeconds: 1))
                try await environment.publish(good)
                #expect(try await environment.waitForEnd(good.callID).status == .completed, "the partition goes on")

                try await eventually(timeout: .seconds(20), "a dead letter") {
                    collected.count >= 1
                }
                let letters = collected.messages
                #expect(letters.count == 1)
                let letter = try #require(letters.first)
                #expect(letter.keyString == poison.callID.description)
                func header(_ key: String) -> String? {
                    letter.headers.first { $0.key == key }?.value.map { String(decoding: $0, as: UTF8.self) }
                }
                #expect(header("dlq_reason") == "rejected_by_store")
                #expect(header("dlq_consumer_group") == "call-history")
                #expect(header("dlq_source_topic") == environment.topics.status)
                #expect(try await environment.store.call(id: poison.callID)?.status != .dispatched)
            }
        }
    }

    @Test("errors are classified: decoding and wire errors are permanent, anything else transient")
    func failureClasses() throws {
        let decoding = DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "x"))
        #expect(FailureClass.of(decoding) == .permanent(.undecodable))
        #expect(FailureClass.of(WireError.unknownEventType("x")) == .permanent(.undecodable))
        #expect(FailureClass.of(CancellationError()) == .transient)
        #expect(FailureClass.of(WorkerContext.DatabaseTimeout(timeout: .seconds(1))) == .transient)
    }
}

/// Everything on the environment's dead-letter topic, read from the beginning by a background task.
private final class DeadLetterLog: Sendable {
    private let received = Mutex<[KafkaMessage]>([])
    private let reader = Mutex<Task<Void, Never>?>(nil)

    var messages: [KafkaMessage] { received.withLock { $0 } }
    var count: Int { received.withLock { $0.count } }

    /// Starts reading; returns once the reader has its partitions.
    static func reading(_ environment: WorkerTestEnvironment) async throws -> DeadLetterLog {
        let log = DeadLetterLog()
        let consumer = try KafkaFanOutReader(
            configuration: environment.kafkaConfiguration, topic: environment.topics.deadLetter,
            start: .beginning, logger: testLogger)
        let task = Task {
            async let running: Void = (try? consumer.run()) ?? ()
            do {
                for try await message in consumer.messages { log.received.withLock { $0.append(message) } }
            } catch {}
            await running
        }
        log.reader.withLock { $0 = task }
        _ = try await consumer.waitUntilReady()
        return log
    }

    func stop() { reader.withLock { $0 }?.cancel() }
}
