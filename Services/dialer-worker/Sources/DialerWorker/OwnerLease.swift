import CallDomain
import CallStore
import Logging
import Metrics
import Synchronization

/// The worker's right to act for its calls, kept by a heartbeat in PostgreSQL.
///
/// Other workers of the node take a worker's live calls over once its heartbeat is older than `OWNER_TIMEOUT_SECONDS`
/// (``CallStore/abandonedCalls(nodeID:ownerTimeout:excludingWorker:limit:)``). The worker itself stops originating and
/// publishing status events once half of that has passed since it sent its last successful heartbeat: a worker that
/// stalls (a long pause, SIGSTOP, a cut network) has stopped acting before anyone can take its calls. When it can
/// renew its heartbeat again, it first asks PostgreSQL which of its calls are still its own and drops the others
/// (their owner epoch moved on), and only then acts again.
final class OwnerLease: Sendable {
    private struct State {
        /// Until when the worker may act: the send instant of its last successful heartbeat plus the lease.
        var validUntil: ContinuousClock.Instant?
        /// Since when the lease has been held without a lapse.
        var heldSince: ContinuousClock.Instant?
    }

    private let state = Mutex(State())
    /// How long a heartbeat lets the worker act: half the owner timeout.
    let duration: Duration
    /// The owner timeout itself (how long others wait before taking calls over).
    let ownerTimeout: Duration

    init(ownerTimeout: Duration) {
        self.ownerTimeout = ownerTimeout
        self.duration = ownerTimeout / 2
    }

    /// Whether the worker may act for its calls now.
    func isValid(at now: ContinuousClock.Instant = .now) -> Bool {
        state.withLock { state in state.validUntil.map { now < $0 } ?? false }
    }

    /// Whether the lease has been held without a lapse for at least `span` (a worker just back from an outage of its
    /// own does not take others' calls over: their heartbeats may have failed for the same reason).
    func heldContinuously(for span: Duration, at now: ContinuousClock.Instant = .now) -> Bool {
        state.withLock { state in
            guard let since = state.heldSince, let until = state.validUntil, now < until else { return false }
            return now - since >= span
        }
    }

    /// A heartbeat sent at `sentAt` succeeded (and, after a lapse, the calls were revalidated).
    func renewed(sentAt: ContinuousClock.Instant, now: ContinuousClock.Instant = .now) {
        state.withLock { state in
            let wasValid = state.validUntil.map { now < $0 } ?? false
            if !wasValid { state.heldSince = now }
            state.validUntil = sentAt + duration
        }
    }

    /// Gives the lease up at once, as a lapse would (the lease tests start from a lapse with it).
    func release() {
        state.withLock { state in
            state.validUntil = nil
            state.heldSince = nil
        }
    }

    /// Waits until the lease is valid; `false` when the task is cancelled first.
    func waitUntilValid() async -> Bool {
        while !isValid() {
            guard (try? await Task.sleep(for: .milliseconds(50))) != nil else { return false }
        }
        return true
    }
}

/// Keeps the worker's ``OwnerLease``: a heartbeat every eighth of the owner timeout and, after a lapse, the check of
/// which calls are still this worker's.
struct LeaseKeeper: Sendable {
    let context: WorkerContext
    let logger: Logger

    func run() async {
        let lease = context.lease
        let store = context.store
        let configuration = context.configuration
        let interval = configuration.ownerTimeout / 8
        var wasValid = false
        while !Task.isCancelled {
            let sentAt = ContinuousClock.now
            let valid = lease.isValid(at: sentAt)
            if wasValid, !valid {
                logger.warning(
                    "owner lease lapsed: no heartbeat recorded in time; not acting for calls until renewed",
                    metadata: ["owner.lease": "\(lease.duration)"])
            }
            if !valid {
                context.gate.setLeaseHeld(false)
                context.metrics.ownerLease.record(0)
            }
            do {
                try await WorkerContext.withTimeout(configuration.databaseTimeout) {
                    try await store.heartbeat(workerID: configuration.workerID, nodeID: configuration.nodeID)
                }
                if !valid {
                    try await revalidate()
                }
                lease.renewed(sentAt: sentAt)
                context.gate.setLeaseHeld(lease.isValid())
                context.metrics.ownerLease.record(lease.isValid() ? 1 : 0)
                if !valid { logger.info("owner lease held") }
            } catch {
                logger.debug("heartbeat not recorded", metadata: ["error": "\(error)"])
            }
            wasValid = lease.isValid()
            guard (try? await Task.sleep(for: interval)) != nil else { return }
        }
    }

    /// Drops the calls another worker took over while this one's lease had lapsed.
    private func revalidate() async throws {
        let tracker = context.tracker
        // The epochs held are read before PostgreSQL: a call claimed meanwhile is not judged on a row read before its
        // claim was committed (that row would still say `queued`, epoch 0).
        let epochs = tracker.ownerEpochs()
        guard !epochs.isEmpty else { return }
        let ids = Array(epochs.keys)
        let store = context.store
        let owners = try await WorkerContext.withTimeout(context.configuration.databaseTimeout) {
            try await store.owners(of: ids)
        }
        // Only a takeover raises a call's epoch past the one this worker holds.
        var lost = Set<CallID>()
        for (id, held) in epochs {
            if let owner = owners[id], owner.epoch > held { lost.insert(id) }
        }
        guard !lost.isEmpty else { return }
        let (released, waiters) = tracker.drop(lost)
        for _ in 0..<released { context.gate.releaseSlot() }
        for waiter in waiters { waiter.resume(returning: false) }
        context.metrics.callsLostToTakeover.increment(by: lost.count)
        context.metrics.liveCalls.record(tracker.count)
        for id in lost {
            context.logger(for: id).warning(
                "call taken over by another worker while this one's lease had lapsed; dropped without publishing",
                metadata: [
                    "owner.worker_id": "\(owners[id]?.workerID ?? "")", "owner.epoch": "\(owners[id]?.epoch ?? 0)",
                ])
        }
    }
}
