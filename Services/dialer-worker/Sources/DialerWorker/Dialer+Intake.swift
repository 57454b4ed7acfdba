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

// Intake: taking commands from Kafka while the gate admits them, and the probes that reopen the gate.
extension Dialer {
    /// Takes commands while the gate admits them; the partitions are paused while it does not.
    func intake() async throws {
        var iterator = consumer.messages.makeAsyncIterator()
        let consumer = self.consumer
        let metrics = context.metrics
        let logger = self.logger
        metrics.paused.record(0)
        metrics.liveCalls.record(context.tracker.count)
        while true {
            let admitted = await context.gate.admit(
                onBlocked: { reason in
                    do {
                        try consumer.pause()
                    } catch {
                        // Still paused in effect: nothing is taken while the gate is closed; the fetched backlog
                        // waits in the consumer's bounded buffer.
                        logger.warning("partitions not paused", metadata: ["error": "\(error)"])
                    }
                    metrics.paused.record(1)
                    logger.debug("intake paused", metadata: ["dialer.pause_reason": "\(reason.rawValue)"])
                },
                onAdmitted: {
                    do {
                        try consumer.resume()
                    } catch {
                        logger.warning("partitions not resumed", metadata: ["error": "\(error)"])
                    }
                    metrics.paused.record(0)
                    logger.debug("intake resumed")
                })
            guard admitted else { return }
            guard let message = try await iterator.next() else {
                context.gate.finishPlacing(keepSlot: false, refundToken: true)
                return
            }
            let continuity = offsets.withLock { $0.delivered(message.topicPartition, offset: message.offset) }
            if continuity != .follows {
                // Where a partition starts, or starts again after a rebalance: what an operator needs to follow a
                // command across rebalances. A jump forward means commands were passed over.
                var metadata: Logger.Metadata = [
                    "kafka.partition": "\(message.topicPartition)", "kafka.offset": "\(message.offset)",
                ]
                switch continuity {
                case .follows, .starts:
                    logger.info("partition consumed from offset", metadata: metadata)
                case .rewinds(let previous):
                    metadata["kafka.previous_offset"] = "\(previous)"
                    logger.info("partition consumed again from its committed offset", metadata: metadata)
                case .jumps(let previous):
                    metadata["kafka.previous_offset"] = "\(previous)"
                    logger.error("commands passed over in a partition", metadata: metadata)
                }
            }
            spawn { await self.place(message) }
        }
    }

    /// What placing one command left behind.
    struct Placement {
        /// The call became (or was) tracked: its slot is released when it leaves the tracker.
        var tracked: Bool
        /// No originate was sent: the rate token is returned.
        var refundToken: Bool
        /// The command's work is durable: its offset may be committed.
        var durable: Bool
        /// The claim was held back by an organization limit: claim again later.
        var deferral: Deferral? = nil
    }

    /// A claim held back by its organization's limits.
    struct Deferral {
        var organization: OrganizationID
        var retryAfter: Duration
    }

    func place(_ message: KafkaMessage) async {
        var placement = await placeCommand(message)
        context.gate.finishPlacing(keepSlot: placement.tracked, refundToken: placement.refundToken)
        if let deferral = placement.deferral {
            guard let placed = await placeAgain(message, after: deferral) else { return }
            placement = placed
        }
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

    /// While the node is not known to be booted, asks `GET /asterisk/ping` every half second: a starting Asterisk
    /// accepts the events WebSocket seconds before its REST API stops answering `503 Asterisk not booted`.
    func probeNode() async {
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

    /// While PostgreSQL is believed unreachable, pings it every half second and reopens the gate when it answers.
    func probeDatabase() async {
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

    /// Claims a held-back command again, in its organization's line (``OrganizationPacer``), until the claim is no
    /// longer held back; it holds no slot, in-flight place or rate token while it waits. `nil` when the worker stops
    /// meanwhile: the offset stays uncommitted and the command, still queued in PostgreSQL, is taken again by the
    /// partition's next owner.
    func placeAgain(_ message: KafkaMessage, after first: Deferral) async -> Placement? {
        let pacer = context.pacer
        let gate = context.gate
        let organization = first.organization
        gate.beginDeferral()
        let ticket = pacer.enqueue(organization, retryAfter: first.retryAfter)
        context.metrics.deferredCalls.record(pacer.waiting)
        defer { context.metrics.deferredCalls.record(pacer.waiting) }
        while true {
            guard await pacer.waitForTurn(organization, ticket: ticket) else {
                gate.endDeferral()
                return nil
            }
            guard await gate.readmitDeferred() else {
                pacer.leave(organization, ticket: ticket)
                gate.endDeferral()
                return nil
            }
            let placement = await placeCommand(message)
            gate.finishPlacing(keepSlot: placement.tracked, refundToken: placement.refundToken)
            guard let again = placement.deferral else {
                pacer.leave(organization, ticket: ticket)
                gate.endDeferral()
                return placement
            }
            pacer.deferredAgain(organization, retryAfter: again.retryAfter)
        }
    }
}
