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

// Reconciliation: bringing tracked calls in line with the node's channels after events were missed.
extension Dialer {
    func reconcileRegularly() async {
        while (try? await Task.sleep(for: configuration.reconcileInterval)) != nil {
            guard context.gate.ariConnected else { continue }
            await reconcile()
        }
    }

    /// Compares the tracked calls with the node's channels: a present channel updates its call (events may have
    /// been missed); a missing one is confirmed after the grace period and its call ended with the best-known
    /// outcome.
    func reconcile() async {
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

    func confirmVanished(_ callID: CallID, channelID: String) async {
        guard (try? await Task.sleep(for: configuration.reconcileGrace)) != nil else { return }
        let logger = context.logger(for: callID)
        do {
            let channel = try await context.ari.channel(id: channelID)
            perform(context.tracker.synchronize(with: channel))
        } catch ARIError.notFound {
            // A call adopted from PostgreSQL may have been ended by the previous process, its end not yet in the
            // history when it was adopted: ending it again would publish a second terminal event.
            // A PostgreSQL error is not an answer: the check is left for the next reconciliation rather than
            // counted as "not ended" (which could end the call a second time).
            let store = context.store
            let stored: CallRecord??
            do {
                stored = try await WorkerContext.withTimeout(configuration.databaseTimeout) {
                    try await store.call(id: callID)
                }
            } catch {
                context.tracker.clearVanishCheck(channelID)
                logger.debug("vanished channel not confirmed: history unreadable", metadata: ["error": "\(error)"])
                return
            }
            if let record = stored ?? nil, record.status.isTerminal {
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
}
