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

// The outbox: publishing each call's status events in order, each acknowledged before the next.
extension Dialer {
    /// Publishes a call's outbox in order, one event at a time, each acknowledged before the next.
    func publishOutbox(of callID: CallID) async {
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
}
