import ARI
import CallDomain
import CallStore
import Foundation
import Logging
import Metrics

/// Sends calls' originates to the node, by the rules that keep a call from being dialed twice or failed undialed.
///
/// Only the owner holding the call's epoch dials it (a fenced write precedes every originate); a node that is
/// booting, unreachable or failing created no channel, so the originate waits for it and is sent again; anything
/// the node refuses for good ends the call `failed`. It works on the worker's context alone, so these rules are
/// tested with in-memory fakes of the node and the store.
struct Originator: Sendable {
    let context: WorkerContext
    /// The dialer's logger, for what concerns the node rather than one call.
    let logger: Logger
    /// The first pause before an originate is sent again (doubling up to 5 s).
    var initialRetryDelay: Duration = .milliseconds(250)

    private var configuration: WorkerConfiguration { context.configuration }

    /// The app-style originate of a command: the channel id is the call id, the endpoint comes from the template.
    ///
    /// With answering machine detection, the channel also carries what the node's `dialer-amd` dial plan needs: the
    /// application to return to, `AMD()`'s arguments and the mode (a request cannot set `DIALER_` variables itself).
    func request(for command: OriginateCommand) -> OriginateRequest {
        var variables = command.variables.values
        if let detection = command.machineDetection {
            variables["DIALER_AMD_APP"] = configuration.ari.application
            variables["DIALER_AMD_ARGS"] = detection.amdArguments
            variables["DIALER_AMD_MODE"] = detection.mode.rawValue
        }
        return OriginateRequest(
            channelID: command.callID.description,
            endpoint: configuration.endpointTemplate.endpoint(for: command.to),
            app: configuration.ari.application,
            callerID: (command.callerID ?? configuration.defaultCallerID)?.ariValue,
            timeout: command.timeoutSeconds,
            variables: variables
        )
    }

    /// Sends the originate until the node takes it or refuses it for good, and returns what the tracker made of it.
    ///
    /// A request that got no channel dialed no one: `503 Asterisk not booted` (a starting node), connection refused,
    /// any other 5xx, or no answer in time when the channel does not exist afterwards and no event showed it. Such a
    /// request is sent again with back-off once the node answers as booted, while the call's time to live lasts, a
    /// hangup was not asked for, and at most `ORIGINATE_MAX_ATTEMPTS` times in all (waiting for a node to boot is not
    /// an attempt). Anything else (4xx: a bad endpoint, variables, credentials) is final: the call ends `failed`.
    func send(
        _ request: OriginateRequest, command: OriginateCommand, logger: Logger
    ) async
        -> [TrackerAction]
    {
        let callID = command.callID
        let tracker = context.tracker
        var attempts = 0
        var delay = initialRetryDelay
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
                    // `nil`: the node does not answer at all (it is marked away); look again once it does.
                    switch await channelExists(callID) {
                    case true?:
                        return acceptExisting(callID, logger: logger)
                    case false?:
                        channelUnknown = false
                    case nil:
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
                logger.warning("originate answered 409", metadata: ["ari.message": "\(message)"])
                return acceptExisting(callID, logger: logger)
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
                    // The request may have reached the node: it is sent again only once the channel is known not to
                    // exist (looked up before the next attempt).
                    attempts += 1
                    channelUnknown = true
                default:
                    context.metrics.originatesRefused.increment()
                    logger.warning("originate refused", metadata: ["error": "\(failure)"])
                    return tracker.originateRefused(callID, detail: "\(failure)")
                }
                if attempts >= configuration.originateMaxAttempts {
                    if channelUnknown, await channelExists(callID) == true {
                        return acceptExisting(callID, logger: logger)
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

    /// The originate's answer was lost or refused as a duplicate, but the call's channel exists: it was taken.
    private func acceptExisting(_ callID: CallID, logger: Logger) -> [TrackerAction] {
        context.metrics.originatesAccepted.increment()
        logger.warning("the call's channel exists: tracking it")
        return context.tracker.originateAccepted(callID)
    }

    /// Whether the call's channel exists on the node; `nil` when the node could not tell (it is then marked away).
    private func channelExists(_ callID: CallID) async -> Bool? {
        do {
            _ = try await context.ari.channel(id: callID.description)
            return true
        } catch ARIError.notFound {
            return false
        } catch {
            noteNodeFailure(error)
            return nil
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
}
