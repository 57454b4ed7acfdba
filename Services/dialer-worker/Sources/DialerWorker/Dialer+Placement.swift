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

// Placement: from one originate command to a call on the node (claim, fenced originate, retries).
extension Dialer {
    func placeCommand(_ message: KafkaMessage) async -> Placement {
        let command: OriginateCommand
        let attributes: CloudEventAttributes
        do {
            (command, attributes) = try CallMessageDecoder.originate(message)
        } catch {
            // A poison message never stalls the partition, and is not lost either.
            let copied = await context.deadLetter(
                message, reason: .undecodable, error: error, group: configuration.dialerGroupID)
            return Placement(tracked: false, refundToken: true, durable: copied)
        }
        // The call's trace continues here from the command's `traceparent`: this span is the parent of the claim,
        // the originate and every status event the worker publishes for the call.
        return await MessageTracing.processing(message, event: attributes, callID: command.callID) { traceParent in
            await place(command, from: message, traceParent: traceParent)
        }
    }

    /// Places a decoded command: expiry, claim, originate.
    private func place(
        _ command: OriginateCommand, from message: KafkaMessage, traceParent: String?
    ) async
        -> Placement
    {
        let callID = command.callID
        let logger = context.logger(for: callID, traceParent: traceParent, requestID: command.requestID)
        let store = context.store
        let nodeID = configuration.nodeID
        let workerID = configuration.workerID

        if command.isExpired(at: Date()) {
            let result: QueuedChangeResult
            switch await context.storing(
                "expire", logger: logger,
                { try await store.expireQueued(command, nodeID: nodeID, workerID: workerID, at: Date()) })
            {
            case .stored(let stored): result = stored
            case .cancelled: return Placement(tracked: false, refundToken: true, durable: false)
            case .refused(let reason, let error):
                let copied = await context.deadLetter(
                    message, reason: reason, error: error, group: configuration.dialerGroupID)
                return Placement(tracked: false, refundToken: true, durable: copied)
            }
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
        let claim: ClaimResult
        switch await context.storing(
            "claim", logger: logger,
            { try await store.claim(command, nodeID: nodeID, workerID: workerID, at: claimedAt) })
        {
        case .stored(let result):
            claim = result
        case .cancelled:
            perform(context.tracker.forget(callID))
            return Placement(tracked: true, refundToken: true, durable: false)
        case .refused(let reason, let error):
            // PostgreSQL refuses the command's data: it can never be claimed, so it is never dialed.
            perform(context.tracker.forget(callID))
            let copied = await context.deadLetter(
                message, reason: reason, error: error, group: configuration.dialerGroupID)
            return Placement(tracked: true, refundToken: true, durable: copied)
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
        case .deferred(let limit, let retryAfter):
            // Nothing changed in PostgreSQL: the call stays queued, and this command is claimed again later.
            perform(context.tracker.forget(callID))
            context.metrics.claimDeferred(limit)
            logger.debug(
                "claim held back by the organization's limit",
                metadata: ["organization.limit": "\(limit.rawValue)", "retry_after": "\(retryAfter)"])
            return Placement(
                tracked: true, refundToken: true, durable: false,
                deferral: Deferral(organization: command.organizationID, retryAfter: retryAfter))
        }
        let (originate, actions) = context.tracker.claimWon(dispatched)
        perform(actions)
        guard originate else {
            logger.info("call canceled while it was being claimed; not dialed")
            let published = await context.tracker.waitForPublications(callID)
            return Placement(tracked: true, refundToken: true, durable: published)
        }

        perform(await originator.send(originator.request(for: command), command: command, logger: logger))
        let published = await context.tracker.waitForPublications(callID)
        return Placement(tracked: true, refundToken: false, durable: published)
    }

    /// The `dispatched` event of a claim this placement made for `command` (at `claimedAt`) but did not hear back
    /// about. A claim by the same worker at another instant is an earlier placement's (a redelivered command whose
    /// call may have been dialed and ended already, the history not knowing it yet): never this one's to dial again.
    func ownClaim(of command: OriginateCommand, claimedAt: Date, logger: Logger) async -> CallStatusEvent? {
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
            channelID: callID.description, to: command.to.value, metadata: command.metadata,
            ownerEpoch: record.ownerEpoch, organizationID: command.organizationID)
    }
}
