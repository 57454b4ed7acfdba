import ARI
import CallDomain
import CallMessaging
import CallStore
import Foundation
import Kafka
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Places and tracks calls: consumes originate commands (group `dialer-workers`), claims each in PostgreSQL,
/// originates it on the node, follows its channel's ARI events to a terminal status and publishes every status change.
///
/// It owns its consumer's lifecycle so that a shutdown can stop intake, finish the originates in flight, commit their
/// offsets and leave the group at once (the partitions move to other workers), and then keep tracking its live
/// calls for up to the drain timeout while ARI and Kafka are still up.
final class Dialer: Service {
    typealias Job = @Sendable () async -> Void

    private let context: WorkerContext
    private let consumer: KafkaConsumer
    private let events: ARIEventStream
    private let history: HistoryWriter
    private let offsets = Mutex(OffsetTracker())
    /// Calls this worker ended lately: a stopping worker waits until the history holds their ends.
    private let recentlyEnded = Mutex(RecentlyEnded(window: .seconds(30)))
    /// Events of a previous process's calls, held while adoption waits for the history (`nil` otherwise).
    private let adoptionHold = Mutex<AdoptionHold?>(nil)
    private let jobs: AsyncStream<Job>
    private let jobsContinuation: AsyncStream<Job>.Continuation
    private let logger: Logger

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

    private var configuration: WorkerConfiguration { context.configuration }

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
    private func shutDown(consumerTask: Task<Void, any Error>) async {
        context.gate.stop()
        try? consumer.pause()
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
    private func waitForHistory() async {
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

    private func waitUntil(_ deadline: ContinuousClock.Instant, _ condition: @Sendable () -> Bool) async {
        while !condition(), ContinuousClock.now < deadline {
            guard (try? await Task.sleep(for: .milliseconds(50))) != nil else { return }
        }
    }

    private func runJobs() async {
        await withDiscardingTaskGroup { group in
            for await job in jobs {
                group.addTask { await job() }
            }
        }
    }

    private func spawn(_ job: @escaping Job) {
        jobsContinuation.yield(job)
    }

    // MARK: - Intake

    /// Takes commands while the gate admits them; the partitions are paused while it does not.
    private func intake() async throws {
        var iterator = consumer.messages.makeAsyncIterator()
        let consumer = self.consumer
        let metrics = context.metrics
        let logger = self.logger
        metrics.paused.record(0)
        metrics.liveCalls.record(context.tracker.count)
        while true {
            let admitted = await context.gate.admit(
                onBlocked: { reason in
                    try? consumer.pause()
                    metrics.paused.record(1)
                    logger.debug("intake paused", metadata: ["dialer.pause_reason": "\(reason.rawValue)"])
                },
                onAdmitted: {
                    try? consumer.resume()
                    metrics.paused.record(0)
                    logger.debug("intake resumed")
                })
            guard admitted else { return }
            guard let message = try await iterator.next() else {
                context.gate.finishPlacing(keepSlot: false, refundToken: true)
                return
            }
            offsets.withLock { $0.delivered(message.topicPartition, offset: message.offset) }
            spawn { await self.place(message) }
        }
    }

    /// What placing one command left behind.
    private struct Placement {
        /// The call became (or was) tracked: its slot is released when it leaves the tracker.
        var tracked: Bool
        /// No originate was sent: the rate token is returned.
        var refundToken: Bool
        /// The command's work is durable: its offset may be committed.
        var durable: Bool
    }

    private func place(_ message: KafkaMessage) async {
        let placement = await placeCommand(message)
        context.gate.finishPlacing(keepSlot: placement.tracked, refundToken: placement.refundToken)
        context.metrics.liveCalls.record(context.tracker.count)
        guard placement.durable else { return }
        guard let position = offsets.withLock({ $0.completed(message.topicPartition, offset: message.offset) }) else {
            return
        }
        do {
            try await consumer.commit([position])
        } catch {
            logger.debug(
                "originate offset not committed",
                metadata: [
                    "kafka.partition": "\(position.partition)", "kafka.offset": "\(position.offset)",
                    "error": "\(error)",
                ])
        }
    }

    private func placeCommand(_ message: KafkaMessage) async -> Placement {
        let command: OriginateCommand
        let attributes: CloudEventAttributes
        do {
            (command, attributes) = try CallMessageDecoder.originate(message)
        } catch {
            logger.error(
                "undecodable originate command skipped",
                metadata: [
                    "kafka.partition": "\(message.partition)", "kafka.offset": "\(message.offset)",
                    "message.key": "\(message.keyString ?? "")", "error": "\(error)",
                ])
            return Placement(tracked: false, refundToken: true, durable: true)
        }
        let traceParent = attributes.traceParent
        let callID = command.callID
        let logger = context.logger(for: callID, traceParent: traceParent, requestID: command.requestID)
        let store = context.store
        let nodeID = configuration.nodeID
        let workerID = configuration.workerID

        if command.isExpired(at: Date()) {
            guard
                let result = await context.withDatabaseRetry(
                    "expire", logger: logger,
                    { try await store.expireQueued(command, nodeID: nodeID, workerID: workerID) })
            else { return Placement(tracked: false, refundToken: true, durable: false) }
            guard case .changed(let event) = result else {
                return Placement(tracked: false, refundToken: true, durable: true)
            }
            context.metrics.expired.increment()
            context.metrics.recordOutcome(.expired)
            logger.info("command expired before dialing", metadata: ["call.expires_at": "\(command.expiresAt)"])
            let published = await context.publishUntilAcknowledged(event, traceParent: traceParent)
            return Placement(tracked: false, refundToken: true, durable: published)
        }

        let dialplan = command.dialplan ?? configuration.defaultDialplan
        guard context.tracker.register(command, traceParent: traceParent, dialplan: dialplan) else {
            logger.debug("command skipped: the call is already tracked by this worker")
            return Placement(tracked: false, refundToken: true, durable: true)
        }
        // Every attempt of this claim carries the same instant: it is what tells this placement's own claim (one
        // that timed out but was applied) from an earlier placement's, whose call may already have been dialed.
        let claimedAt = Date()
        guard
            let claim = await context.withDatabaseRetry(
                "claim", logger: logger,
                { try await store.claim(command, nodeID: nodeID, workerID: workerID, at: claimedAt) })
        else {
            perform(context.tracker.forget(callID))
            return Placement(tracked: true, refundToken: true, durable: false)
        }
        let dispatched: CallStatusEvent
        switch claim {
        case .won(let event):
            dispatched = event
        case .alreadyTaken(let status):
            // An attempt that timed out may have been applied: a call dispatched by this worker that this task
            // registered (no other task or predecessor holds it) is this task's own claim.
            if status == .dispatched, let own = await ownClaim(of: command, claimedAt: claimedAt, logger: logger) {
                dispatched = own
                break
            }
            perform(context.tracker.forget(callID))
            context.metrics.claimsLost.increment()
            logger.info("command skipped: the call is already taken", metadata: ["call.status": "\(status.rawValue)"])
            return Placement(tracked: true, refundToken: true, durable: true)
        }
        let (originate, actions) = context.tracker.claimWon(dispatched)
        perform(actions)
        guard originate else {
            logger.info("call canceled while it was being claimed; not dialed")
            let published = await context.tracker.waitForPublications(callID)
            return Placement(tracked: true, refundToken: true, durable: published)
        }

        perform(await sendOriginate(originateRequest(for: command), command: command, logger: logger))
        let published = await context.tracker.waitForPublications(callID)
        return Placement(tracked: true, refundToken: false, durable: published)
    }

    /// The app-style originate of a command: the channel id is the call id, the endpoint comes from the template.
    private func originateRequest(for command: OriginateCommand) -> OriginateRequest {
        OriginateRequest(
            channelID: command.callID.description,
            endpoint: configuration.endpointTemplate.endpoint(for: command.to),
            app: configuration.ari.application,
            callerID: (command.callerID ?? configuration.defaultCallerID)?.ariValue,
            timeout: command.timeoutSeconds,
            variables: command.variables.values
        )
    }

    /// Sends the originate until the node takes it or refuses it for good, and returns what the tracker made of it.
    ///
    /// A request that got no channel dialed no one: `503 Asterisk not booted` (a starting node), connection refused,
    /// any other 5xx, or no answer in time when the channel does not exist afterwards and no event showed it. Such a
    /// request is sent again with back-off once the node answers as booted, while the call's time to live lasts, a
    /// hangup was not asked for, and at most `ORIGINATE_MAX_ATTEMPTS` times in all (waiting for a node to boot is not
    /// an attempt). Anything else (4xx: a bad endpoint, variables, credentials) is final: the call ends `failed`.
    private func sendOriginate(
        _ request: OriginateRequest, command: OriginateCommand, logger: Logger
    ) async
        -> [TrackerAction]
    {
        let callID = command.callID
        let tracker = context.tracker
        var attempts = 0
        var delay = Duration.milliseconds(250)
        var channelUnknown = false
        var lastFailure: ARIError?
        while true {
            let deadline = command.expiresAt
            if lastFailure != nil || !mayDial {
                guard await waitForNode(until: deadline) else {
                    let reason = context.gate.isStopped ? "the worker stopped" : "its time to live passed"
                    let detail =
                        "not dialed: \(reason) while the node could not take the originate"
                        + (lastFailure.map { " (last answer: \($0))" } ?? "")
                    context.metrics.originatesRefused.increment()
                    logger.warning("originate given up", metadata: ["error": "\(detail)"])
                    return tracker.originateRefused(callID, detail: detail)
                }
                switch tracker.checkOriginateRetry(callID) {
                case (.retry, _): break
                case (.notTracked, _): return []
                case (.channelExists, let actions), (.canceled, let actions): return actions
                }
                if channelUnknown {
                    // The request may have reached the node: it is sent again only if the channel does not exist.
                    do {
                        _ = try await context.ari.channel(id: callID.description)
                        context.metrics.originatesAccepted.increment()
                        logger.warning("originate answer lost, but the channel exists")
                        return tracker.originateAccepted(callID)
                    } catch ARIError.notFound {
                        channelUnknown = false
                    } catch {
                        noteNodeFailure(error)
                        continue
                    }
                }
                context.metrics.originateRetries.increment()
                logger.info(
                    "originating again: the node created no channel",
                    metadata: ["ari.attempt": "\(attempts + 1)", "error": "\(lastFailure.map { "\($0)" } ?? "")"])
            }
            // The fenced write: only the owner holding the call's epoch may dial it, and a call taken over before
            // this mark was never dialed (its new owner dials it).
            guard let epoch = tracker.ownerEpoch(of: callID) else { return [] }
            let store = context.store
            guard
                let marked = await context.withDatabaseRetry(
                    "mark originating", logger: logger, { try await store.markOriginating(callID, epoch: epoch) })
            else {
                return tracker.originateRefused(callID, detail: "not dialed: the worker stopped")
            }
            guard marked else {
                let (released, waiters) = tracker.drop([callID])
                for waiter in waiters { waiter.resume(returning: false) }
                context.metrics.callsLostToTakeover.increment()
                logger.warning("call taken over by another worker before this one dialed it; dropped")
                return Array(repeating: .releaseSlot, count: released)
            }
            let started = ContinuousClock.now
            do {
                _ = try await context.ari.originate(request)
                context.metrics.originateLatency.record(duration: ContinuousClock.now - started)
                context.metrics.originatesAccepted.increment()
                logger.info("call originated", metadata: ["ari.endpoint": "\(request.endpoint)"])
                return tracker.originateAccepted(callID)
            } catch ARIError.conflict(let message) {
                // A live channel already carries this id; ids are unique per call, so it is this call's channel.
                context.metrics.originatesAccepted.increment()
                logger.warning(
                    "originate answered 409: tracking the existing channel", metadata: ["ari.message": "\(message)"])
                return tracker.originateAccepted(callID)
            } catch {
                context.metrics.originateLatency.record(duration: ContinuousClock.now - started)
                let failure = (error as? ARIError) ?? .transport("\(error)")
                lastFailure = failure
                switch failure {
                case .server(503, let message) where message.localizedCaseInsensitiveContains("not booted"):
                    // A starting node refuses every request before it created anything: waiting for it to answer as
                    // booted is not an attempt (the call's time to live bounds the wait).
                    noteNodeFailure(failure)
                case .server(503, _):
                    // A 503 from a booted node (or a proxy in front of it): an attempt, and the node is asked again.
                    attempts += 1
                    noteNodeFailure(failure)
                case .server:
                    attempts += 1
                case .transport:
                    attempts += 1
                    channelUnknown = true
                    noteNodeFailure(failure)
                default:
                    context.metrics.originatesRefused.increment()
                    logger.warning("originate refused", metadata: ["error": "\(failure)"])
                    return tracker.originateRefused(callID, detail: "\(failure)")
                }
                if attempts >= configuration.originateMaxAttempts {
                    if channelUnknown, (try? await context.ari.channel(id: callID.description)) != nil {
                        context.metrics.originatesAccepted.increment()
                        return tracker.originateAccepted(callID)
                    }
                    context.metrics.originatesRefused.increment()
                    logger.warning(
                        "originate refused", metadata: ["error": "\(failure)", "ari.attempts": "\(attempts)"])
                    return tracker.originateRefused(
                        callID, detail: "\(failure) (after \(attempts) attempts)")
                }
                if attempts > 0 {
                    guard (try? await Task.sleep(for: delay)) != nil else {
                        return tracker.originateRefused(callID, detail: "\(failure); the worker stopped")
                    }
                    delay = min(delay * 2, .seconds(5))
                }
            }
        }
    }

    /// Whether an originate may be sent now: the WebSocket is up, the node is booted and the worker holds its lease.
    private var mayDial: Bool { context.gate.nodeUsable && context.lease.isValid() }

    /// Waits until an originate may be sent (``mayDial``); `false` when `deadline` passes, the worker stops or the
    /// task is cancelled first.
    private func waitForNode(until deadline: Date) async -> Bool {
        while !mayDial {
            guard !context.gate.isStopped, Date() < deadline else { return false }
            guard (try? await Task.sleep(for: .milliseconds(100))) != nil else { return false }
        }
        return Date() < deadline
    }

    /// A request found the node away (not booted, unreachable): intake pauses until `GET /asterisk/ping` answers.
    private func noteNodeFailure(_ error: any Error) {
        switch error {
        case ARIError.server(503, _), ARIError.transport:
            if context.gate.nodeBooted {
                logger.warning(
                    "ARI node not usable; pausing intake until it answers as booted", metadata: ["error": "\(error)"])
            }
            context.gate.setNodeBooted(false)
            context.metrics.nodeBooted.record(0)
        default:
            break
        }
    }

    /// The `dispatched` event of a claim this placement made for `command` (at `claimedAt`) but did not hear back
    /// about. A claim by the same worker at another instant is an earlier placement's (a redelivered command whose
    /// call may have been dialed and ended already, the history not knowing it yet): never this one's to dial again.
    private func ownClaim(of command: OriginateCommand, claimedAt: Date, logger: Logger) async -> CallStatusEvent? {
        let store = context.store
        let callID = command.callID
        guard
            let record = await context.withDatabaseRetry(
                "check claim", logger: logger, { try await store.call(id: callID) }),
            let record, record.status == .dispatched, record.seq == 1,
            record.workerID == configuration.workerID, record.nodeID == configuration.nodeID,
            let dispatchedAt = record.dispatchedAt, abs(dispatchedAt.timeIntervalSince(claimedAt)) < 0.001
        else { return nil }
        logger.info("a claim that timed out had been applied: it is this worker's")
        return CallStatusEvent(
            callID: callID, seq: 1, status: .dispatched, previousStatus: .queued,
            occurredAt: record.dispatchedAt ?? Date(), nodeID: configuration.nodeID, workerID: configuration.workerID,
            channelID: callID.description, to: command.to.value, metadata: command.metadata)
    }

    // MARK: - Actions

    private func perform(_ actions: [TrackerAction]) {
        for action in actions {
            switch action {
            case .startPublishing(let callID):
                spawn { await self.publishOutbox(of: callID) }
            case .continueInDialplan(let callID, let channelID, let target):
                spawn { await self.continueCall(callID, channelID: channelID, target: target) }
            case .hangup(let callID, let channelID):
                let logger = context.logger(for: callID)
                let ari = context.ari
                spawn { await ControlHandler.hangUp(channelID: channelID, ari: ari, logger: logger) }
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

    /// Publishes a call's outbox in order, one event at a time, each acknowledged before the next.
    private func publishOutbox(of callID: CallID) async {
        while true {
            // A worker whose lease lapsed may have lost the call: it publishes again only once it has renewed its
            // lease and kept the call (the tracker forgets the calls it lost, and this loop then ends).
            if !context.lease.isValid() {
                guard await context.lease.waitUntilValid() else { return }
            }
            guard let (event, traceParent) = context.tracker.nextPublication(callID) else { return }
            guard await context.publishUntilAcknowledged(event, traceParent: traceParent) else {
                let (dropped, waiters) = context.tracker.abandonOutbox(callID)
                context.logger(for: callID).error(
                    "status events of the call not published", metadata: ["events.dropped": "\(dropped)"])
                for waiter in waiters { waiter.resume(returning: false) }
                return
            }
            if event.status.isTerminal {
                recentlyEnded.withLock { $0.ended(callID, seq: event.seq, at: .now) }
            }
            for waiter in context.tracker.publicationAcknowledged(callID, seq: event.seq) {
                waiter.resume(returning: true)
            }
        }
    }

    private func continueCall(_ callID: CallID, channelID: String, target: DialplanTarget) async {
        let logger = context.logger(for: callID)
        do {
            try await context.ari.continueInDialplan(
                channelID: channelID, context: target.context, extension: target.extension, priority: target.priority)
            logger.debug(
                "answered call sent to the dialplan",
                metadata: ["dialplan.context": "\(target.context)", "dialplan.extension": "\(target.extension)"])
        } catch {
            logger.warning("continue into the dialplan failed", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - ARI events

    private func processEvents() async {
        for await event in events.events {
            if case .applicationReplaced = event {
                logger.error(
                    "another connection took over this ARI application: is ARI_APP shared by two workers?",
                    metadata: ["ari.app": "\(configuration.ari.application)"])
                context.gate.setARIConnected(false)
                continue
            }
            // Checked and handled under the hold's lock, so that a held call's events reach the tracker in order
            // whether they arrive before or after its adoption.
            let tracker = context.tracker
            let actions = adoptionHold.withLock { hold -> [TrackerAction] in
                if hold?.capture(event) == true { return [] }
                return tracker.handle(event)
            }
            perform(actions)
        }
    }

    /// Follows the WebSocket: closes the gate while it is down, adopts a predecessor's calls at the first
    /// connection, and reconciles after every reconnect (events of the gap are lost).
    private func followConnection() async {
        var adopted = false
        for await state in events.connectionStates {
            switch state {
            case .connecting:
                break
            case .disconnected(let reason):
                if context.gate.ariConnected {
                    logger.warning("ARI disconnected; pausing intake", metadata: ["ari.reason": "\(reason)"])
                }
                context.gate.setARIConnected(false)
                // The node may be restarting: it must answer as booted again before the next originate.
                context.gate.setNodeBooted(false)
                context.metrics.nodeBooted.record(0)
            case .connected, .reconnected:
                if state == .reconnected {
                    context.metrics.ariReconnects.increment()
                    logger.info("ARI reconnected; reconciling live calls")
                }
                if !adopted {
                    adopted = true
                    await adoptCalls()
                }
                context.gate.setARIConnected(true)
                spawn { await self.reconcile() }
            }
        }
    }

    // MARK: - Adoption and reconciliation

    /// Takes over the live calls a previous process with this node and worker id left in PostgreSQL.
    private func adoptCalls() async {
        let store = context.store
        let nodeID = configuration.nodeID
        guard
            var records = await context.withDatabaseRetry(
                "adopt", logger: logger, { try await store.liveCalls(nodeID: nodeID) })
        else { return }
        records.removeAll { $0.workerID != configuration.workerID }
        guard !records.isEmpty else { return }
        // The rows may be stale: the previous process's last status events can still be on their way to the
        // history (a killed worker's partitions wait for the group to notice). Adopting a call that had ended would
        // end it a second time. Meanwhile the calls' own events are held, so that one hanging up during the wait
        // ends with its real cause.
        logger.info(
            "a previous process left live calls; waiting for the history to catch up before adopting them",
            metadata: ["dialer.candidates": "\(records.count)"])
        adoptionHold.withLock { $0 = AdoptionHold(channels: Set(records.map { $0.channelID ?? $0.id.description })) }
        for record in records {
            do {
                // The previous process's application may have been another: ask for this channel's events here.
                try await context.ari.subscribe(
                    application: configuration.ari.application,
                    eventSource: "channel:\(record.channelID ?? record.id.description)")
            } catch {
                context.logger(for: record.id).debug(
                    "could not subscribe to an adopted call's channel", metadata: ["error": "\(error)"])
            }
        }
        if !(await history.waitUntilCaughtUp(within: configuration.stuckMargin)) {
            logger.warning("the history did not catch up in time; adopting the calls as PostgreSQL shows them")
        }
        let current = await context.withDatabaseRetry(
            "adopt", logger: logger, { try await store.liveCalls(nodeID: nodeID) })
        records = (current ?? []).filter { $0.workerID == configuration.workerID }
        var adopted = 0
        defer { releaseAdoptionHold() }
        for stored in records {
            // Raising the owner epoch fences off whatever the previous process still had on its way.
            let workerID = configuration.workerID
            guard
                let record = await context.withDatabaseRetry(
                    "adopt", logger: logger,
                    {
                        try await store.takeOver(
                            stored.id, expectedEpoch: stored.ownerEpoch, nodeID: nodeID, workerID: workerID)
                    }),
                let record
            else { continue }
            if await takeCharge(of: record, subscribe: false, logger: context.logger(for: record.id)) { adopted += 1 }
        }
        if adopted > 0 {
            logger.info("adopted live calls of a previous process", metadata: ["dialer.adopted": "\(adopted)"])
            context.metrics.liveCalls.record(context.tracker.count)
        }
    }

    /// Hands the events held during adoption to the tracker, in order, and stops holding.
    private func releaseAdoptionHold() {
        let tracker = context.tracker
        let (actions, held, dropped) = adoptionHold.withLock { hold -> ([TrackerAction], Int, Int) in
            defer { hold = nil }
            guard let events = hold?.events else { return ([], 0, 0) }
            return (events.flatMap { tracker.handle($0) }, events.count, hold?.dropped ?? 0)
        }
        if held > 0 || dropped > 0 {
            logger.info(
                "events of adopted calls received during the wait handed over",
                metadata: ["dialer.held_events": "\(held)", "dialer.dropped_events": "\(dropped)"])
        }
        perform(actions)
    }

    private func reconcileRegularly() async {
        while (try? await Task.sleep(for: configuration.reconcileInterval)) != nil {
            guard context.gate.ariConnected else { continue }
            await reconcile()
        }
    }

    /// Compares the tracked calls with the node's channels: a present channel updates its call (events may have
    /// been missed); a missing one is confirmed after the grace period and its call ended with the best-known
    /// outcome.
    private func reconcile() async {
        let channels: [ARIChannel]
        do {
            channels = try await context.ari.channels()
        } catch {
            logger.debug("reconciliation skipped: channels not listed", metadata: ["error": "\(error)"])
            return
        }
        var present: [String: ARIChannel] = [:]
        for channel in channels { present[channel.id] = channel }
        for call in context.tracker.snapshot() where call.phase == .originated {
            if let channel = present[call.channelID] {
                perform(context.tracker.synchronize(with: channel))
            } else if context.tracker.markVanishCheck(call.channelID) {
                spawn { await self.confirmVanished(call.callID, channelID: call.channelID) }
            }
        }
    }

    private func confirmVanished(_ callID: CallID, channelID: String) async {
        guard (try? await Task.sleep(for: configuration.reconcileGrace)) != nil else { return }
        let logger = context.logger(for: callID)
        do {
            let channel = try await context.ari.channel(id: channelID)
            perform(context.tracker.synchronize(with: channel))
        } catch ARIError.notFound {
            // A call adopted from PostgreSQL may have been ended by the previous process, its end not yet in the
            // history when it was adopted: ending it again would publish a second terminal event.
            if let record = try? await context.store.call(id: callID), record.status.isTerminal {
                perform(context.tracker.forget(callID))
                logger.info(
                    "channel gone and the call already ended in the history; not ended again",
                    metadata: ["call.status": "\(record.status.rawValue)"])
                return
            }
            let actions = context.tracker.vanished(channelID)
            if !actions.isEmpty {
                context.metrics.reconciledEnds.increment()
                logger.warning(
                    "channel vanished without a ChannelDestroyed seen; call ended with its best-known outcome")
            }
            perform(actions)
        } catch {
            context.tracker.clearVanishCheck(channelID)
        }
    }

    /// Every quarter of the owner timeout, takes over the live calls of this node whose owner's heartbeat stopped
    /// (it crashed, stalls, or was restarted under another worker id).
    private func takeOverAbandonedRegularly() async {
        let interval = configuration.ownerTimeout / 4
        while (try? await Task.sleep(for: interval)) != nil {
            // A worker that itself just got its lease back may have been cut off for the same reason as the others:
            // it waits a whole owner timeout before judging anyone dead.
            guard context.gate.nodeUsable, context.lease.heldContinuously(for: configuration.ownerTimeout) else {
                continue
            }
            await takeOverAbandoned()
        }
    }

    /// Takes over, one by one, the live calls of this node whose owner has had no heartbeat for the owner timeout:
    /// each takeover raises the call's owner epoch (so the previous owner's late events are refused), subscribes this
    /// worker's application to the channel, and tracks the call like one of its own: a channel still up is followed
    /// to its real end, a vanished one ends with the best-known outcome (`completed` if it was answered, `failed`
    /// with reason `lost` if nothing says how it ended).
    func takeOverAbandoned() async {
        let store = context.store
        let nodeID = configuration.nodeID
        let workerID = configuration.workerID
        let timeout = configuration.ownerTimeout
        let room = max(0, configuration.maxConcurrentCalls - context.gate.slotsUsed)
        guard room > 0 else { return }
        guard
            let candidates = try? await WorkerContext.withTimeout(
                configuration.databaseTimeout,
                {
                    try await store.abandonedCalls(
                        nodeID: nodeID, ownerTimeout: timeout, excludingWorker: workerID, limit: min(room, 500))
                }), !candidates.isEmpty
        else { return }
        // The stopped owner's last status events may still be on their way to the history: taking over a call whose
        // end is in the topic but not yet in PostgreSQL would end it twice.
        _ = await history.waitUntilCaughtUp(within: .seconds(10))
        var taken = 0
        for candidate in candidates {
            guard context.lease.isValid() else { break }
            let logger = context.logger(for: candidate.id, requestID: candidate.requestID)
            guard
                let record = try? await WorkerContext.withTimeout(
                    configuration.databaseTimeout,
                    {
                        try await store.takeOver(
                            candidate.id, expectedEpoch: candidate.ownerEpoch, nodeID: nodeID, workerID: workerID,
                            ownerTimeout: timeout)
                    })
            else { continue }
            guard await takeCharge(of: record, subscribe: true, logger: logger) else { continue }
            taken += 1
            context.metrics.takeovers.increment()
            logger.warning(
                "took over a call whose worker stopped sending heartbeats",
                metadata: [
                    "call.previous_owner": "\(candidate.workerID ?? "")", "call.status": "\(record.status.rawValue)",
                    "owner.epoch": "\(record.ownerEpoch)",
                ])
        }
        if taken > 0 {
            context.metrics.liveCalls.record(context.tracker.count)
            await reconcile()
        }
    }

    /// Tracks a call this worker now owns (taken over, or left by its previous process); `false` when it is tracked
    /// already.
    ///
    /// A call still `dispatched` for which no originate was recorded was never dialed: it is dialed now. Any other is
    /// followed from the status PostgreSQL shows, with this worker's application subscribed to its channel (the
    /// previous owner's application may have been another); reconciliation brings it in line with the channel, so a
    /// channel still up is followed to its real end and a vanished one ends with the best-known outcome.
    private func takeCharge(of record: CallRecord, subscribe: Bool, logger: Logger) async -> Bool {
        if record.status == .dispatched, record.originateSentAt == nil, let command = record.originateCommand {
            let dialplan = command.dialplan ?? configuration.defaultDialplan
            guard context.tracker.resume(command, record: record, dialplan: dialplan, seqSkip: Self.takeoverSeqSkip)
            else { return false }
            context.gate.occupySlots(1)
            logger.info("the call was claimed but never dialed by its previous owner: dialing it")
            spawn { await self.dialTakenOver(command, logger: logger) }
            return true
        }
        let channelID = record.channelID ?? record.id.description
        if subscribe {
            do {
                try await context.ari.subscribe(
                    application: configuration.ari.application, eventSource: "channel:\(channelID)")
            } catch {
                logger.debug("could not subscribe to an adopted call's channel", metadata: ["error": "\(error)"])
            }
        }
        let dialplan =
            record.context.flatMap { context in
                record.extension.flatMap { exten in
                    try? DialplanTarget(context: context, extension: exten, priority: record.priority ?? 1)
                }
            } ?? configuration.defaultDialplan
        guard context.tracker.adopt(record, dialplan: dialplan, seqSkip: Self.takeoverSeqSkip) else { return false }
        context.gate.occupySlots(1)
        return true
    }

    /// Dials a call taken over before its previous owner dialed it.
    private func dialTakenOver(_ command: OriginateCommand, logger: Logger) async {
        guard !command.isExpired(at: Date()) else {
            perform(
                context.tracker.originateRefused(
                    command.callID, detail: "not dialed: its time to live passed before its worker could dial it"))
            return
        }
        perform(await sendOriginate(originateRequest(for: command), command: command, logger: logger))
    }

    // MARK: - Node probe

    /// While the node is not known to be booted, asks `GET /asterisk/ping` every half second: a starting Asterisk
    /// accepts the events WebSocket seconds before its REST API stops answering `503 Asterisk not booted`.
    private func probeNode() async {
        let ari = context.ari
        var lastError = ""
        while !Task.isCancelled {
            if !context.gate.nodeBooted {
                do {
                    _ = try await ari.ping()
                    logger.info("ARI node booted; originates allowed")
                    context.gate.setNodeBooted(true)
                    context.metrics.nodeBooted.record(1)
                } catch {
                    let text = "\(error)"
                    if text != lastError {
                        lastError = text
                        logger.info("waiting for the ARI node to boot", metadata: ["error": "\(text)"])
                    }
                }
            }
            guard (try? await Task.sleep(for: .milliseconds(500))) != nil else { return }
        }
    }

    // MARK: - PostgreSQL probe

    /// While PostgreSQL is believed unreachable, pings it every half second and reopens the gate when it answers.
    private func probeDatabase() async {
        while (try? await Task.sleep(for: .milliseconds(500))) != nil {
            guard !context.gate.databaseAvailable else { continue }
            let store = context.store
            do {
                try await WorkerContext.withTimeout(configuration.databaseTimeout) { try await store.ping() }
                logger.info("PostgreSQL reachable again; resuming intake")
                context.gate.setDatabaseAvailable(true)
            } catch {
                continue
            }
        }
    }
}
