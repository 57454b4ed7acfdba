import CallDomain
import CallStore
import Foundation
import Logging
import Metrics
import Synchronization

/// The outcome of `POST /api/v1/calls`.
struct CallAcceptance: Sendable {
    /// The call.
    var resource: CallResource
    /// The answer repeats an earlier request with the same `Idempotency-Key`.
    var replayed: Bool
    /// The resource comes from the call history (current state, answered 200) rather than from the accepted
    /// command (answered 202).
    var fromHistory: Bool
}

/// Accepts call requests: publishes their originate command and answers only after Kafka acknowledged it.
///
/// Without an `Idempotency-Key` a request touches only Kafka. With one, the key is reserved in PostgreSQL
/// (user, key, fingerprint, call id) before publishing, and the call id is derived from (user, key):
/// - concurrent requests with one key in this process share one publish (the first runs, the others wait for its
///   outcome), and recent outcomes are remembered, so that a burst of retries puts exactly one command on the topic;
/// - a replay whose call the history already holds gets that call (200, current state);
/// - a replay whose call the history does not hold yet (history writer behind, or the first request still in
///   flight on another instance) publishes the same command again under the same derived id and answers 202.
///   A second command with one call id is harmless by design: a worker claims a call id once.
/// - the same key with another body is refused (409); a failed publish releases the key so a retry can succeed.
struct CallIntake: Sendable {
    let publisher: any CommandPublishing
    let repository: any CallRepository
    let coalescer: IdempotencyCoalescer
    let metrics: GatewayMetrics
    let publishRetryAfterSeconds: Int
    let liveCallLimit: LiveCallLimit

    func accept(
        _ request: CallRequest, caller: Caller, idempotencyKey: String?, requestID: String, logger: Logger
    ) async throws -> CallAcceptance {
        let traceParent = TraceContext.traceParent(requestID: requestID)
        guard let key = idempotencyKey else {
            try await liveCallLimit.check(caller.organizationID, logger: logger)
            let command = request.command(
                callID: .generate(), requestedAt: Date(), by: caller, requestID: requestID)
            try await publish(command, traceParent: traceParent)
            metrics.callsAccepted.increment()
            return CallAcceptance(resource: CallResource(accepted: command), replayed: false, fromHistory: false)
        }
        let fingerprint = request.fingerprint
        let scope = "\(caller.id.uuidString.lowercased())/\(key)"
        let outcome = try await coalescer.run(scope: scope, fingerprint: fingerprint) {
            try await acceptKeyed(
                request, fingerprint: fingerprint, key: key, caller: caller, requestID: requestID,
                traceParent: traceParent, logger: logger)
        }
        if outcome.shared || outcome.acceptance.replayed {
            metrics.callsReplayed.increment()
            var acceptance = outcome.acceptance
            acceptance.replayed = true
            return acceptance
        }
        metrics.callsAccepted.increment()
        return outcome.acceptance
    }

    private func acceptKeyed(
        _ request: CallRequest, fingerprint: String, key: String, caller: Caller, requestID: String,
        traceParent: String, logger: Logger
    ) async throws -> CallAcceptance {
        let callID = CallID.derived(userID: caller.id, idempotencyKey: key)
        let command = request.command(callID: callID, requestedAt: Date(), by: caller, requestID: requestID)
        let reservation: IdempotencyReservation
        do {
            reservation = try await repository.reserveIdempotencyKey(
                userID: caller.id, key: key, fingerprint: fingerprint, callID: callID)
        } catch {
            logger.error("idempotency key reservation failed", metadata: ["error": .string("\(error)")])
            throw Problem.retryLater(
                .databaseUnavailable, detail: "the idempotency key cannot be recorded right now", after: 2)
        }
        switch reservation {
        case .reserved:
            do {
                // Only a new call is held to the limit: a replay answers with the call it already is.
                try await liveCallLimit.check(caller.organizationID, logger: logger)
                try await publish(command, traceParent: traceParent)
            } catch {
                do {
                    try await repository.releaseIdempotencyKey(userID: caller.id, key: key)
                } catch {
                    logger.error(
                        "could not release the idempotency key of an unpublished call; a retry publishes it again",
                        metadata: ["call.id": .stringConvertible(callID), "error": .string("\(error)")])
                }
                throw error
            }
            return CallAcceptance(resource: CallResource(accepted: command), replayed: false, fromHistory: false)
        case .existing(let storedFingerprint, let storedCallID):
            guard storedFingerprint == fingerprint else {
                throw Problem(
                    .idempotencyConflict,
                    detail: "this Idempotency-Key was used for a different request; use a new key for a new call")
            }
            if let record = try? await repository.call(id: storedCallID, in: caller.organizationID) {
                return CallAcceptance(
                    resource: CallResource(record: record, includeTimeline: true), replayed: true, fromHistory: true)
            }
            var replay = command
            replay.callID = storedCallID
            logger.info(
                "replaying an idempotent call not yet in the history: publishing its command again",
                metadata: ["call.id": .stringConvertible(storedCallID)])
            try await publish(replay, traceParent: traceParent)
            return CallAcceptance(resource: CallResource(accepted: replay), replayed: true, fromHistory: false)
        }
    }

    private func publish(_ command: OriginateCommand, traceParent: String) async throws {
        do {
            try await publisher.publish(command, traceParent: traceParent)
        } catch {
            throw Problem.retryLater(
                .kafkaUnavailable,
                detail: error.timedOut
                    ? "Kafka did not acknowledge the call in time; it was not accepted, retry later"
                    : "Kafka refused the call; it was not accepted, retry later",
                after: publishRetryAfterSeconds)
        }
    }
}

/// Runs one operation per idempotency scope at a time in this process and remembers recent outcomes.
///
/// Waiters resume with the first request's outcome; a failure is not remembered (the key was released, so the
/// next attempt starts afresh). Memory is bounded by evicting the oldest finished entries.
final class IdempotencyCoalescer: Sendable {
    struct Outcome: Sendable {
        var acceptance: CallAcceptance
        /// The caller got another request's outcome.
        var shared: Bool
    }

    private enum Entry {
        case inFlight(fingerprint: String, waiters: [CheckedContinuation<CallAcceptance, any Error>])
        case done(fingerprint: String, acceptance: CallAcceptance, at: ContinuousClock.Instant)
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var finishedOrder: [String] = []
    }

    private let state = Mutex(State())
    private let retention: Duration
    private let capacity: Int

    init(retention: Duration = .seconds(600), capacity: Int = 10_000) {
        self.retention = retention
        self.capacity = capacity
    }

    private enum Plan {
        case run
        case wait
        case reuse(CallAcceptance)
        case conflict
    }

    func run(
        scope: String, fingerprint: String, _ operation: @Sendable () async throws -> CallAcceptance
    ) async throws -> Outcome {
        while true {
            switch plan(scope: scope, fingerprint: fingerprint) {
            case .conflict:
                throw Problem(
                    .idempotencyConflict,
                    detail: "this Idempotency-Key was used for a different request; use a new key for a new call")
            case .reuse(let acceptance):
                return Outcome(acceptance: acceptance, shared: true)
            case .wait:
                do {
                    return Outcome(acceptance: try await wait(scope: scope), shared: true)
                } catch is CoalescerRace {
                    // The first request finished between planning and waiting: plan again, which reuses its
                    // remembered outcome or (after a failure) runs afresh.
                    continue
                }
            case .run:
                do {
                    let acceptance = try await operation()
                    for waiter in finish(scope: scope, fingerprint: fingerprint, acceptance: acceptance) {
                        waiter.resume(returning: acceptance)
                    }
                    return Outcome(acceptance: acceptance, shared: false)
                } catch {
                    for waiter in finish(scope: scope, fingerprint: fingerprint, acceptance: nil) {
                        waiter.resume(throwing: error)
                    }
                    throw error
                }
            }
        }
    }

    private func plan(scope: String, fingerprint: String) -> Plan {
        state.withLock { state in
            switch state.entries[scope] {
            case .inFlight(let running, _)?:
                return running == fingerprint ? .wait : .conflict
            case .done(let done, let acceptance, let at)? where ContinuousClock.now - at < retention:
                return done == fingerprint ? .reuse(acceptance) : .conflict
            default:
                state.entries[scope] = .inFlight(fingerprint: fingerprint, waiters: [])
                return .run
            }
        }
    }

    private func wait(scope: String) async throws -> CallAcceptance {
        try await withCheckedThrowingContinuation { continuation in
            let waiting = state.withLock { state -> Bool in
                guard case .inFlight(let running, var waiters)? = state.entries[scope] else { return false }
                waiters.append(continuation)
                state.entries[scope] = .inFlight(fingerprint: running, waiters: waiters)
                return true
            }
            if !waiting { continuation.resume(throwing: CoalescerRace()) }
        }
    }

    /// Thrown to a waiter that arrived just after the first request finished.
    struct CoalescerRace: Error {}

    private func finish(
        scope: String, fingerprint: String, acceptance: CallAcceptance?
    )
        -> [CheckedContinuation<CallAcceptance, any Error>]
    {
        state.withLock { state in
            guard case .inFlight(_, let waiters)? = state.entries[scope] else { return [] }
            if let acceptance {
                state.entries[scope] = .done(fingerprint: fingerprint, acceptance: acceptance, at: .now)
                state.finishedOrder.append(scope)
                while state.finishedOrder.count > capacity {
                    let oldest = state.finishedOrder.removeFirst()
                    if case .done? = state.entries[oldest] { state.entries[oldest] = nil }
                }
            } else {
                state.entries[scope] = nil
            }
            return waiters
        }
    }
}
