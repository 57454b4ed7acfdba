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

// Channel events: the ARI events WebSocket, its connection, and answered calls sent on to the dialplan.
extension Dialer {
    func processEvents() async {
        for await event in events.events {
            if case .applicationReplaced = event {
                logger.error(
                    "another connection took over this ARI application: is ARI_APP shared by two workers?",
                    metadata: ["ari.app": "\(configuration.ari.application)"])
                context.gate.setARIConnected(false)
                continue
            }
            if Recorder.handles(event) {
                context.recorder?.take(event)
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
    func followConnection() async {
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

    func continueCall(_ callID: CallID, channelID: String, target: DialplanTarget) async {
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

    /// Reads the detection's verdict from the channel, back in Stasis from the `dialer-amd` dial plan, and acts on it.
    /// A verdict that cannot be read counts as `unknown` (the call goes on as a human's would); a channel already
    /// gone leaves the call to its `ChannelDestroyed`.
    func readMachineDetection(_ callID: CallID, channelID: String) async {
        let logger = context.logger(for: callID)
        let ari = context.ari
        var status: String?
        var cause: String?
        do {
            async let amdStatus = ari.variable("AMDSTATUS", channelID: channelID)
            async let amdCause = ari.variable("AMDCAUSE", channelID: channelID)
            (status, cause) = try await (amdStatus, amdCause)
        } catch ARIError.notFound {
            logger.debug("the channel ended before its detection verdict was read")
            return
        } catch {
            logger.warning(
                "could not read the answering machine detection verdict; the call goes on as undecided",
                metadata: ["error": "\(error)"])
        }
        logger.debug(
            "answering machine detection decided",
            metadata: ["amd.status": "\(status ?? "none")", "amd.cause": "\(cause ?? "none")"])
        perform(context.tracker.machineDetected(callID, status: status, cause: cause))
    }
}
