import CallDomain
import CallMessaging
import Foundation
import Kafka
import Logging
import Metrics
import Synchronization

/// Publishes commands and returns only once Kafka acknowledged them.
public protocol CommandPublishing: Sendable {
    /// Publishes an originate command; throws ``PublishFailure`` when Kafka did not acknowledge it in time.
    func publish(_ command: OriginateCommand, traceParent: String) async throws(PublishFailure)
    /// Publishes a hangup or cancel command; throws ``PublishFailure`` when Kafka did not acknowledge it in time.
    func publish(_ command: ControlCommand, traceParent: String) async throws(PublishFailure)
}

/// Kafka did not acknowledge a command within the bound: the request is answered 503 with `Retry-After`.
public struct PublishFailure: Error, CustomStringConvertible {
    /// Whether the bound passed (as opposed to Kafka refusing the message outright).
    public var timedOut: Bool
    /// What happened.
    public var description: String
}

/// The Kafka implementation: the platform's publisher with a hard deadline, metrics and a readiness signal.
///
/// The producer's own delivery timeout is set to the same bound, so a message that misses it is failed by
/// librdkafka too instead of being delivered after the client was told 503. The deadline here is what makes the
/// bound hold even when the producer itself is stuck (for example while it shuts down).
struct KafkaCommandPublisher: CommandPublishing {
    let publisher: CallMessagePublisher
    let timeout: Duration
    let metrics: GatewayMetrics
    let health: KafkaHealth
    let logger: Logger

    func publish(_ command: OriginateCommand, traceParent: String) async throws(PublishFailure) {
        try await send(timer: metrics.publishLatencyOriginate, callID: command.callID, requestID: command.requestID) {
            try await publisher.publish(command, traceParent: traceParent)
        }
    }

    func publish(_ command: ControlCommand, traceParent: String) async throws(PublishFailure) {
        let requestID: String? =
            switch command {
            case .hangup(let hangup): hangup.requestID
            case .cancel(let cancel): cancel.requestID
            }
        try await send(timer: metrics.publishLatencyControl, callID: command.callID, requestID: requestID) {
            try await publisher.publish(command, traceParent: traceParent)
        }
    }

    private func send(
        timer: Metrics.Timer, callID: CallID, requestID: String?,
        _ operation: @escaping @Sendable () async throws -> KafkaDeliveryReceipt
    ) async throws(PublishFailure) {
        var logger = self.logger
        logger[metadataKey: "request.id"] = requestID.map { .string($0) }
        let start = ContinuousClock.now
        let outcome = await Deadline.run(timeout: timeout, operation)
        let elapsed = ContinuousClock.now - start
        switch outcome {
        case .finished(.success):
            timer.recordNanoseconds(elapsed.nanoseconds)
            health.recordSuccess()
        case .finished(.failure(let error)):
            metrics.publishFailures.increment()
            health.recordFailure()
            logger.warning(
                "Kafka refused a command",
                metadata: ["call.id": .stringConvertible(callID), "error": .string(String(describing: error))])
            throw PublishFailure(timedOut: false, description: String(describing: error))
        case .timedOut:
            metrics.publishFailures.increment()
            health.recordFailure()
            logger.warning(
                "Kafka did not acknowledge a command in time",
                metadata: ["call.id": .stringConvertible(callID), "kafka.timeout": .stringConvertible(timeout)])
            throw PublishFailure(timedOut: true, description: "no acknowledgement within \(timeout)")
        }
    }
}

/// Runs an operation with a deadline without waiting for it past the deadline.
///
/// A structured task group would wait for the operation at the end of its scope, and a Kafka send that already
/// handed its message to librdkafka does not stop when cancelled; so the operation runs in its own task, and
/// whichever of it and the timer finishes first resumes the caller.
enum Deadline {
    enum Outcome<Value: Sendable>: Sendable {
        case finished(Result<Value, any Error>)
        case timedOut
    }

    static func run<Value: Sendable>(
        timeout: Duration, _ operation: @escaping @Sendable () async throws -> Value
    ) async -> Outcome<Value> {
        let gate = Gate<Value>()
        let outcome = await withCheckedContinuation { (continuation: CheckedContinuation<Outcome<Value>, Never>) in
            gate.arm(continuation)
            Task {
                do {
                    gate.finish(.finished(.success(try await operation())))
                } catch {
                    gate.finish(.finished(.failure(error)))
                }
            }
            let timer = Task {
                try? await Task.sleep(for: timeout)
                gate.finish(.timedOut)
            }
            gate.keep(timer: timer)
        }
        // The timer is no longer needed; the operation is left to finish on its own, since cancelling it would
        // not withdraw a message already handed to Kafka.
        gate.cancelTimer()
        return outcome
    }

    /// Resumes the caller once, with whichever outcome comes first.
    private final class Gate<Value: Sendable>: Sendable {
        private struct State {
            var continuation: CheckedContinuation<Outcome<Value>, Never>?
            var timer: Task<Void, Never>?
        }

        private let state = Mutex(State())

        func arm(_ continuation: CheckedContinuation<Outcome<Value>, Never>) {
            state.withLock { $0.continuation = continuation }
        }

        func keep(timer: Task<Void, Never>) {
            state.withLock { $0.timer = timer }
        }

        func finish(_ outcome: Outcome<Value>) {
            let waiting = state.withLock { state in
                defer { state.continuation = nil }
                return state.continuation
            }
            waiting?.resume(returning: outcome)
        }

        func cancelTimer() {
            state.withLock { $0.timer }?.cancel()
        }
    }
}

extension Duration {
    /// The duration in whole nanoseconds.
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
