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
    func originateRequest(for command: OriginateCommand) -> OriginateRequest {
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
    func sendOriginate(
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
    var mayDial: Bool { context.gate.nodeUsable && context.lease.isValid() }

    /// Waits until an originate may be sent (``mayDial``); `false` when `deadline` passes, the worker stops or the
    /// task is cancelled first.
    func waitForNode(until deadline: Date) async -> Bool {
        while !mayDial {
            guard !context.gate.isStopped, Date() < deadline else { return false }
            guard (try? await Task.sleep(for: .milliseconds(100))) != nil else { return false }
        }
        return Date() < deadline
    }

    /// A request found the node away (not booted, unreachable): intake pauses until `GET /asterisk/ping` answers.
    func noteNodeFailure(_ error: any Error) {
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
            channelID: callID.description, to: command.to.value, metadata: command.metadata)
    }
}
