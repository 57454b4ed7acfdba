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
    /// Vanished channels of other workers' calls: first seen gone at, with the call's stored seq then.
    private let orphans = Mutex([CallID: (since: ContinuousClock.Instant, seq: Int)]())
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

        let request = OriginateRequest(
            channelID: callID.description,
            endpoint: configuration.endpointTemplate.endpoint(for: command.to),
            app: configuration.ari.application,
            callerID: (command.callerID ?? configuration.defaultCallerID)?.ariValue,
            timeout: command.timeoutSeconds,
            variables: command.variables.values
        )
        let started = ContinuousClock.now
        do {
            _ = try await context.ari.originate(request)
            context.metrics.originateLatency.record(duration: ContinuousClock.now - started)
            context.metrics.originatesAccepted.increment()
            logger.info("call originated", metadata: ["ari.endpoint": "\(request.endpoint)"])
            perform(context.tracker.originateAccepted(callID))
        } catch ARIError.conflict(let message) {
            // A live channel already carries this id; ids are unique per call, so it is this call's channel.
            context.metrics.originatesAccepted.increment()
            logger.warning(
                "originate answered 409: tracking the existing channel", metadata: ["ari.message": "\(message)"])
            perform(context.tracker.originateAccepted(callID))
        } catch {
            context.metrics.originateLatency.record(duration: ContinuousClock.now - started)
            if case ARIError.transport = error, (try? await context.ari.channel(id: callID.description)) != nil {
                // The request failed on the way back, but Asterisk created the channel.
                context.metrics.originatesAccepted.increment()
                logger.warning("originate answer lost, but the channel exists", metadata: ["error": "\(error)"])
                perform(context.tracker.originateAccepted(callID))
            } else {
                context.metrics.originatesRefused.increment()
                logger.warning("originate refused", metadata: ["error": "\(error)"])
                perform(context.tracker.originateRefused(callID, detail: "\(error)"))
            }
        }
        let published = await context.tracker.waitForPublications(callID)
        return Placement(tracked: true, refundToken: false, durable: published)
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
        while let (event, traceParent) = context.tracker.nextPublication(callID) {
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
                spawn { await self.reconcile(includeOrphans: false) }
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
        for record in records {
            let dialplan =
                record.context.flatMap { context in
                    record.extension.flatMap { exten in
                        try? DialplanTarget(context: context, extension: exten, priority: record.priority ?? 1)
                    }
                } ?? configuration.defaultDialplan
            guard context.tracker.adopt(record, dialplan: dialplan, seqSkip: Self.takeoverSeqSkip) else { continue }
            context.gate.occupySlots(1)
            adopted += 1
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
            await reconcile(includeOrphans: true)
        }
    }

    /// Compares the tracked calls with the node's channels: a present channel updates its call (events may have
    /// been missed); a missing one is confirmed after the grace period and its call ended with the best-known
    /// outcome. With `includeOrphans`, also ends other workers' calls whose channels vanished long ago.
    private func reconcile(includeOrphans: Bool) async {
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
        if includeOrphans {
            await sweepOrphans(present: Set(present.keys))
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

    /// Ends calls of this node that no live worker tracks: their owner died (or was restarted under another
    /// worker id) and their channel is gone. A call qualifies once it is older than its ring timeout plus the
    /// stuck margin, and its channel has been missing, with no progress in PostgreSQL, for the stuck margin — long
    /// enough for a live owner to have ended it itself. The ending is applied to PostgreSQL conditionally first, so
    /// that of several workers sweeping the same node only one publishes it.
    private func sweepOrphans(present: Set<String>) async {
        let records: [CallRecord]
        do {
            records = try await context.store.liveCalls(nodeID: configuration.nodeID)
        } catch {
            return
        }
        let now = Date()
        let clock = ContinuousClock.now
        let margin = configuration.stuckMargin
        var candidates: [CallRecord] = []
        orphans.withLock { orphans in
            var seen: [CallID: (since: ContinuousClock.Instant, seq: Int)] = [:]
            for record in records where !context.tracker.isTracked(record.id) {
                let channelID = record.channelID ?? record.id.description
                guard !present.contains(channelID) else { continue }
                let age = now.timeIntervalSince(record.dispatchedAt ?? record.createdAt)
                let marginSeconds = Double(margin.components.seconds) + Double(margin.components.attoseconds) / 1e18
                guard age > Double(record.timeoutSeconds ?? 30) + marginSeconds else { continue }
                var entry = orphans[record.id] ?? (clock, record.seq)
                if entry.seq != record.seq { entry = (clock, record.seq) }
                seen[record.id] = entry
                if clock - entry.since >= margin { candidates.append(record) }
            }
            orphans = seen
        }
        for record in candidates {
            await endOrphan(record)
        }
    }

    private func endOrphan(_ record: CallRecord) async {
        let logger = context.logger(for: record.id, requestID: record.requestID)
        let channelID = record.channelID ?? record.id.description
        do {
            _ = try await context.ari.channel(id: channelID)
            return
        } catch ARIError.notFound {
        } catch {
            return
        }
        let now = Date()
        let answered = record.status == .answered
        let outcome = answered ? CallOutcome(status: .completed) : CallOutcome(status: .failed, failureReason: .lost)
        guard record.status.canTransition(to: outcome.status) else { return }
        let event = CallStatusEvent(
            callID: record.id,
            seq: record.seq + Self.takeoverSeqSkip,
            status: outcome.status,
            previousStatus: record.status,
            occurredAt: now,
            nodeID: configuration.nodeID,
            workerID: configuration.workerID,
            channelID: channelID,
            to: record.to,
            failureReason: outcome.failureReason,
            detail: "the worker that owned the call (\(record.workerID ?? "unknown")) stopped tracking it and its "
                + "channel is gone; outcome inferred",
            answeredAt: record.answeredAt,
            endedAt: now,
            durationSeconds: answered ? record.answeredAt.map { max(0, now.timeIntervalSince($0)) } : nil,
            metadata: (try? ClientMetadata(record.metadata)) ?? .empty
        )
        let result: ApplyResult
        do {
            result = try await context.store.apply(event)
        } catch {
            return
        }
        guard result == .applied else { return }
        orphans.withLock { _ = $0.removeValue(forKey: record.id) }
        context.metrics.reconciledEnds.increment()
        context.metrics.recordOutcome(event.status)
        logger.warning(
            "ended an orphaned call whose channel vanished",
            metadata: ["call.status": "\(event.status.rawValue)", "call.previous_owner": "\(record.workerID ?? "")"])
        let traceParent = record.requestID.map { TraceContext.traceParent(requestID: $0) }
        _ = await context.publishUntilAcknowledged(event, traceParent: traceParent)
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
