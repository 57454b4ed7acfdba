/// The state shared between a consumer's poll thread and its callers: the buffer of fetched messages, the single
/// waiting reader, the pause flags, the assignment, outstanding commits and readiness.
///
/// Methods return what to resume; callers resume continuations outside the lock.
struct ConsumerStateMachine {
    typealias MessageContinuation = CheckedContinuation<KafkaMessage?, any Error>
    typealias CommitContinuation = CheckedContinuation<Void, any Error>
    typealias ReadyContinuation = CheckedContinuation<[Int32: Int64], any Error>

    enum Phase {
        case idle
        case running
        /// Shutdown began: no more messages are handed out; commits in flight may still complete.
        case closing
        case closed
    }

    /// A waiting reader and what to give it.
    struct MessageResumption {
        var continuation: MessageContinuation
        var result: Result<KafkaMessage?, KafkaError>
    }

    struct CommitEntry {
        var continuation: CommitContinuation?
        var result: Result<Int, KafkaError>?
    }

    struct CommitResumption {
        var continuation: CommitContinuation
        var result: Result<Int, KafkaError>
    }

    enum Readiness {
        case waiting([UInt64: ReadyContinuation])
        case ready([Int32: Int64])
        case failed(KafkaError)
    }

    /// The poll thread stops taking messages from librdkafka when this many wait in the buffer, and starts
    /// again when it is down to `lowWater`: a slow reader leaves the backlog in librdkafka's bounded prefetch
    /// (`queued.max.messages.kbytes`) instead of growing this buffer. (Pausing the partitions instead would make
    /// librdkafka drop and refetch its prefetch on every cycle, which costs far more.)
    let highWater: Int
    let lowWater: Int

    private(set) var phase = Phase.idle
    private var buffer = MessageQueue()
    private var waiter: MessageContinuation?
    /// Set when the sequence of messages has ended (shutdown: `.success`, fatal error: `.failure`).
    private var end: Result<Void, KafkaError>?
    private(set) var isPausedByApplication = false
    private var isHoldingBack = false
    /// Whether the poll thread has paused fetching in librdkafka.
    private(set) var isFetchPaused = false
    private(set) var assignment: Set<KafkaTopicPartition> = []
    private var commits: [UInt64: CommitEntry] = [:]
    private var nextCommitID: UInt64 = 1
    private var readiness = Readiness.waiting([:])
    private var nextReadyWaiterID: UInt64 = 1

    init(highWater: Int = 2000, lowWater: Int = 1000) {
        self.highWater = highWater
        self.lowWater = lowWater
    }

    // MARK: - Lifecycle

    mutating func startRunning() -> Bool {
        guard case .idle = phase else { return false }
        phase = .running
        return true
    }

    /// Begins shutdown; returns true when this call began it.
    mutating func beginClosing() -> Bool {
        switch phase {
        case .idle, .running:
            phase = .closing
            return true
        case .closing, .closed:
            return false
        }
    }

    /// Ends the message sequence: buffered messages are dropped (they were not committed, so they are redelivered
    /// to whoever owns their partition next), and a waiting reader gets the end.
    mutating func finishMessages(_ result: Result<Void, KafkaError>) -> MessageResumption? {
        if end == nil {
            end = result
        }
        buffer.removeAll()
        guard let waiter else { return nil }
        self.waiter = nil
        return MessageResumption(continuation: waiter, result: endResult)
    }

    /// Final state: every outstanding commit and readiness waiter fails with `error`.
    mutating func close(failingWith error: KafkaError) -> (commits: [CommitResumption], ready: [ReadyContinuation]) {
        phase = .closed
        var resumptions: [CommitResumption] = []
        for (id, var entry) in commits where entry.result == nil {
            if let continuation = entry.continuation {
                commits[id] = nil
                resumptions.append(CommitResumption(continuation: continuation, result: .failure(error)))
            } else {
                entry.result = .failure(error)
                commits[id] = entry
            }
        }
        var readyWaiters: [ReadyContinuation] = []
        if case .waiting(let waiters) = readiness {
            readyWaiters = Array(waiters.values)
            readiness = .failed(error)
        }
        return (resumptions, readyWaiters)
    }

    private var endResult: Result<KafkaMessage?, KafkaError> {
        switch end {
        case .failure(let error): return .failure(error)
        case .success, nil: return .success(nil)
        }
    }

    // MARK: - Messages

    enum NextResult {
        case message(KafkaMessage, wakePoller: Bool)
        case end(Result<KafkaMessage?, KafkaError>)
        case empty
    }

    /// Takes the next deliverable message without suspending, if there is one.
    mutating func takeNext() -> NextResult {
        if !isPausedByApplication, let message = buffer.popFirst() {
            // Crossing the low-water mark wakes the poll thread that held back, without waiting for its timeout.
            return .message(message, wakePoller: isHoldingBack && buffer.count == lowWater)
        }
        if end != nil {
            return .end(endResult)
        }
        return .empty
    }

    /// Parks the (single) reader until a message arrives, unless one is already deliverable.
    mutating func next(continuation: MessageContinuation) -> (resumption: MessageResumption?, wakePoller: Bool) {
        switch takeNext() {
        case .message(let message, let wake):
            return (MessageResumption(continuation: continuation, result: .success(message)), wake)
        case .end(let result):
            return (MessageResumption(continuation: continuation, result: result), false)
        case .empty:
            precondition(waiter == nil, "KafkaConsumerMessages must be iterated by a single task at a time")
            waiter = continuation
            return (nil, false)
        }
    }

    /// The reader's task was cancelled: it gets the end of the sequence.
    mutating func cancelWaiter() -> MessageContinuation? {
        defer { waiter = nil }
        return waiter
    }

    /// Messages from the poll thread; returns the reader to wake, if one waits and may receive now.
    mutating func deliver(_ messages: [KafkaMessage]) -> MessageResumption? {
        guard end == nil, !messages.isEmpty else { return nil }
        for message in messages where assignment.contains(message.topicPartition) {
            buffer.append(message)
        }
        return wakeWaiterIfDeliverable()
    }

    private mutating func wakeWaiterIfDeliverable() -> MessageResumption? {
        guard let waiter, !isPausedByApplication, let message = buffer.popFirst() else { return nil }
        self.waiter = nil
        return MessageResumption(continuation: waiter, result: .success(message))
    }

    // MARK: - Pause

    mutating func pauseByApplication() throws(KafkaError) {
        try requireOpen()
        isPausedByApplication = true
    }

    mutating func resumeByApplication() throws(KafkaError) -> MessageResumption? {
        try requireOpen()
        isPausedByApplication = false
        return wakeWaiterIfDeliverable()
    }

    private func requireOpen() throws(KafkaError) {
        if case .closed = phase {
            throw KafkaError.shutdown("the Kafka consumer is closed")
        }
    }

    /// Decides whether librdkafka's fetching should now be paused or resumed (it follows the application's pause);
    /// returns the new setting when it changed, for the poll thread to apply to the assignment, else nil.
    mutating func fetchPauseChange() -> Bool? {
        guard isPausedByApplication != isFetchPaused else { return nil }
        isFetchPaused = isPausedByApplication
        return isFetchPaused
    }

    /// Whether the poll thread should hold back from taking more messages (the buffer is full). Never while
    /// paused: then librdkafka delivers nothing new, and polling must go on to serve rebalances and to stay
    /// within `max.poll.interval.ms`.
    mutating func shouldHoldBack() -> Bool {
        if isPausedByApplication || end != nil {
            isHoldingBack = false
        } else if buffer.count >= highWater {
            isHoldingBack = true
        } else if buffer.count <= lowWater {
            isHoldingBack = false
        }
        return isHoldingBack
    }

    // MARK: - Assignment

    mutating func assigned(_ partitions: [KafkaTopicPartition]) {
        assignment.formUnion(partitions)
    }

    /// Forgets revoked partitions and drops their undelivered messages: the new owner reads them again from the
    /// last committed offset, and delivering them here as well would break the order per key across members.
    mutating func revoked(_ partitions: [KafkaTopicPartition]) {
        assignment.subtract(partitions)
        let revoked = Set(partitions)
        buffer.removeAll(where: { revoked.contains($0.topicPartition) })
    }

    // MARK: - Commits

    /// Allocates an id for a commit; refuses partitions this member does not own (a late commit from a previous
    /// owner could otherwise move the new owner's position).
    mutating func registerCommit(_ offsets: [KafkaTopicPartitionOffset]) throws(KafkaError) -> UInt64 {
        switch phase {
        case .closed:
            throw KafkaError.shutdown("the Kafka consumer is closed; offsets not committed")
        case .idle, .running, .closing:
            break
        }
        for offset in offsets {
            let partition = KafkaTopicPartition(topic: offset.topic, partition: offset.partition)
            guard assignment.contains(partition) else {
                throw KafkaError(
                    code: .invalidState,
                    message: "\(partition) is not assigned to this consumer (revoked in a rebalance?); "
                        + "its messages are redelivered to the partition's owner"
                )
            }
        }
        let id = nextCommitID
        nextCommitID += 1
        commits[id] = CommitEntry()
        return id
    }

    /// Whether a commit is registered whose result has not been handed to its caller yet.
    var hasOutstandingCommits: Bool {
        !commits.isEmpty
    }

    mutating func abandonCommit(_ id: UInt64) {
        commits[id] = nil
    }

    mutating func awaitCommit(_ id: UInt64, continuation: CommitContinuation) -> CommitResumption? {
        guard var entry = commits[id] else {
            return CommitResumption(
                continuation: continuation,
                result: .failure(KafkaError.shutdown("the Kafka consumer closed before the commit completed"))
            )
        }
        if let result = entry.result {
            commits[id] = nil
            return CommitResumption(continuation: continuation, result: result)
        }
        entry.continuation = continuation
        commits[id] = entry
        return nil
    }

    mutating func commitFinished(_ id: UInt64, result: Result<Int, KafkaError>) -> CommitResumption? {
        guard var entry = commits[id] else { return nil }
        if let continuation = entry.continuation {
            commits[id] = nil
            return CommitResumption(continuation: continuation, result: result)
        }
        entry.result = result
        commits[id] = entry
        return nil
    }

    // MARK: - Readiness (fan-out readers)

    mutating func becameReady(_ offsets: [Int32: Int64]) -> [ReadyContinuation] {
        guard case .waiting(let waiters) = readiness else { return [] }
        readiness = .ready(offsets)
        return Array(waiters.values)
    }

    /// Registers a readiness waiter under `id` (from ``makeReadyWaiterID()``), unless the outcome is known.
    mutating func awaitReady(
        _ continuation: ReadyContinuation,
        id: UInt64
    ) -> Result<[Int32: Int64], any Error>? {
        switch readiness {
        case .ready(let offsets):
            return .success(offsets)
        case .failed(let error):
            return .failure(error)
        case .waiting(var waiters):
            waiters[id] = continuation
            readiness = .waiting(waiters)
            return nil
        }
    }

    mutating func makeReadyWaiterID() -> UInt64 {
        defer { nextReadyWaiterID += 1 }
        return nextReadyWaiterID
    }

    /// The waiter's task was cancelled.
    mutating func cancelReadyWaiter(_ id: UInt64) -> ReadyContinuation? {
        guard case .waiting(var waiters) = readiness, let continuation = waiters.removeValue(forKey: id) else {
            return nil
        }
        readiness = .waiting(waiters)
        return continuation
    }
}

/// A FIFO of messages with amortised O(1) removal at the front.
struct MessageQueue {
    private var storage: [KafkaMessage] = []
    private var head = 0

    var count: Int { storage.count - head }

    mutating func append(_ message: KafkaMessage) {
        storage.append(message)
    }

    mutating func popFirst() -> KafkaMessage? {
        guard head < storage.count else { return nil }
        let message = storage[head]
        head += 1
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024, head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return message
    }

    mutating func removeAll() {
        storage.removeAll()
        head = 0
    }

    mutating func removeAll(where shouldRemove: (KafkaMessage) -> Bool) {
        storage.removeFirst(head)
        head = 0
        storage.removeAll(where: shouldRemove)
    }
}
