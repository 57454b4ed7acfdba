/// The producer's bookkeeping of messages awaiting their delivery report.
///
/// A send registers an id before handing the message to librdkafka; the delivery report (from the poll thread)
/// may arrive before the send suspends, so an entry holds either the waiting continuation or the early result.
/// Methods return what to resume; callers resume continuations outside the lock.
struct ProducerStateMachine {
    typealias Continuation = CheckedContinuation<KafkaDeliveryReceipt, any Error>

    enum Phase {
        case running
        /// Graceful shutdown began: no new sends; outstanding ones get their reports or fail.
        case draining
        /// Everything was resolved; any send from now on fails.
        case closed
    }

    struct Entry {
        var topic: String
        var startNanoseconds: UInt64
        var continuation: Continuation?
        var result: Result<KafkaDeliveryReceipt, KafkaError>?
    }

    /// A continuation and what to resume it with.
    struct Resumption {
        var continuation: Continuation
        var result: Result<KafkaDeliveryReceipt, KafkaError>
        var startNanoseconds: UInt64
    }

    private(set) var phase = Phase.running
    private var entries: [UInt64: Entry] = [:]
    private var nextID: UInt64 = 1
    private var hasRun = false

    /// Marks the single allowed `run()`; returns false for a second call.
    mutating func startRunning() -> Bool {
        defer { hasRun = true }
        return !hasRun
    }

    /// Allocates an id for a message about to be produced.
    mutating func register(topic: String, nowNanoseconds: UInt64) throws(KafkaError) -> UInt64 {
        guard case .running = phase else {
            throw KafkaError.shutdown("the Kafka producer is shutting down; the message was not sent")
        }
        let id = nextID
        nextID += 1
        entries[id] = Entry(topic: topic, startNanoseconds: nowNanoseconds)
        return id
    }

    /// The message never reached librdkafka.
    mutating func abandon(_ id: UInt64) {
        entries[id] = nil
    }

    /// The sender suspends for the report of `id`; returns a resumption when the outcome is already known.
    mutating func awaitReport(_ id: UInt64, continuation: Continuation) -> Resumption? {
        guard var entry = entries[id] else {
            return Resumption(
                continuation: continuation,
                result: .failure(KafkaError.shutdown("the Kafka producer shut down before delivery was confirmed")),
                startNanoseconds: 0
            )
        }
        if let result = entry.result {
            entries[id] = nil
            return Resumption(continuation: continuation, result: result, startNanoseconds: entry.startNanoseconds)
        }
        entry.continuation = continuation
        entries[id] = entry
        return nil
    }

    /// Delivery reports from the poll thread; the result builder receives the entry's topic.
    mutating func reportsArrived(
        _ reports: [(id: UInt64, outcome: DeliveryOutcome)],
        into resumptions: inout [Resumption]
    ) {
        for report in reports {
            guard var entry = entries[report.id] else { continue }
            let result: Result<KafkaDeliveryReceipt, KafkaError>
            switch report.outcome {
            case .delivered(let partition, let offset):
                result = .success(KafkaDeliveryReceipt(topic: entry.topic, partition: partition, offset: offset))
            case .failed(let error):
                result = .failure(error)
            }
            if let continuation = entry.continuation {
                entries[report.id] = nil
                resumptions.append(
                    Resumption(continuation: continuation, result: result, startNanoseconds: entry.startNanoseconds)
                )
            } else {
                entry.result = result
                entries[report.id] = entry
            }
        }
    }

    /// Stops accepting sends. Returns true when this call began the drain.
    mutating func beginDrain() -> Bool {
        guard case .running = phase else { return false }
        phase = .draining
        return true
    }

    /// Resolves every outstanding send with `error` and refuses any further one.
    mutating func close(failingWith error: KafkaError) -> [Resumption] {
        phase = .closed
        var resumptions: [Resumption] = []
        for (id, var entry) in entries where entry.result == nil {
            if let continuation = entry.continuation {
                entries[id] = nil
                resumptions.append(
                    Resumption(continuation: continuation, result: .failure(error), startNanoseconds: entry.startNanoseconds)
                )
            } else {
                entry.result = .failure(error)
                entries[id] = entry
            }
        }
        return resumptions
    }
}

/// What a delivery report said about one message.
enum DeliveryOutcome: Sendable {
    case delivered(partition: Int32, offset: Int64)
    case failed(KafkaError)
}
