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

// Ownership: adopting a previous process's calls and taking over those of a worker that stopped.
extension Dialer {
    /// Takes over the live calls a previous process with this node and worker id left in PostgreSQL.
    func adoptCalls() async {
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
                _ = try await context.ari.subscribe(
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
                            stored.id, expectedEpoch: stored.ownerEpoch, nodeID: nodeID, workerID: workerID,
                            ownerTimeout: nil)
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
    func releaseAdoptionHold() {
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

    /// Every quarter of the owner timeout, takes over the live calls of this node whose owner's heartbeat stopped
    /// (it crashed, stalls, or was restarted under another worker id).
    func takeOverAbandonedRegularly() async {
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
        // The stopped owner's last status events may still be on their way to the history (its partitions of the
        // history group move only when its Kafka session expires): taking over a call whose end is on the topic but
        // not yet in PostgreSQL would end it a second time. Until the history has caught up, the takeover waits for
        // the next round; the rows are read again then.
        guard await history.waitUntilCaughtUp(within: .seconds(10)) else {
            logger.info(
                "takeover postponed: the history has not stored every status event yet",
                metadata: ["dialer.candidates": "\(candidates.count)"])
            return
        }
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
    func takeCharge(of record: CallRecord, subscribe: Bool, logger: Logger) async -> Bool {
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
                _ = try await context.ari.subscribe(
                    application: configuration.ari.application, eventSource: "channel:\(channelID)")
            } catch {
                logger.debug("could not subscribe to an adopted call's channel", metadata: ["error": "\(error)"])
            }
        }
        let dialplan = record.dialplan ?? configuration.defaultDialplan
        guard context.tracker.adopt(record, dialplan: dialplan, seqSkip: Self.takeoverSeqSkip) else { return false }
        context.gate.occupySlots(1)
        return true
    }

    /// Dials a call taken over before its previous owner dialed it.
    func dialTakenOver(_ command: OriginateCommand, logger: Logger) async {
        guard !command.isExpired(at: Date()) else {
            perform(
                context.tracker.originateRefused(
                    command.callID, detail: "not dialed: its time to live passed before its worker could dial it"))
            return
        }
        perform(await originator.send(originator.request(for: command), command: command, logger: logger))
    }
}
