import ARI
import CallDomain
import CallMessaging
import CallStore
import Foundation
import Kafka
import Logging
import Metrics
import ServiceLifecycle
import ServiceSupport
import Synchronization

/// Places and tracks calls: consumes originate commands (group `dialer-workers`), claims each in PostgreSQL,
/// originates it on the node, follows its channel's ARI events to a terminal status and publishes every status change.
///
/// It owns its consumer's lifecycle so that a shutdown can stop intake, finish the originates in flight, commit their
/// offsets and leave the group at once (the partitions move to other workers), and then keep tracking its live
/// calls for up to the drain timeout while ARI and Kafka are still up.
///
/// One call's path, file by file: `Dialer+Intake` (the gate admits a command), `Dialer+Placement` (claim, fenced
/// originate, retries while the node boots), `Dialer+ChannelEvents` (the channel's ARI events drive the
/// ``CallTracker``), `Dialer+Outbox` (each status event published in order). Beside it: `Dialer+Reconciliation`
/// (missed events, vanished channels) and `Dialer+Ownership` (adopting a previous process's calls, taking over a
/// stopped worker's).
final class Dialer: Service {
    typealias Job = @Sendable () async -> Void

    let context: WorkerContext
    let consumer: KafkaConsumer
    let events: ARIEventStream
    let history: HistoryWriter
    let offsets = Mutex(OffsetTracker())
    /// Calls this worker ended lately: a stopping worker waits until the history holds their ends.
    let recentlyEnded = Mutex(RecentlyEnded(window: .seconds(30)))
    /// Events of a previous process's calls, held while adoption waits for the history (`nil` otherwise).
    let adoptionHold = Mutex<AdoptionHold?>(nil)
    let jobs: AsyncStream<Job>
    let jobsContinuation: AsyncStream<Job>.Continuation
    let logger: Logger

    /// How many status numbers a worker taking over a call skips: a call's owner publishes at most four events
    /// after `dispatched`, so numbers the previous owner may have published unseen are never reused.
    static let takeoverSeqSkip = 5

    init(context: WorkerContext, consumer: KafkaConsumer, events: ARIEventStream, history: HistoryWriter) {
        self.context = context
        self.consumer = consumer
        self.events = events
        self.history = history
        (jobs, jobsContinuation) = AsyncStream.makeStream(of: Job.self)
        var logger = context.logger
        logger[metadataKey: "component"] = "dialer"
        self.logger = logger
    }

    var configuration: WorkerConfiguration { context.configuration }

    /// Sends the originates (see ``Originator``).
    var originator: Originator { Originator(context: context, logger: logger) }

    // MARK: - Lifecycle

    func run() async throws {
        let consumer = self.consumer
        // Detached so that the consumer does not see this service's graceful shutdown: it must leave the group only
        // after the originates in flight are committed (see `shutDown`). Cancelling this service cancels it.
        let consumerTask = Task.detached { try await consumer.run() }
        context.readiness.setDialerConsumerRunning(true)
        var failure: (any Error)?
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.runJobs() }
                group.addTask { await self.processEvents() }
                group.addTask { await self.followConnection() }
                group.addTask { await self.reconcileRegularly() }
                group.addTask { await self.probeDatabase() }
                group.addTask { await self.probeNode() }
                group.addTask { await LeaseKeeper(context: self.context, logger: self.logger).run() }
                group.addTask { await self.takeOverAbandonedRegularly() }
                do {
                    try await cancelWhenGracefulShutdown { try await self.intake() }
                } catch {
                    failure = error
                    logger.error("dialer intake failed", metadata: ["error": "\(error)"])
                }
                await shutDown(consumerTask: consumerTask)
                group.cancelAll()
            }
        } onCancel: {
            consumerTask.cancel()
        }
        context.readiness.setDialerConsumerRunning(false)
        if failure == nil, case .failure(let error) = await consumerTask.result, !(error is CancellationError) {
            failure = error
        }
        if let failure { throw failure }
    }

    /// Stops intake, finishes the originates in flight, leaves the group, then tracks live calls until they end or
    /// the drain timeout passes. Live calls are never hung up: a successor of this node adopts them.
    func shutDown(consumerTask: Task<Void, any Error>) async {
        context.gate.stop()
        do {
            try consumer.pause()
        } catch {
            // The gate is stopped: nothing more is taken either way.
            logger.debug("partitions not paused at shutdown", metadata: ["error": "\(error)"])
        }
        let placingDeadline =
            ContinuousClock.now + configuration.ari.requestTimeout + configuration.kafkaDeliveryTimeout
        await waitUntil(placingDeadline) { self.context.gate.placing == 0 }
        if context.gate.placing > 0 {
            logger.warning(
                "leaving the group with originates still in flight",
                metadata: ["dialer.placing": "\(context.gate.placing)"])
        }
        consumerTask.cancel()
        _ = await consumerTask.result
        let live = context.tracker.count
        if live > 0 {
            logger.info(
                "draining: tracking live calls until they end",
                metadata: ["dialer.live_calls": "\(live)", "drain.timeout": "\(configuration.drainTimeout)"])
        }
        await waitUntil(.now + configuration.drainTimeout) { self.context.tracker.count == 0 }
        let left = context.tracker.count
        if left > 0 {
            logger.warning(
                "drain timeout: leaving live calls to the next process of this node (they are not hung up)",
                metadata: ["dialer.live_calls": "\(left)"])
        }
        await waitUntil(.now + .seconds(10)) { self.context.tracker.pendingOutboxes == 0 }
        await waitForHistory()
        jobsContinuation.finish()
    }

    /// Waits (at most 10 s) until PostgreSQL holds the terminal events this worker published lately. The next
    /// process of this node adopts the calls PostgreSQL shows live: one whose end was still on its way to the history
    /// would be ended a second time, with a second terminal event on the topic.
    func waitForHistory() async {
        var pending = recentlyEnded.withLock { $0.within(now: .now) }
        guard !pending.isEmpty else { return }
        let store = context.store
        let timeout = configuration.databaseTimeout
        let deadline = ContinuousClock.now + .seconds(10)
        while !pending.isEmpty, ContinuousClock.now < deadline {
            let ids = Array(pending.keys)
            if let stored = try? await WorkerContext.withTimeout(timeout, { try await store.sequences(of: ids) }) {
                pending = pending.filter { id, seq in (stored[id] ?? -1) < seq }
            }
            guard !pending.isEmpty, (try? await Task.sleep(for: .milliseconds(50))) != nil else { break }
        }
        if !pending.isEmpty {
            logger.warning(
                "stopping before the history recorded the end of recent calls; the next process may end them again",
                metadata: ["dialer.unrecorded_ends": "\(pending.count)"])
        }
    }

    func waitUntil(_ deadline: ContinuousClock.Instant, _ condition: @Sendable () -> Bool) async {
        while !condition(), ContinuousClock.now < deadline {
            guard (try? await Task.sleep(for: .milliseconds(50))) != nil else { return }
        }
    }

    func runJobs() async {
        await withDiscardingTaskGroup { group in
            for await job in jobs {
                group.addTask { await job() }
            }
        }
    }

    func spawn(_ job: @escaping Job) {
        jobsContinuation.yield(job)
    }

    /// Spawns a job of one call's, inside the call's trace: the ARI requests it makes are recorded there.
    func spawn(for callID: CallID, _ job: @escaping Job) {
        guard let traceParent = traceParent(of: callID) else { return spawn(job) }
        spawn { await TraceSpans.withParent(traceParent) { await job() } }
    }

    /// The trace a call's later work joins; `nil` with tracing off (no lookup then).
    func traceParent(of callID: CallID) -> String? {
        TracingSetup.isEnabled ? context.tracker.traceParent(of: callID) : nil
    }

    // MARK: - Actions

    func perform(_ actions: [TrackerAction]) {
        for action in actions {
            switch action {
            case .startPublishing(let callID):
                spawn { await self.publishOutbox(of: callID) }
            case .continueInDialplan(let callID, let channelID, let target):
                spawn(for: callID) { await self.continueCall(callID, channelID: channelID, target: target) }
            case .hangup(let callID, let channelID):
                let logger = context.logger(for: callID)
                let ari = context.ari
                spawn(for: callID) { await ControlHandler.hangUp(channelID: channelID, ari: ari, logger: logger) }
            case .readMachineDetection(let callID, let channelID):
                spawn(for: callID) { await self.readMachineDetection(callID, channelID: channelID) }
            case .startRecording(let callID, let channelID, let organizationID):
                context.recorder?.start(
                    callID, channelID: channelID, organizationID: organizationID,
                    traceParent: traceParent(of: callID))
            case .releaseSlot:
                context.gate.releaseSlot()
                context.metrics.liveCalls.record(context.tracker.count)
            case .ended(let event):
                context.metrics.recordOutcome(event.status)
                var metadata: Logger.Metadata = ["call.status": "\(event.status.rawValue)", "call.seq": "\(event.seq)"]
                if let cause = event.hangupCause { metadata["call.hangup_cause"] = "\(cause.code) \(cause.text)" }
                if let reason = event.failureReason { metadata["call.failure_reason"] = "\(reason.rawValue)" }
                context.logger(for: event.callID).info("call ended", metadata: metadata)
            }
        }
    }
}
