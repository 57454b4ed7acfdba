import ARI
import CallDomain
import CallMessaging
import CallStore
import Kafka
import Logging
import Metrics
import ServiceSupport
import Synchronization

/// The dependencies the worker's services share, built once by `buildServiceGroup`.
struct WorkerContext: Sendable {
    let configuration: WorkerConfiguration
    let store: any CallRepository
    let ari: any NodeClient
    let publisher: any StatusPublisher
    let tracker: CallTracker
    let gate: IntakeGate
    let readiness: WorkerReadiness
    /// The worker's right to act for its calls (its heartbeat); see ``OwnerLease``.
    let lease: OwnerLease
    let metrics: WorkerMetrics
    /// The line of claims held back by organization limits.
    let pacer = OrganizationPacer()
    /// The process logger, with `node.id` and `worker.id`.
    let logger: Logger
    /// Records the answered calls that ask for it; `nil` only where a test builds a context that records nothing.
    var recorder: Recorder?

    /// A logger for one call: `call.id` and the request id carried by the command's `traceparent`.
    func logger(for callID: CallID, traceParent: String? = nil, requestID: String? = nil) -> Logger {
        var logger = self.logger
        logger[metadataKey: "call.id"] = "\(callID)"
        if let request = requestID ?? traceParent.flatMap(TraceContext.traceID(fromTraceParent:)) {
            logger[metadataKey: "request.id"] = "\(request)"
        }
        return logger
    }

    /// Publishes one status event, retrying until the brokers acknowledge it; `false` only when the producer is shut
    /// down or the task is cancelled (the event is then lost to this process, and reconciliation covers the call).
    func publishUntilAcknowledged(_ event: CallStatusEvent, traceParent: String?) async -> Bool {
        var delay = Duration.milliseconds(100)
        while true {
            do {
                try await publisher.publish(event, traceParent: traceParent)
                readiness.setKafkaHealthy(true)
                return true
            } catch let error as KafkaError where error.code == .shutdown {
                logger(for: event.callID, traceParent: traceParent).error(
                    "status event not published: the Kafka producer is shut down",
                    metadata: ["call.status": "\(event.status.rawValue)", "call.seq": "\(event.seq)"])
                return false
            } catch {
                if Task.isCancelled { return false }
                readiness.setKafkaHealthy(false)
                logger(for: event.callID, traceParent: traceParent).warning(
                    "status event not acknowledged; retrying",
                    metadata: [
                        "call.status": "\(event.status.rawValue)", "call.seq": "\(event.seq)", "error": "\(error)",
                    ])
                guard (try? await Task.sleep(for: delay)) != nil else { return false }
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    /// Copies a message that can never be processed to the dead-letter topic (``CallMessagePublisher/deadLetter``),
    /// retrying until the brokers acknowledge it; `false` only when the producer is shut down or the task is
    /// cancelled (the message is then left uncommitted, to be processed again by the next owner of its partition).
    func deadLetter(_ message: KafkaMessage, reason: DeadLetterReason, error: any Error, group: String) async -> Bool {
        var delay = Duration.milliseconds(100)
        let detail = String(describing: error)
        var logger = self.logger
        logger[metadataKey: "kafka.topic"] = "\(message.topic)"
        logger[metadataKey: "kafka.partition"] = "\(message.partition)"
        logger[metadataKey: "kafka.offset"] = "\(message.offset)"
        logger[metadataKey: "message.key"] = "\(message.keyString ?? "")"
        while true {
            do {
                try await publisher.deadLetter(message, reason: reason, detail: detail, consumerGroup: group)
                Counter(
                    label: "dialer_deadletters_total",
                    dimensions: [("reason", reason.rawValue), ("topic", message.topic)]
                ).increment()
                logger.error(
                    "message sent to the dead-letter topic",
                    metadata: ["dlq.reason": "\(reason.rawValue)", "error": "\(detail)"])
                return true
            } catch let error as KafkaError where error.code == .shutdown {
                return false
            } catch {
                if Task.isCancelled { return false }
                logger.warning("dead letter not acknowledged; retrying", metadata: ["error": "\(error)"])
                guard (try? await Task.sleep(for: delay)) != nil else { return false }
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    /// Runs a PostgreSQL operation until it succeeds, closing the intake gate while it fails (the dialer's
    /// partitions pause until PostgreSQL is back). `nil` only when the task is cancelled.
    ///
    /// Each attempt is bounded by `DATABASE_TIMEOUT_SECONDS`: with the server gone, the connection pool keeps a query
    /// waiting for a connection for a long time, and the worker must notice the outage in seconds. A timed-out
    /// attempt may still have been applied; callers whose operation is not idempotent check for that (`retried`).
    func withDatabaseRetry<Result: Sendable>(
        _ what: String,
        logger: Logger,
        _ operation: @escaping @Sendable () async throws -> Result
    ) async -> Result? {
        await withDatabaseRetries(what, logger: logger, operation)?.value
    }

    /// What storing a message's data came to.
    enum StoreAttempt<Value: Sendable>: Sendable {
        case stored(Value)
        /// PostgreSQL refused the data itself (``FailureClass/permanent(_:)``): retrying cannot help.
        case refused(DeadLetterReason, any Error)
        case cancelled
    }

    /// ``withDatabaseRetry(_:logger:_:)`` for an operation on a message's own data: a refusal of that data (a data
    /// exception, a constraint) is returned at once instead of being retried forever, so that the message can go to
    /// the dead-letter topic rather than stall its partition.
    func storing<Result: Sendable>(
        _ what: String,
        logger: Logger,
        _ operation: @escaping @Sendable () async throws -> Result
    ) async -> StoreAttempt<Result> {
        var refusal: (DeadLetterReason, any Error)?
        let value = await withDatabaseRetries(
            what, logger: logger,
            stopOn: { error in
                guard case .permanent(let reason) = FailureClass.of(error) else { return false }
                refusal = (reason, error)
                return true
            }, operation)
        if let value { return .stored(value.value) }
        if let refusal { return .refused(refusal.0, refusal.1) }
        return .cancelled
    }

    /// ``withDatabaseRetry(_:logger:_:)`` that also says whether an earlier attempt failed (and so may have been
    /// applied without the worker hearing of it). `stopOn` may end the retries for an error (`nil` is returned).
    func withDatabaseRetries<Result: Sendable>(
        _ what: String,
        logger: Logger,
        stopOn: (any Error) -> Bool = { _ in false },
        _ operation: @escaping @Sendable () async throws -> Result
    ) async -> (value: Result, retried: Bool)? {
        var delay = Duration.milliseconds(100)
        let timeout = configuration.databaseTimeout
        var retried = false
        while true {
            do {
                let result = try await Self.withTimeout(timeout, operation)
                gate.setDatabaseAvailable(true)
                return (result, retried)
            } catch {
                if Task.isCancelled || stopOn(error) { return nil }
                retried = true
                if gate.databaseAvailable {
                    logger.warning(
                        "PostgreSQL unreachable; pausing intake until it is back",
                        metadata: ["operation": "\(what)", "error": "\(String(reflecting: error))"])
                }
                gate.setDatabaseAvailable(false)
                guard (try? await Task.sleep(for: delay)) != nil else { return nil }
                delay = min(delay * 2, .seconds(2))
            }
        }
    }

    /// A PostgreSQL operation took longer than `DATABASE_TIMEOUT_SECONDS`.
    typealias DatabaseTimeout = OperationTimeout

    /// Runs `operation`, giving up after `timeout` (see ``ServiceSupport/withTimeout(_:_:)``).
    static func withTimeout<Result: Sendable>(
        _ timeout: Duration,
        _ operation: @escaping @Sendable () async throws -> Result
    ) async throws -> Result {
        try await ServiceSupport.withTimeout(timeout, operation)
    }
}

/// What `/ready` reports besides the gate's view of ARI and PostgreSQL.
final class WorkerReadiness: Sendable {
    private struct State {
        var kafkaHealthy = true
        var controlReaderReady = false
        var dialerConsumerRunning = false
        var historyConsumerRunning = false
    }

    private let state = Mutex(State())
    private let producerPrepared: @Sendable () -> Bool

    /// - Parameter producerPrepared: whether the status producer has its topic's metadata and its idempotent
    ///   producer id (``KafkaProducer/isPrepared``): until then a status event would pay for the producer's start.
    init(producerPrepared: @escaping @Sendable () -> Bool = { true }) {
        self.producerPrepared = producerPrepared
    }

    /// The last status publication succeeded (or none failed since).
    func setKafkaHealthy(_ healthy: Bool) { state.withLock { $0.kafkaHealthy = healthy } }
    /// The control reader has its partitions: a hangup published from now on is seen.
    func setControlReaderReady(_ ready: Bool) { state.withLock { $0.controlReaderReady = ready } }
    /// The dialer's consumer is running.
    func setDialerConsumerRunning(_ running: Bool) { state.withLock { $0.dialerConsumerRunning = running } }
    /// The history writer's consumer is running.
    func setHistoryConsumerRunning(_ running: Bool) { state.withLock { $0.historyConsumerRunning = running } }

    /// Whether Kafka looks usable: the producer is prepared, publications are acknowledged and every consumer is
    /// running.
    var kafkaReady: Bool {
        producerPrepared()
            && state.withLock {
                $0.kafkaHealthy && $0.controlReaderReady && $0.dialerConsumerRunning && $0.historyConsumerRunning
            }
    }
}
