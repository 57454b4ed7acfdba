/// The producer's bookkeeping of messages awaiting their delivery report.
///
/// A send registers ids before handing messages to librdkafka; a delivery report (from the poll thread) may arrive
/// before the sender suspends, so an entry holds either its waiter or the early outcome. A single send waits on its
/// own continuation; a batch send waits once for all of its messages. Methods return what to resume; callers
/// resume continuations outside the lock.
struct ProducerStateMachine {
    typealias SingleContinuation = UnsafeContinuation<DeliveryOutcome, Never>
    typealias BatchContinuation = UnsafeContinuation<[DeliveryOutcome], Never>

    enum Phase {
        case running
        /// Graceful shutdown began: no new sends; outstanding ones get their reports or fail.
        case draining
        /// Everything was resolved; any send from now on fails.
        case closed
    }

    private enum Waiter {
        case none
        case single(SingleContinuation)
        /// Message `index` of batch `batch`.
        case batch(UInt64, index: Int)
    }

    private struct Entry {
        var startNanoseconds: UInt64
        var waiter: Waiter
        var outcome: DeliveryOutcome?
    }

    private struct Batch {
        var outcomes: [DeliveryOutcome?]
        var remaining: Int
        var continuation: BatchContinuation?
    }

    /// What to resume: a single sender or a whole batch.
    enum Resumption {
        case single(SingleContinuation, DeliveryOutcome)
        case batch(BatchContinuation, [DeliveryOutcome])
    }

    private(set) var phase = Phase.running
    private var entries: [UInt64: Entry] = [:]
    private var batches: [UInt64: Batch] = [:]
    private var nextID: UInt64 = 1
    private var hasRun = false

    /// Marks the single allowed `run()`; returns false for a second call.
    mutating func startRunning() -> Bool {
        defer { hasRun = true }
        return !hasRun
    }

    private func requireRunning() throws(KafkaError) {
        guard case .running = phase else {
            throw KafkaError.shutdown("the Kafka producer is shutting down; the message was not sent")
        }
    }

    // MARK: - Single sends

    /// Allocates an id for a message about to be produced.
    mutating func register(nowNanoseconds: UInt64) throws(KafkaError) -> UInt64 {
        try requireRunning()
        let id = nextID
        nextID += 1
        entries[id] = Entry(startNanoseconds: nowNanoseconds, waiter: .none)
        return id
    }

    /// The message never reached librdkafka.
    mutating func abandon(_ id: UInt64) {
        entries[id] = nil
    }

    /// The sender suspends for the report of `id`; returns the outcome at once when it is already known.
    mutating func awaitReport(_ id: UInt64, continuation: SingleContinuation) -> DeliveryOutcome? {
        guard var entry = entries[id] else {
            return .failed(KafkaError.shutdown("the Kafka producer shut down before delivery was confirmed"))
        }
        if let outcome = entry.outcome {
            entries[id] = nil
            return outcome
        }
        entry.waiter = .single(continuation)
        entries[id] = entry
        return nil
    }

    // MARK: - Batches

    /// Allocates a batch and one id per message (consecutive, starting at the returned `firstID`).
    mutating func registerBatch(count: Int, nowNanoseconds: UInt64) throws(KafkaError) -> (batch: UInt64, firstID: UInt64) {
        try requireRunning()
        let batch = nextID
        let firstID = nextID + 1
        nextID += UInt64(count) + 1
        batches[batch] = Batch(outcomes: Array(repeating: nil, count: count), remaining: count)
        for index in 0..<count {
            entries[firstID + UInt64(index)] = Entry(startNanoseconds: nowNanoseconds, waiter: .batch(batch, index: index))
        }
        return (batch, firstID)
    }

    /// Message `index` of a batch will get no report (it failed before reaching librdkafka).
    mutating func batchMessageFailed(batch: UInt64, id: UInt64, index: Int, error: KafkaError) {
        entries[id] = nil
        var resumptions: [Resumption] = []
        resolve(batch: batch, index: index, outcome: .failed(error), into: &resumptions)
        precondition(resumptions.isEmpty, "a batch resumes only after its sender suspended")
    }

    /// The batch's sender suspends; returns the outcomes at once when all are known.
    mutating func awaitBatch(_ batch: UInt64, continuation: BatchContinuation) -> [DeliveryOutcome]? {
        guard var record = batches[batch] else { return [] }
        if record.remaining == 0 {
            batches[batch] = nil
            return record.outcomes.map { $0! }
        }
        record.continuation = continuation
        batches[batch] = record
        return nil
    }

    private mutating func resolve(batch: UInt64, index: Int, outcome: DeliveryOutcome, into resumptions: inout [Resumption]) {
        // Mutated in place: copying the record out would copy its outcomes array for every message.
        // (The temporary copy in `map` is released before the in-place mutation below.)
        guard batches[batch].map({ $0.outcomes[index] == nil }) == true else { return }
        batches[batch]!.outcomes[index] = outcome
        batches[batch]!.remaining -= 1
        guard batches[batch]!.remaining == 0, let continuation = batches[batch]!.continuation else { return }
        let record = batches.removeValue(forKey: batch)!
        resumptions.append(.batch(continuation, record.outcomes.map { $0! }))
    }

    // MARK: - Reports

    /// Delivery reports from the poll thread. `latencies` receives the send-to-report time of each delivered one.
    mutating func reportsArrived(
        _ reports: [(id: UInt64, outcome: DeliveryOutcome)],
        nowNanoseconds: UInt64,
        into resumptions: inout [Resumption],
        latencies: inout [UInt64]
    ) {
        for report in reports {
            guard var entry = entries[report.id] else { continue }
            if case .delivered = report.outcome {
                latencies.append(nowNanoseconds &- entry.startNanoseconds)
            }
            switch entry.waiter {
            case .single(let continuation):
                entries[report.id] = nil
                resumptions.append(.single(continuation, report.outcome))
            case .batch(let batch, let index):
                entries[report.id] = nil
                resolve(batch: batch, index: index, outcome: report.outcome, into: &resumptions)
            case .none:
                entry.outcome = report.outcome
                entries[report.id] = entry
            }
        }
    }

    // MARK: - Shutdown

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
        for (id, var entry) in entries where entry.outcome == nil {
            switch entry.waiter {
            case .single(let continuation):
                entries[id] = nil
                resumptions.append(.single(continuation, .failed(error)))
            case .batch(let batch, let index):
                entries[id] = nil
                resolve(batch: batch, index: index, outcome: .failed(error), into: &resumptions)
            case .none:
                entry.outcome = .failed(error)
                entries[id] = entry
            }
        }
        return resumptions
    }
}

/// What a delivery report said about one message.
enum DeliveryOutcome: Sendable, Equatable {
    case delivered(partition: Int32, offset: Int64)
    case failed(KafkaError)
}
