/// The producer's bookkeeping of messages awaiting their delivery report.
///
/// A send registers ids before handing messages to librdkafka; a delivery report (from the poll thread) may arrive
/// before the sender suspends, so an entry holds either its waiter or the early outcome. A single send waits on its
/// own continuation; a batch send waits once for all of its messages. Methods return what to resume; callers
/// resume continuations outside the lock.
struct ProducerStateMachine {
    typealias SingleContinuation = UnsafeContinuation<DeliveryOutcome, Never>
    typealias BatchContinuation = UnsafeContinuation<[DeliveryOutcome], Never>
    typealias RoomContinuation = UnsafeContinuation<Void, Never>

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
    private var entries = SequentialStore<Entry>()
    private var batches = SequentialStore<Batch>()
    /// Senders that found librdkafka's queue full, waiting for the poll thread to serve delivery reports.
    private var roomWaiters: [RoomContinuation] = []
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
        return entries.append(Entry(startNanoseconds: nowNanoseconds, waiter: .none))
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
    mutating func registerBatch(
        count: Int, nowNanoseconds: UInt64
    ) throws(KafkaError) -> (batch: UInt64, firstID: UInt64) {
        try requireRunning()
        let batch = batches.append(Batch(outcomes: Array(repeating: nil, count: count), remaining: count))
        let firstID = entries.nextID
        for index in 0..<count {
            _ = entries.append(Entry(startNanoseconds: nowNanoseconds, waiter: .batch(batch, index: index)))
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
        let complete = batches.modify(batch) { record -> Bool in
            if record.remaining > 0 {
                record.continuation = continuation
            }
            return record.remaining == 0
        }
        guard complete ?? true else { return nil }
        return batches.remove(batch).map { $0.outcomes.map { $0! } } ?? []
    }

    private mutating func resolve(
        batch: UInt64,
        index: Int,
        outcome: DeliveryOutcome,
        into resumptions: inout [Resumption]
    ) {
        // Mutated in place: copying the record out would copy its outcomes array for every message.
        let finished = batches.modify(batch) { record -> Bool in
            guard record.outcomes[index] == nil else { return false }
            record.outcomes[index] = outcome
            record.remaining -= 1
            return record.remaining == 0 && record.continuation != nil
        }
        guard finished == true, let record = batches.remove(batch), let continuation = record.continuation else {
            return
        }
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
            guard let entry = entries[report.id] else { continue }
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
                // The sender has not suspended yet: keep the outcome for it.
                _ = entries.modify(report.id) { $0.outcome = report.outcome }
            }
        }
    }

    // MARK: - Full queue

    /// A sender waits for room in the local queue; returns false (resume at once) when not running.
    mutating func waitForRoom(_ continuation: RoomContinuation) -> Bool {
        guard case .running = phase else { return false }
        roomWaiters.append(continuation)
        return true
    }

    /// The senders to wake after delivery reports were served (or a poll interval passed).
    mutating func takeRoomWaiters() -> [RoomContinuation] {
        guard !roomWaiters.isEmpty else { return [] }
        defer { roomWaiters.removeAll() }
        return roomWaiters
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
        for (id, var entry) in entries.all where entry.outcome == nil {
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
    /// Boxed: failures are rare, and the common case stays small to copy.
    indirect case failed(KafkaError)
}

/// Values keyed by consecutive ids, stored by position: O(1) insertion, lookup and removal without hashing, for
/// the producer's hot path. Removed slots at the front are reclaimed; memory spans from the oldest live id to the
/// newest.
struct SequentialStore<Value> {
    private var slots: [Value?] = []
    /// Index in `slots` of the oldest slot still kept.
    private var head = 0
    /// The id of `slots[0]`.
    private var base: UInt64 = 1

    /// The id the next `append` returns.
    var nextID: UInt64 { base + UInt64(slots.count) }

    mutating func append(_ value: Value) -> UInt64 {
        let id = nextID
        slots.append(value)
        return id
    }

    subscript(id: UInt64) -> Value? {
        get {
            guard let index = index(of: id) else { return nil }
            return slots[index]
        }
        set {
            guard let index = index(of: id) else { return }
            slots[index] = newValue
            if newValue == nil, index == head {
                reclaimFront()
            }
        }
    }

    /// Mutates the value of `id` in place; `nil` when there is none.
    mutating func modify<Result>(_ id: UInt64, _ body: (inout Value) -> Result) -> Result? {
        guard let index = index(of: id), slots[index] != nil else { return nil }
        return body(&slots[index]!)
    }

    /// Removes and returns the value of `id`.
    mutating func remove(_ id: UInt64) -> Value? {
        let value = self[id]
        self[id] = nil
        return value
    }

    /// Every live value with its id.
    var all: [(UInt64, Value)] {
        (head..<slots.count).compactMap { index in slots[index].map { (base + UInt64(index), $0) } }
    }

    private func index(of id: UInt64) -> Int? {
        guard id >= base + UInt64(head), id < nextID else { return nil }
        return Int(id - base)
    }

    private mutating func reclaimFront() {
        while head < slots.count, slots[head] == nil {
            head += 1
        }
        if head == slots.count {
            base += UInt64(slots.count)
            slots.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 4096, head * 2 >= slots.count {
            slots.removeFirst(head)
            base += UInt64(head)
            head = 0
        }
    }
}
